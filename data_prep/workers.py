"""The work done in worker processes (probe a recording, write a shard) and the pool that runs it.

Work is submitted in coarse units (one recording, one whole shard of examples), so the per-clip
work dominates and process start-up is paid once per worker, not per clip. Workers are spawned
only when JAX is loaded in the parent (forking a threaded runtime is unsafe); otherwise they
are forked after the heavy imports are warmed, so start-up costs milliseconds, not seconds.
"""

from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import dataclasses
import functools
import multiprocessing
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from data_prep import clips, midi
from pix2pitch_jax.audio import numba_cache, spectrogram
from pix2pitch_jax.data import records

T = TypeVar('T')
R = TypeVar('R')


class SkipIsFatal(RuntimeError):
  """Raised under --strict when an input has to be skipped."""


# ---------------------------------------------------------------------------------------------
# Probing recordings.


@dataclasses.dataclass(frozen=True)
class ProbeJob:
  source_id: str
  path: str
  settings: clips.ClipSettings
  render_to: str | None = None  # MIDI only: where the rendered wav is cached
  sample_rate: int = 22_050  # MIDI render rate
  render_max_seconds: float | None = None
  render_ensemble: midi.Ensemble | None = None  # the instruments to play the parts with


@dataclasses.dataclass(frozen=True)
class ProbeResult:
  source_id: str
  audio_path: str  # the file clips are read from (the rendered wav for MIDI)
  probe: clips.Probe


def run_probe(job: ProbeJob) -> ProbeResult:
  """Render MIDI if needed (cached), then probe; bad inputs come back as a reason, never raise."""
  path = job.path
  if job.render_to is not None:
    if not os.path.exists(job.render_to):
      try:
        midi.render_midi(
          job.path,
          job.render_to,
          job.sample_rate,
          max_seconds=job.render_max_seconds,
          ensemble=job.render_ensemble,
        )
      except midi.MidiRenderError as e:
        return ProbeResult(job.source_id, path, clips.Probe(reason=str(e)))
    path = job.render_to
  return ProbeResult(job.source_id, path, clips.probe_recording(path, job.settings))


# ---------------------------------------------------------------------------------------------
# Writing shards.


@dataclasses.dataclass(frozen=True)
class ShardJob:
  path: str
  split: str
  examples: tuple  # of pairing.Example
  mel_params: spectrogram.MelParams
  era_names: tuple[str, ...]
  image_mode: str = 'crop'
  strict: bool = False
  store_audio: bool = False  # also write each clip's waveform (records' `audio`)


@dataclasses.dataclass(frozen=True)
class ShardResult:
  path: str
  written: int
  skipped: tuple[tuple[str, str, str], ...]  # (painting_id, clip_source_id, reason)
  by_era: dict[str, int]  # examples written per era name
  seconds: float


def run_shard(job: ShardJob) -> ShardResult:
  """Materialise the shard's examples and write it atomically; bad inputs are skipped + listed."""
  start = time.perf_counter()
  skipped: list[tuple[str, str, str]] = []
  by_era: collections.Counter = collections.Counter()
  try:
    written = records.write_shard(job.path, _records(job, skipped, by_era))
  except BaseException:
    _remove_own_tmp(job.path)
    raise
  return ShardResult(job.path, written, tuple(skipped), dict(by_era), time.perf_counter() - start)


def _records(job: ShardJob, skipped: list, by_era: collections.Counter) -> Iterable[bytes]:
  audio_samples = job.mel_params.clip_samples if job.store_audio else 0
  features = _features(job.mel_params.image_size, job.era_names, audio_samples)
  last_painting: tuple[str, Any] = ('', None)  # examples of one painting are consecutive
  for ex in job.examples:
    if ex.painting_id != last_painting[0]:
      last_painting = (ex.painting_id, _painting_pixels(ex.painting, job))
    pixels, mel, audio = last_painting[1], None, None
    if not isinstance(pixels, str):
      mel, audio = _clip_mel(ex.clip, job.mel_params, job.store_audio)
    reason = pixels if isinstance(pixels, str) else mel if isinstance(mel, str) else ''
    if reason:
      if job.strict:
        raise SkipIsFatal(f'{ex.painting_id} / {ex.clip_source_id}: {reason} (--strict)')
      skipped.append((ex.painting_id, ex.clip_source_id, reason))
      continue
    by_era[job.era_names[ex.era]] += 1
    waveform = {} if audio is None else {'audio': audio}
    yield records.serialize_example(
      features,
      dict(
        **waveform,
        painting=pixels,
        mel=mel,
        era=ex.era,
        painting_id=ex.painting_id,
        clip_source_id=ex.clip_source_id,
        clip_offset_s=np.float32(ex.clip_offset_s),
        notes_json=ex.clip.notes_json(),
      ),
    )


def _painting_pixels(ref, job: ShardJob) -> np.ndarray | str:
  """The painting as uint8 (S, S, 3), or the reason it cannot be read."""
  try:
    return ref.load(job.mel_params.image_size, job.image_mode)
  except OSError as e:  # includes images.UnreadableImageError and FileNotFoundError
    return f'painting unreadable: {e}'


