"""Orbax checkpoints: the one home for saving, resuming and loading training state.

One checkpoint per saved step under `<workdir>/checkpoints/<step>/`, with one item per top-level
entry of the training state, whatever the model family. For pix2pix:

    generator       {'params', 'batch_stats'} of the U-Net (all inference needs)
    generator_ema   the same, a moving average of them (when model.ema_decay > 0; inference's
                    default)
    discriminator   {'params', 'batch_stats'} of the PatchGAN
    opt_state       {'generator', 'discriminator'} optax Adam states
    progress        {'step', 'rng'}

The input position is not saved: it follows from the step (data/input_pipeline.py), so a run
resumes on any number of hosts and devices. Checkpoints from before that carry a `data_iterator`
item (grain's per-process position); restoring reads only the state items and ignores it.

Saves are asynchronous (the device->host copy happens before `save` returns, so the train step
may donate the buffers right after); the last `keep` checkpoints are kept (`LatestN`
preservation policy).

Restore reads the latest checkpoint, on every host the same one (process 0's listing, broadcast).
If it fails on any host, every host stops with a `CheckpointRestoreError` naming the step: a
transient storage error must not silently roll a run back. With `fallback=True`
(`--config.restore_fallback=True`), every host instead moves on to the previous step, and process
0 renames the bad one to `<step>.bad-<UTC time>` (outside Orbax's step names, so a later save of
that step does not collide with it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers

from pix2pitch_jax.core import cli
from pix2pitch_jax.core import workdir as workdir_lib

GENERATOR_ITEM = 'generator'  # what inference restores: these weights,
GENERATOR_EMA_ITEM = 'generator_ema'  # or their moving average when the run kept one
FALLBACK_FLAG = '--config.restore_fallback=True'


class CheckpointRestoreError(cli.UserInputError):
  """The checkpoint asked for (by default the latest) could not be restored; nothing changed."""


class NoRestorableCheckpointError(CheckpointRestoreError):
  """With `fallback`: every checkpoint failed to restore and was moved aside."""


def checkpoint_dir(workdir: str | os.PathLike) -> epath.Path:
  return workdir_lib.Workdir(workdir).checkpoints


class _Manager(ocp.CheckpointManager):
  """Orbax's manager, kept away from JAX's preemption sync point.

  The training loop alone polls the sync point (runtime/preemption.py), once per step on every
  host. Orbax would also poll it with its own step numbers, from its background finalize thread
  too, moving this host's counter while the sync protocol may be reading it; the loop forces the
  save at the step it decided on instead.
  """

  def reached_preemption(self, step: int) -> bool:
    del step
    return False


class Checkpointer:
  """Save/restore of a training state: a dict of items, each a pytree."""

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    save_every_steps: int = 1000,
    keep: int = 3,
    read_only: bool = False,
  ):
    options = ocp.CheckpointManagerOptions(
      save_interval_steps=0 if read_only else max(1, save_every_steps),
      preservation_policy=checkpoint_managers.LatestN(n=max(1, keep)),
      enable_async_checkpointing=True,
      cleanup_tmp_directories=not read_only,  # half-written saves of a killed run
      read_only=read_only,
      create=not read_only,
    )
    self.directory = checkpoint_dir(workdir)
    self.read_only = read_only
    self._manager = _Manager(self.directory, options=options)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: dict[str, Any], *, force: bool = False) -> bool:
    """Start an async save if `step` is due (or `force`); returns whether it saves."""
    args = {name: ocp.args.StandardSave(value) for name, value in state.items()}
    return self._manager.save(step, args=ocp.args.Composite(**args), force=force)

  def restore(
    self, abstract_state: dict[str, Any], *, step: int | None = None, fallback: bool = False
  ) -> tuple[int, dict[str, Any]] | None:
    """Restore `step` (default: the latest) into `abstract_state`'s shardings.

    `abstract_state` holds jax.ShapeDtypeStructs (with shardings) for a subset of the items;
    only those items are read. Returns (step, state), or None when there is no checkpoint.
    Every host restores the same step and gets the same outcome: the state, or a
    `CheckpointRestoreError`. `fallback` (latest only, not read-only): move a checkpoint that
    fails aside and try the one before it; `NoRestorableCheckpointError` when none is left.
    """
    tried: list[int] = []
    while True:
      candidate = step if step is not None else _from_process_0(self.latest_step())
      if candidate is None:
        if tried:
          raise NoRestorableCheckpointError(
            f'none of the checkpoints {tried} in {self.directory} could be restored (see the '
            'log); they were moved aside (<step>.bad-<time>), so a rerun starts from scratch'
          )
        return None
      state, error = self._try_restore(candidate, abstract_state)
      failed = _processes_where(error is not None)
      if not failed:
        return candidate, state
      if step is not None or self.read_only or not fallback:
        raise CheckpointRestoreError(self._failure_message(candidate, error, failed, step))
      tried.append(candidate)
      self._move_aside(candidate)

  def _try_restore(
    self, step: int, abstract_state: dict[str, Any]
  ) -> tuple[dict[str, Any], str | None]:
    args = {name: ocp.args.StandardRestore(abstract_state[name]) for name in abstract_state}
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # any failure: the decision is taken below, on every host alike
      first_line = str(e).splitlines()[0] if str(e) else ''
      error = f'{type(e).__name__}: {first_line}'
      logging.error('Checkpoint %d in %s failed to restore (%s)', step, self.directory, error)
      return {}, error
    return {name: restored[name] for name in abstract_state}, None

  def _failure_message(
    self, step: int, error: str | None, failed: list[int], asked_for: int | None
  ) -> str:
    where = f' ({error})' if error else ''
    if jax.process_count() > 1:
      where += f' on process(es) {failed}'
    message = f'checkpoint step {step} in {self.directory} failed to restore{where}.'
    if asked_for is not None:
      return f'{message} Available steps: {self.all_steps()}.'
    if self.read_only:
      return f'{message} Choose another with --checkpoint=<step> (available: {self.all_steps()}).'
    return (
      f'{message} Nothing was changed: rerun if the storage error was transient, or rerun with '
      f'{FALLBACK_FLAG} to move step {step} aside and resume from the checkpoint before it.'
    )

  def _move_aside(self, step: int) -> None:
    """Process 0 renames `<step>` to `<step>.bad-<UTC time>`; every host then relists."""
    if jax.process_index() == 0:
      bad = self.directory / str(step)
      target = self.directory / f'{step}.bad-{time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}'
      bad.rename(target)
      logging.warning(
        'restore_fallback: moved checkpoint step %d aside to %s; trying the previous one.',
        step,
        target,
      )
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'pix2pitch_checkpoint_moved_aside_{step}')
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _from_process_0(step: int | None) -> int | None:
  """Process 0's value of `step` on every host (hosts may list a bucket at different times)."""
  if jax.process_count() == 1:
    return step
  value = int(multihost_utils.broadcast_one_to_all(np.int32(-1 if step is None else step)))
  return None if value < 0 else value


