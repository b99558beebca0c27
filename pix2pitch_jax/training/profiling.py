"""Where a training run's time and memory go: goodput, a profiler window, the step's memory.

`RunMonitor` is what the loop (`training/loop.py`) calls around its work:

* **Goodput.** Every host measures its own wall time from the start of `loop.train` and charges
  blocks of it to categories (`BADPUT`): start-up (mesh, restore or init), compilation, waiting
  for input, evaluation, checkpointing, logging, profiling. What no category claims is time in
  train steps; `goodput` is its share of the wall time and `step_time_s` that time per step.
  JAX dispatches steps asynchronously, so a step's device time is paid where the host next
  waits for it (the metrics fetch at log steps, or a full dispatch queue): inside the train-step
  share. Input time is time the host spent getting the next batch; where it overlaps device work
  still queued it is counted as input, so goodput is a lower bound.
* **Profiler window.** `config.profile_steps = 'start:stop'` traces steps start..stop-1 with
  `jax.profiler` on every host; the trace is written to a local temporary folder and copied
  into `<workdir>/profile` (through etils.epath, so a `gs://` workdir works), where
  `tensorboard --logdir <workdir>/profile` (the profile plugin) or xprof reads it.
* **Memory.** The train step is compiled ahead of its first call (`jit(...).lower(...).compile()`,
  the same executable the call then uses) and XLA's `memory_analysis()` of it is logged: per
  device, the bytes of arguments, outputs, aliased (donated) buffers, temporaries and code.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from pix2pitch_jax.core import workdir as workdir_lib

# Everything a host does besides train steps, as charged by the loop.
BADPUT = ('startup', 'compile', 'input', 'eval', 'checkpoint', 'log', 'profile')
# Figures TensorBoard shows for every host (the rest of the breakdown for the logging host only).
PER_HOST = ('goodput', 'step_time_s', 'input_s')
# XLA's CompiledMemoryStats fields, by the names used in logs and the summary.
MEMORY_FIELDS = {
  'argument': 'argument_size_in_bytes',
  'output': 'output_size_in_bytes',
  'alias': 'alias_size_in_bytes',
  'temp': 'temp_size_in_bytes',
  'generated_code': 'generated_code_size_in_bytes',
  'peak': 'peak_memory_in_bytes',
}


# ----------------------------------------------------------------------------- goodput


class Goodput:
  """One host's wall time, split into train steps and the `BADPUT` categories."""

  def __init__(self, clock: Callable[[], float] = time.perf_counter):
    self._clock = clock
    self._start = clock()
    self.badput = dict.fromkeys(BADPUT, 0.0)
    self.steps = 0

  @contextlib.contextmanager
  def timing(self, category: str) -> Iterator[None]:
    """Charge the time spent in the block to `category`."""
    if category not in self.badput:
      raise ValueError(f'unknown category {category!r}; one of {BADPUT}')
    start = self._clock()
    try:
      yield
    finally:
      self.badput[category] += self._clock() - start

  def charge_since_start(self, category: str) -> None:
    """Charge everything not yet accounted for since the start to `category` (start-up)."""
    self.badput[category] += max(self.wall_s() - sum(self.badput.values()), 0.0)

  def wall_s(self) -> float:
    return self._clock() - self._start

  def figures(self) -> dict[str, float]:
    """`goodput` in [0, 1], `step_time_s`, `wall_s` and `<category>_s` for this host."""
    wall = self.wall_s()
    in_steps = max(wall - sum(self.badput.values()), 0.0)
    return {
      'goodput': in_steps / wall if wall > 0 else 0.0,
      'step_time_s': in_steps / self.steps if self.steps else 0.0,
      'wall_s': wall,
      **{f'{name}_s': seconds for name, seconds in self.badput.items()},
    }


def per_host(values: dict[str, float]) -> list[dict[str, float]]:
  """`values` of every process, in process order (a collective when there are several)."""
  if jax.process_count() == 1:
    return [dict(values)]
  keys = sorted(values)
  rows = multihost_utils.process_allgather(np.asarray([values[k] for k in keys], np.float64))
  return [dict(zip(keys, map(float, row))) for row in np.asarray(rows)]


# ----------------------------------------------------------------------------- profiler window


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
  """'start:stop' -> (start, stop), 1 <= start < stop; '' -> None; ValueError otherwise."""
  spec = str(spec).strip()
  if not spec:
    return None
  try:
    start, stop = (int(part) for part in spec.split(':'))
  except ValueError:
    raise ValueError(f"profile_steps must be 'start:stop' (e.g. '10:15'), got {spec!r}") from None
  if not 1 <= start < stop:
    raise ValueError(f'profile_steps {spec!r}: need 1 <= start < stop')
  return start, stop


