"""Orbax checkpoints: the one home for saving, resuming and loading training state.

One checkpoint per saved step under `<workdir>/checkpoints/<step>/`, with one item per top-level
entry of the training state, whatever the model family, plus the input position. For pix2pix:

    generator       {'params', 'batch_stats'} of the U-Net (all inference needs)
    discriminator   {'params', 'batch_stats'} of the PatchGAN
    opt_state       {'generator', 'discriminator'} optax Adam states
    progress        {'step', 'rng'}
    data_iterator   the grain iterator position, one JSON file per process

Saves are asynchronous (the device->host copy happens before `save` returns, so the train step
may donate the buffers right after); the last `keep` checkpoints are kept (`LatestN`
preservation policy). A checkpoint that fails to restore is logged and the previous one is
tried. A SIGTERM (single process) or a preemption notice (multi-process, via jax.distributed)
asks the training loop to save and stop.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from orbax.checkpoint import checkpoint_managers

from pix2pitch_jax.core import workdir as workdir_lib

GENERATOR_ITEM = 'generator'  # all that inference restores
ITERATOR_ITEM = 'data_iterator'


class NoRestorableCheckpointError(RuntimeError):
  """Checkpoints exist but none of them could be restored."""


def checkpoint_dir(workdir: str | os.PathLike) -> epath.Path:
  return workdir_lib.Workdir(workdir).checkpoints


class Checkpointer:
  """Save/restore of a training state (a dict of items, each a pytree) + the data iterator."""

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
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(
    self, step: int, state: dict[str, Any], data_iterator: Any = None, *, force: bool = False
  ) -> bool:
    """Start an async save if `step` is due (or `force`); returns whether it saves."""
    args = {name: ocp.args.StandardSave(value) for name, value in state.items()}
    if data_iterator is not None:
      args[ITERATOR_ITEM] = grain.checkpoint.CheckpointSave(data_iterator)
    return self._manager.save(step, args=ocp.args.Composite(**args), force=force)

  def restore(
    self, abstract_state: dict[str, Any], data_iterator: Any = None, *, step: int | None = None
  ) -> tuple[int, dict[str, Any]] | None:
    """Restore `step` (default: the newest restorable) into `abstract_state`'s shardings.

    `abstract_state` holds jax.ShapeDtypeStructs (with shardings) for a subset of the items;
    only those items are read. Returns (step, state) or None when there is no checkpoint.
    The data iterator, if given, is restored in place.
    """
    steps = [step] if step is not None else self.all_steps()[::-1]
    if not steps:
      return None
    for candidate in steps:
      try:
        return candidate, self._restore_step(candidate, abstract_state, data_iterator)
      except Exception as e:
        logging.error(
          'Checkpoint %d in %s failed to restore (%s: %s)%s',
          candidate,
          self.directory,
          type(e).__name__,
          str(e).splitlines()[0] if str(e) else '',
          '; trying the previous one' if candidate != steps[-1] else '',
        )
    raise NoRestorableCheckpointError(
      f'none of the checkpoints {steps} in {self.directory} could be restored (see log)'
    )

  def _restore_step(
    self, step: int, abstract_state: dict[str, Any], data_iterator: Any
  ) -> dict[str, Any]:
    args = {name: ocp.args.StandardRestore(abstract_state[name]) for name in abstract_state}
    if data_iterator is not None:
      args[ITERATOR_ITEM] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    return {name: restored[name] for name in abstract_state}

  def reached_preemption(self, step: int) -> bool:
    """True when a multi-process job got a preemption notice (synchronised over hosts)."""
    return jax.process_count() > 1 and self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


class StopSignal:
  """Turns SIGTERM (and SIGINT) into a flag the training loop polls, then saves and exits.

  Only installable from the main thread of a single process; in a multi-process job orbax's
  preemption sync (`Checkpointer.reached_preemption`) is the mechanism.
  """

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    self.received: int | None = None
    self._signals = signals
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> StopSignal:
    if threading.current_thread() is threading.main_thread():
      for sig in self._signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def _handle(self, signum, frame) -> None:
    del frame
    logging.warning(
      'Received %s: saving a checkpoint and stopping (send it again to stop at once).',
      signal.Signals(signum).name,
    )
    self.received = signum
    # A second Ctrl-C / SIGTERM gets the previous behaviour (KeyboardInterrupt, termination).
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))


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