# A clip may be dealt to several paintings: keep recent mels instead of recomputing them.
@functools.lru_cache(maxsize=256)
def _clip_mel(
  clip, params: spectrogram.MelParams, with_audio: bool = False
) -> tuple[np.ndarray | str, np.ndarray | None]:
  """(mel image, int16 PCM waveform when `with_audio`), or (the reason it failed, None)."""
  try:
    waveform = clip.waveform(params)
    mel = spectrogram.audio_to_mel_image(waveform, params)
  except (OSError, RuntimeError, ValueError) as e:  # soundfile errors are RuntimeError/OSError
    return f'clip unreadable: {type(e).__name__}: {e}', None
  return mel, records.audio_to_pcm(waveform) if with_audio else None


@functools.lru_cache(maxsize=4)
def _features(image_size: int, era_names: tuple[str, ...], audio_samples: int = 0):
  if audio_samples:
    return records.make_features(image_size, era_names, audio_samples)
  return records.make_features(image_size, era_names)


def _remove_own_tmp(path: str) -> None:
  final = pathlib.Path(path)
  tmp = final.with_name(f'.{final.name}.tmp-{os.getpid()}')
  tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The pool.


def resolve_workers(workers: int | None) -> int:
  if workers is None or workers <= 0:
    return max(
      1, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    )
  return workers


def parallel_map(
  fn: Callable[[T], R],
  jobs: Sequence[T],
  workers: int,
  *,
  desc: str,
  unit: str = 'job',
  weight: Callable[[T], int] = lambda _: 1,
  on_result: Callable[[R], None] | None = None,
  progress: bool = True,
) -> list[R]:
  """Run `fn` over `jobs` (in order of results = order of jobs), with a tqdm bar.

  One worker runs in this process (no start-up cost, easy to debug). `on_result` is called in
  the parent as each job finishes, so failures can be reported before the rest complete.
  Each worker's native thread pools (OpenBLAS, OpenMP) are held to one thread: the per-clip
  matrices are small, and measured on 2 cores a shard took 0.9 s with one BLAS thread and
  3.5 s with two, before counting the oversubscription of running workers side by side.
  """
  from threadpoolctl import threadpool_limits
  from tqdm import tqdm

  results: list[Any] = [None] * len(jobs)
  total = sum(weight(job) for job in jobs)
  with tqdm(
    total=total,
    desc=desc,
    unit=unit,
    disable=not progress or not jobs,
    dynamic_ncols=True,
    mininterval=1.0,
  ) as bar:
    if workers <= 1 or len(jobs) <= 1:
      with threadpool_limits(limits=1):
        for i, job in enumerate(jobs):
          results[i] = fn(job)
          _finish(results[i], job, bar, weight, on_result)
      return results
    context = _pool_context()
    with concurrent.futures.ProcessPoolExecutor(
      min(workers, len(jobs)),
      mp_context=context,
      initializer=_init_worker,
      initargs=(os.getpid(),),
    ) as pool:
      futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
      try:
        for future in concurrent.futures.as_completed(futures):
          i = futures[future]
          results[i] = future.result()
          _finish(results[i], jobs[i], bar, weight, on_result)
      except BaseException:
        for future in futures:
          future.cancel()
        raise
  return results


def _init_worker(parent_pid: int) -> None:
  from threadpoolctl import threadpool_limits

  threadpool_limits(limits=1)
  _exit_with_parent(parent_pid)


# A parent killed outright (kill -9, the OOM killer) runs no cleanup: its pool's workers would
# live on as orphans, still reading and computing, then wait forever on a queue nobody feeds.
_PR_SET_PDEATHSIG = 1
_PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
  """Make this worker die with `parent_pid`: the kernel's parent-death signal on Linux, and
  everywhere a daemon thread that notices the worker being re-parented."""
  if sys.platform == 'linux':
    _set_parent_death_signal(signal.SIGKILL)
  if os.getppid() != parent_pid:  # the parent died before the signal was armed
    os._exit(1)
  threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _set_parent_death_signal(sig: int) -> None:
  # Delivered when the thread that forked this worker exits: parallel_map's caller, which
  # outlives the pool (the pool's `with` block is inside it).
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
  except (OSError, AttributeError):  # no prctl in this libc: the watchdog thread still runs
    pass


def _watch_parent(parent_pid: int) -> None:
  while os.getppid() == parent_pid:
    time.sleep(_PARENT_POLL_S)
  os._exit(1)  # no cleanup: a shard's temporary file is removed by the next build's claim


def _pool_context():
  """fork when no threaded runtime is loaded: workers inherit the warm imports (librosa, TFDS:
  ~3 s per spawned worker). With JAX loaded (e.g. under the trainer) forking is unsafe: spawn."""
  if 'jax' in sys.modules or sys.platform != 'linux':
    return multiprocessing.get_context('spawn')
  _warm_up()
  return multiprocessing.get_context('fork')


def _warm_up() -> None:
  numba_cache.import_librosa()
  params = spectrogram.MelParams(image_size=8, clip_seconds=0.1, n_fft=256, sample_rate=8000)
  spectrogram.audio_to_mel_image(np.zeros(800, np.float32), params)
  _features(8, ('a',))


def _finish(result, job, bar, weight, on_result) -> None:
  bar.update(weight(job))
  if on_result is not None:
    on_result(result)