def _processes_where(flag: bool) -> list[int]:
  """The indices of the processes where `flag` holds (one all-gather; none on one process)."""
  if jax.process_count() == 1:
    return [0] if flag else []
  flags = multihost_utils.process_allgather(np.asarray(flag, np.int32))
  return [int(i) for i in np.flatnonzero(np.asarray(flags))]


# ------------------------------------------------------------------------------------------------
# Single pytrees (small models saved next to a run, e.g. the era classifier).


# These are saved and restored by one process alone, even in a multi-process job (process 0 trains
# the era classifier, every process loads it): no barrier with the other processes.


def save_pytree(path: str | os.PathLike, tree: Any) -> None:
  """Save a pytree of this process's arrays to `path` (a directory, replaced if it exists)."""
  # As host copies: with several processes Orbax saves device arrays only as global arrays.
  with ocp.StandardCheckpointer(multiprocessing_options=_this_process_only()) as checkpointer:
    checkpointer.save(workdir_lib.as_path(path), jax.device_get(tree), force=True)


def restore_pytree(path: str | os.PathLike, abstract_tree: Any) -> Any:
  """Restore what `save_pytree` wrote, shaped like `abstract_tree` (ShapeDtypeStructs or arrays);
  leaves without a sharding land on this process's first device."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
    lambda a: (
      a
      if getattr(a, 'sharding', None) is not None
      else jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device)
    ),
    abstract_tree,
  )
  with ocp.StandardCheckpointer(multiprocessing_options=_this_process_only()) as checkpointer:
    return checkpointer.restore(workdir_lib.as_path(path), target)


def _this_process_only() -> ocp.options.MultiprocessingOptions:
  index = jax.process_index()
  return ocp.options.MultiprocessingOptions(
    primary_host=index, active_processes={index}, barrier_sync_key_prefix=f'process{index}'
  )
