"""The training loop every model family shares: `train(task, workdir)`.

A model family (pix2pix today; others later) is a `Task`: it builds its state, steps it, and
evaluates it. Everything around that is here and written once: config checks that hold for any
family, the device mesh, initialising straight into the state's shardings, resume from the latest
checkpoint (the input position follows from its step), the jitted step with a donated state (its
batch already on the devices, metrics read one step late), NaN/Inf checks before every save,
progress lines with an ETA, TensorBoard and metrics.jsonl, evaluation and checkpoint intervals,
and stopping cleanly on SIGTERM / Ctrl-C / pre-emption, at the same step on every host
(runtime/preemption.py).

The state is a plain dict of arrays laid out like a checkpoint (runtime/checkpointing.py), so it
can be donated, sharded (replicated or FSDP) and saved without conversion. It must hold
`state['progress']['step']` (int32) and `state['progress']['rng']` (key data); every other
top-level item is the family's own and is saved as its own checkpoint item.

Resume: the latest checkpoint in `<workdir>/checkpoints` (one that fails to restore stops the run
unless `config.restore_fallback`; runtime/checkpointing.py), else a fresh initialisation from
`config.seed`.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterator
from typing import Any, Protocol

import jax
import ml_collections
from absl import logging

from pix2pitch_jax.core import configs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import checkpointing, preemption, sharding
from pix2pitch_jax.training import profiling, summaries

State = dict[str, Any]
# ETAs beyond this (~27 years) print as unknown: no rate that slow is a real estimate.
MAX_ETA_SECONDS = 1e9


class Task(Protocol):
  """One model family's part of training; `train` does the rest.

  `init_state` and `train_step` are pure functions of their arguments (the loop jits them with
  explicit shardings; `train_step`'s state is donated). `train_iterator(start_step)` yields this
  host's rows of each global batch, from the batch of step `start_step + 1` on.
  """

  config: ml_collections.ConfigDict
  meta: records.DatasetMeta
  progress_keys: tuple[str, ...]  # metrics shown on the console progress line

  def init_state(self) -> State: ...

  def train_step(self, state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]: ...

  def train_iterator(self, start_step: int) -> Iterator[dict[str, Any]]: ...

  def evaluate(
    self,
    state: State,
    *,
    mesh: jax.sharding.Mesh,
    state_shardings: Any,
    log: summaries.TrainingSummaries,
    step: int,
  ) -> dict[str, float]: ...


# ----------------------------------------------------------------------------- configuration


def require(ok: bool, message: str) -> None:
  """A ConfigError ('Bad config: ...', one line at the command line) unless `ok`."""
  if not ok:
    raise configs.ConfigError(f'Bad config: {message}')


def mesh_size(config) -> int:
  """Devices to shard the batch over: `num_devices`, or all of them.

  With num_devices=0 in a single process, a batch smaller than (or not divisible by) the device
  count uses the largest device count that divides it, so small-batch runs work anywhere.
  Multi-process runs always use every device.
  """
  if config.num_devices:
    return config.num_devices
  n = jax.device_count()
  if jax.process_count() > 1:
    return n
  return max(d for d in range(1, n + 1) if config.batch_size % d == 0)


def validate_common(config: ml_collections.ConfigDict) -> records.DatasetMeta:
  """The checks that hold for every family, before anything compiles; returns the dataset meta."""
  configs.check_known_keys(config)
  c = config
  require(bool(c.data_dir), 'data_dir is required (--config.data_dir=...)')
  reason = records.unreadable_reason(c.data_dir)
  require(reason is None, str(reason))
  require(workdir_lib.as_path(c.data_dir).is_dir(), f'data_dir {c.data_dir!r} is not a directory')
  require(
    c.image_size >= 8 and c.image_size & (c.image_size - 1) == 0,
    f'image_size must be a power of two >= 8, got {c.image_size}',
  )
  for name in (
    'batch_size',
    'num_train_steps',
    'checkpoint_every_steps',
    'keep_checkpoints',
    'log_every_steps',
    'num_images',
  ):
    require(c[name] >= 1, f'{name} must be >= 1, got {c[name]}')
  for name in ('eval_every_steps', 'eval_max_examples', 'num_devices', 'fsdp_min_size'):
    require(c[name] >= 0, f'{name} must be >= 0, got {c[name]}')
  require(
    c.mesh.dcn_data_parallelism >= 1,
    f'mesh.dcn_data_parallelism must be >= 1, got {c.mesh.dcn_data_parallelism}',
  )
  try:
    profiling.parse_profile_steps(c.profile_steps)
  except ValueError as e:
    raise configs.ConfigError(f'Bad config: {e}') from None
  require(
    c.num_devices <= jax.device_count(),
    f'num_devices={c.num_devices} but only {jax.device_count()} devices exist',
  )
  require(
    c.input.workers >= -1 and c.input.shuffle_buffer >= 0,
    'input.workers must be >= 0 or -1 (auto) and input.shuffle_buffer >= 0',
  )
  num_devices = mesh_size(c)
  require(
    c.batch_size % num_devices == 0 and c.batch_size % jax.process_count() == 0,
    f'batch_size={c.batch_size} must be divisible by the {num_devices} devices and '
    f'{jax.process_count()} processes',
  )
  meta = records.read_meta(c.data_dir)
  require(
    meta.image_size == c.image_size,
    f'image_size={c.image_size} but the dataset in {c.data_dir} has '
    f'{meta.image_size}x{meta.image_size} mels (set --config.image_size={meta.image_size})',
  )
  return meta


# ----------------------------------------------------------------------------- state


def _state_shardings(task: Task, abstract: Any, mesh) -> Any:
  c = task.config
  return sharding.state_shardings(abstract, mesh, c.fsdp, min_size=c.fsdp_min_size)


def create_state(task: Task, mesh) -> tuple[State, Any]:
  """Initialise straight into the target shardings (no host copy of the full state)."""
  abstract = jax.eval_shape(task.init_state)
  shardings = _state_shardings(task, abstract, mesh)
  return jax.jit(task.init_state, out_shardings=shardings)(), shardings


def abstract_state(task: Task, mesh) -> tuple[State, Any]:
  """ShapeDtypeStructs with shardings: the restore target for checkpoints."""
  abstract = jax.eval_shape(task.init_state)
  shardings = _state_shardings(task, abstract, mesh)
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
  ), shardings


def jit_train_step(task: Task, mesh, state_shardings):
  """`task.train_step` jitted with explicit shardings and the state donated."""
  data, repl = sharding.data_sharding(mesh), sharding.replicated(mesh)
  return jax.jit(
    task.train_step,
    in_shardings=(state_shardings, data),
    out_shardings=(state_shardings, repl),
    donate_argnums=0,
  )


def jit_eval_step(eval_step, mesh, state_shardings):
  """A family's `eval_step(state, batch) -> (scalars, per-row outputs)` jitted for the loop's
  state shardings: scalars replicated, per-row outputs sharded like the batch."""
  data, repl = sharding.data_sharding(mesh), sharding.replicated(mesh)
  return jax.jit(eval_step, in_shardings=(state_shardings, data), out_shardings=(repl, data))


def _restore_or_init(task: Task, mesh, *, ckpt) -> tuple[State, Any]:
  target, shardings = abstract_state(task, mesh)
  restored = ckpt.restore(target, fallback=task.config.restore_fallback)
  if restored is None:
    logging.info(
      'No checkpoint in %s: initialising from seed %d.', ckpt.directory, task.config.seed
    )
    return create_state(task, mesh)
  step, state = restored
  logging.info('Resumed from checkpoint step %d in %s.', step, ckpt.directory)
  return state, shardings


# ----------------------------------------------------------------------------- observability


def check_finite(step: int, metrics: dict[str, float], last_checkpoint: int | None) -> None:
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    raise FloatingPointError(
      f'non-finite training metrics at step {step}: {bad}; stopping. The last good checkpoint '
      f'(step {last_checkpoint}) is intact.'
    )


class Throughput:
  """Steps/s over the training time only (paused around eval and checkpointing)."""

  def __init__(self, step: int):
    self.step, self.busy, self._start = step, 0.0, time.perf_counter()

  def pause(self):
    self.busy += time.perf_counter() - self._start

  def resume(self):
    self._start = time.perf_counter()

  def report(self, step: int) -> float:
    self.pause()
    rate = (step - self.step) / max(self.busy, 1e-9)
    self.step, self.busy = step, 0.0
    self.resume()
    return rate


def format_eta(remaining_steps: int, rate: float) -> str:
  """Time left at `rate` steps/s as H:MM:SS, or '?' when the rate gives no estimate.

  The first report after compilation has a rate of ~0 (no step timed yet); the ETA is then
  unknown, not a timedelta too large to build (OverflowError). Likewise for nan, negative or
  absurdly small rates. An infinite rate means nothing left to wait for.
  """
  if remaining_steps <= 0:
    return str(datetime.timedelta(0))
  if not rate > 0:  # 0, negative or nan
    return '?'
  seconds = remaining_steps / rate
  if not seconds < MAX_ETA_SECONDS:
    return '?'
  return str(datetime.timedelta(seconds=int(seconds)))


def progress_line(
  *,
  step: int,
  total: int,
  rate: float,
  batch_size: int,
  metrics: dict[str, float],
  keys: tuple[str, ...],
) -> str:
  shown = '  '.join(f'{k} {metrics[k]:.4g}' for k in keys if k in metrics)
  return (
    f'step {step}/{total}  {rate:.2f} steps/s  {rate * batch_size:.1f} examples/s  '
    f'ETA {format_eta(total - step, rate)}  {shown}'
  )


# ----------------------------------------------------------------------------- the loop


def _write_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    workdir_lib.Workdir(workdir).config_json.write_text(
      config.to_json_best_effort(indent=2, sort_keys=True)
    )


def train(task: Task, workdir: str) -> dict[str, Any]:
  """Train `task` (resuming from `workdir` if it has checkpoints); returns a summary dict.

  Summary: final `step`, the last logged metrics, the last evaluation's metrics, `resumed_from`
  (step or None), `preempted` (bool), and this host's time and memory figures
  (`profiling.RunMonitor.summary`: `goodput`, `step_time_s`, `<category>_s`, `host`,
  `step_memory_bytes`).
  """
  config = task.config
  monitor = profiling.RunMonitor(config, workdir)  # starts this host's wall clock
  workdir_lib.Workdir(workdir).root.mkdir(parents=True, exist_ok=True)
  _write_config(config, workdir)
  mesh = sharding.make_mesh(
    mesh_size(config), dcn_data_parallelism=config.mesh.dcn_data_parallelism
  )
  if mesh.size < jax.device_count():
    logging.warning(
      'Training on %d of %d devices (batch_size=%d, num_devices=%d).',
      mesh.size,
      jax.device_count(),
      config.batch_size,
      config.num_devices,
    )
  ckpt = checkpointing.Checkpointer(
    workdir, save_every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints
  )
  log = summaries.TrainingSummaries(
    workdir, enabled=jax.process_index() == 0, mel_params=task.meta.mel_params
  )
  data_iter: Any = None
  try:
    state, shardings = _restore_or_init(task, mesh, ckpt=ckpt)
    start = int(jax.device_get(state['progress']['step']))
    data_iter = task.train_iterator(start)  # the input position follows from the step
    train_fn = jit_train_step(task, mesh, shardings)
    with preemption.StopRequest(start) as stop:
      summary = _train_loop(
        task,
        state,
        data_iter=data_iter,
        train_fn=train_fn,
        mesh=mesh,
        shardings=shardings,
        ckpt=ckpt,
        log=log,
        stop=stop,
        monitor=monitor,
      )
  finally:
    monitor.close()
    ckpt.close()
    log.close()
    if hasattr(data_iter, 'close'):
      data_iter.close()
  return summary


def _train_loop(
  task: Task, state, *, data_iter, train_fn, mesh, shardings, ckpt, log, stop, monitor
) -> dict:
  config = task.config
  start = int(jax.device_get(state['progress']['step']))
  summary: dict[str, Any] = {'resumed_from': start or None, 'preempted': False, 'step': start}
  last_saved = ckpt.latest_step()
  timer = Throughput(start)
  monitor.loop_started()
  # Each step's batch is put on the devices while the previous step runs (see the end of the loop).
  with monitor.timing('input'):
    batch = sharding.shard_batch(next(data_iter), mesh) if start < config.num_train_steps else None
  pending = None  # (step, metrics) of a log step, read one step late

  def report(step: int, metrics: Any) -> None:  # reads timer and last_saved as they are now
    _report(
      task, log, summary, monitor=monitor, timer=timer, step=step, metrics=metrics, last=last_saved
    )

  for step in range(start + 1, config.num_train_steps + 1):
    if step == start + 1:  # ahead of the first call: compile time and memory analysis
      monitor.compile(train_fn, state, batch)
    monitor.before_step(step)
    state, metrics = train_fn(state, batch)
    monitor.after_step(step, metrics)
    if step == start + 1:  # keep compilation out of the throughput figures
      jax.block_until_ready(metrics)
      timer = Throughput(step)
    if pending is not None:
      # This step is queued behind the one that produced them: reading them leaves no device idle.
      report(*pending)
      pending = None
    final = step == config.num_train_steps
    preempt = stop.reached(step)  # the same step on every host
    save = final or preempt or step % config.checkpoint_every_steps == 0
    if save:
      # Checked before every save (the save waits for this step anyway), and every earlier log
      # step's metrics were checked above: the newest checkpoint is always a finite one.
      report(step, metrics)
    elif step % config.log_every_steps == 0:
      pending = (step, metrics)
    timer.pause()
    if final or (config.eval_every_steps and step % config.eval_every_steps == 0):
      with monitor.timing('eval'):
        evaluation = task.evaluate(state, mesh=mesh, state_shardings=shardings, log=log, step=step)
      summary.update(evaluation)
    with monitor.timing('checkpoint'):
      saved = save and ckpt.save(step, state, force=final or preempt)
    if saved:
      last_saved = step
    timer.resume()
    summary['step'] = step
    if preempt:
      logging.warning('Stopping at step %d after a stop request; checkpoint saved.', step)
      summary['preempted'] = True
      break
    if not final:
      with monitor.timing('input'):
        batch = sharding.shard_batch(next(data_iter), mesh)
  if pending is not None:
    report(*pending)
  with monitor.timing('checkpoint'):
    ckpt.wait()
  summary.update(monitor.summary())
  return summary


def _report(
  task: Task, log, summary: dict, *, monitor, timer: Throughput, step: int, metrics, last
) -> None:
  """Fetch one step's metrics, stop on a non-finite value, log them (with every host's time
  figures: a collective, so every host reports at the same steps) and keep them in `summary`."""
  host = {k: float(v) for k, v in jax.device_get(metrics).items()}
  check_finite(step, host, last)
  with monitor.timing('log'):
    _log_metrics(task, log, step, timer.report(step), host)
    log.scalars(step, monitor.scalars())
  summary.update(host)


def _log_metrics(
  task: Task, log: summaries.TrainingSummaries, step: int, rate: float, host: dict
) -> None:
  config = task.config
  log.scalars(step, {**host, 'steps_per_s': rate, 'examples_per_s': rate * config.batch_size})
  logging.info(
    '%s',
    progress_line(
      step=step,
      total=config.num_train_steps,
      rate=rate,
      batch_size=config.batch_size,
      metrics=host,
      keys=task.progress_keys,
    ),
  )