class ProfileWindow:
  """`jax.profiler` tracing of steps [start, stop), copied into `<workdir>/profile`."""

  def __init__(self, spec: str, destination: epath.Path):
    self.window = parse_profile_steps(spec)
    self.destination = destination
    self._local: str | None = None  # the trace folder while tracing
    self.done = False

  @property
  def active(self) -> bool:
    return self._local is not None

  def before_step(self, step: int) -> None:
    """Start tracing before the first step of the window (or the first one after a resume)."""
    if self.window is None or self.active or self.done:
      return
    start, stop = self.window
    if start <= step < stop:
      self._local = tempfile.mkdtemp(prefix='pix2pitch_profile_')
      jax.profiler.start_trace(self._local)
      logging.info('Profiling steps %d to %d.', step, stop - 1)

  def after_step(self, step: int, outputs: Any) -> None:
    """Stop once the window's last step has finished on the device."""
    if self.active and self.window is not None and step >= self.window[1] - 1:
      jax.block_until_ready(outputs)
      self.stop()

  def stop(self) -> None:
    """Stop tracing (if tracing) and copy the trace into the destination."""
    if self._local is None:
      return
    local, self._local = pathlib.Path(self._local), None
    jax.profiler.stop_trace()
    self.done = True
    copied = copy_tree(local, self.destination)
    shutil.rmtree(local)
    logging.info('Profile written to %s (%d files).', self.destination, copied)


def copy_tree(source: pathlib.Path, destination: epath.Path) -> int:
  """Copy the files under the local folder `source` to the same relative paths under
  `destination` (any epath: local or a bucket)."""
  count = 0
  for path in sorted(source.rglob('*')):
    if path.is_file():
      target = destination / path.relative_to(source).as_posix()
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(path.read_bytes())
      count += 1
  return count


# ----------------------------------------------------------------------------- memory


def memory_analysis(compiled: Any) -> dict[str, int]:
  """XLA's per-device memory figures of a compiled program (`MEMORY_FIELDS`); {} if none."""
  stats = compiled.memory_analysis()
  if stats is None:  # a backend without the analysis
    return {}
  return {
    name: int(getattr(stats, field))
    for name, field in MEMORY_FIELDS.items()
    if getattr(stats, field, None) is not None
  }


def format_memory(figures: dict[str, int]) -> str:
  return ', '.join(f'{name} {value / 2**20:.1f} MiB' for name, value in figures.items())


# ----------------------------------------------------------------------------- the loop's hooks


class RunMonitor:
  """The loop's hooks for goodput, the profiler window and the compiled step's memory."""

  def __init__(self, config, workdir: str):
    self.goodput = Goodput()
    self.profile = ProfileWindow(config.profile_steps, workdir_lib.Workdir(workdir).profile)
    self.memory: dict[str, int] = {}

  def timing(self, category: str) -> contextlib.AbstractContextManager[None]:
    return self.goodput.timing(category)

  def loop_started(self) -> None:
    self.goodput.charge_since_start('startup')

  def compile(self, jitted: Any, *args: Any) -> None:
    """Compile `jitted` for `args` ahead of its first call and log its memory analysis.

    `jitted` has explicit in/out shardings, so its first call finds this executable in JAX's
    in-memory cache and does not compile again.
    """
    with self.timing('compile'):
      compiled = jitted.lower(*args).compile()
    self.memory = memory_analysis(compiled)
    logging.info(
      'Compiled the train step in %.1f s; per device: %s.',
      self.goodput.badput['compile'],
      format_memory(self.memory) or 'no memory analysis on this backend',
    )

  def before_step(self, step: int) -> None:
    with self.timing('profile'):
      self.profile.before_step(step)

  def after_step(self, step: int, outputs: Any) -> None:
    self.goodput.steps += 1
    with self.timing('profile'):
      self.profile.after_step(step, outputs)

  def scalars(self) -> dict[str, float]:
    """TensorBoard scalars: goodput, step time and input wait of every host, this host's
    breakdown. A collective on several processes: every host calls it at the same steps."""
    own = self.goodput.figures()
    out = {f'perf/{k}': v for k, v in own.items() if k not in PER_HOST}
    for i, host in enumerate(per_host({k: own[k] for k in PER_HOST})):
      out.update({f'perf/{k}/host_{i}': host[k] for k in PER_HOST})
    return out

  def summary(self) -> dict[str, Any]:
    """This host's figures for the training summary."""
    return {
      **self.goodput.figures(),
      'host': jax.process_index(),
      'step_memory_bytes': dict(self.memory),
    }

  def close(self) -> None:
    """Stop a trace the run ended inside of."""
    self.profile.stop()
