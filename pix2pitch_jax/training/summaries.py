"""What training shows: TensorBoard event files (no TensorFlow) and metrics.jsonl.

`TrainingSummaries` writes, on process 0 only (the others get a disabled instance, so the loop has
no rank checks):
  scalars   every logged metric, to TensorBoard and as one JSON line per call in metrics.jsonl
            (the file tests and scripts read without a TensorBoard reader)
  images    'painting' in its own colours; 'target_mel' and 'generated_mel' in the magma colormap
            of the gallery (`spectrogram.colorize_mel`), so a mel reads the same in both places
  audio     'target_audio/<i>' and 'generated_audio/<i>': Griffin-Lim renderings of the shown mels,
            at the dataset's sample rate, because a mel that looks right can still sound wrong

Both files go through `core.run_logs`, so a workdir on cloud storage (`gs://...`) works: there
the logs are flushed every `flush_secs` and on `close()` (see run_logs for why and how).

Audio is for listening, not scoring: a few clips, `GRIFFIN_LIM_ITERS` iterations, and the initial
phase of clip i fixed by `AUDIO_SEED` (as `generation.job.mels_to_audio` does), so that reference
and generated clip i differ only in their mels and successive evaluations only in the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np

from pix2pitch_jax.audio import inverse, spectrogram
from pix2pitch_jax.core import run_logs
from pix2pitch_jax.core import workdir as workdir_lib

GRIFFIN_LIM_ITERS = 32
AUDIO_SEED = 0


class TrainingSummaries:
  """TensorBoard event files in `<workdir>/tensorboard` and `<workdir>/metrics.jsonl`.

  `enabled=False` (every process but 0) makes every method a no-op. `mel_params` (the dataset's)
  gives the sample rate and the inverse transform of the audio summaries; without it `examples`
  writes images only.
  """

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    enabled: bool,
    mel_params: spectrogram.MelParams | None = None,
    griffin_lim_iters: int = GRIFFIN_LIM_ITERS,
    flush_secs: float = run_logs.FLUSH_SECS,
  ):
    self._writer: run_logs.EventWriter | None = None  # on the enabled process
    self._jsonl: run_logs.JsonLinesLog | None = None  # open exactly when _writer is
    self._mel_params, self._griffin_lim_iters = mel_params, griffin_lim_iters
    if enabled:
      paths = workdir_lib.Workdir(workdir)
      self._writer = run_logs.EventWriter(paths.tensorboard, flush_secs=flush_secs)
      self._jsonl = run_logs.JsonLinesLog(paths.metrics_jsonl, flush_secs=flush_secs)

  @property
  def enabled(self) -> bool:
    return self._writer is not None

  def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is None or self._jsonl is None:  # disabled
      return
    for name, value in scalars.items():
      self._writer.scalar(name, value, step)
    self._jsonl.write({'step': step, **scalars})

  def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Each entry (N, H, W, C), uint8 or float in [-1, 1], as one grid image."""
    if self._writer is None:  # disabled
      return
    for name, value in images.items():
      value = np.asarray(value)
      if value.dtype != np.uint8:
        value = to_uint8(value)
      self._writer.images(name, value, step)

  def audio(self, step: int, clips: Mapping[str, np.ndarray], sample_rate: int) -> None:
    """Each entry (N, samples) in [-1, 1] (clipped) as N clips tagged '<name>/<i>'."""
    if self._writer is None:  # disabled
      return
    for name, batch in clips.items():
      for i, clip in enumerate(np.asarray(batch, np.float32)):
        self._writer.audio(f'{name}/{i}', np.clip(clip, -1.0, 1.0), step, sample_rate=sample_rate)

  def examples(
    self, step: int, *, paintings: np.ndarray, target_mels: np.ndarray, generated_mels: np.ndarray
  ) -> None:
    """A few validation examples: paintings (N, H, W, 3) and mels (N, H, W[, 1]) in [-1, 1]."""
    if not self.enabled or not len(paintings):
      return
    self.images(
      step,
      {
        'painting': paintings,
        'target_mel': mel_images(target_mels),
        'generated_mel': mel_images(generated_mels),
      },
    )
    if self._mel_params is not None:  # one Griffin-Lim call (one compilation) for both halves
      n = len(paintings)
      clips = mels_to_clips(
        np.concatenate([_squeeze_channel(target_mels), _squeeze_channel(generated_mels)]),
        self._mel_params,
        n_iter=self._griffin_lim_iters,
        index=np.tile(np.arange(n), 2),
      )
      self.audio(
        step,
        {'target_audio': clips[:n], 'generated_audio': clips[n:]},
        self._mel_params.sample_rate,
      )

  def close(self) -> None:
    if self._writer is not None and self._jsonl is not None:  # enabled
      self._writer.close()
      self._jsonl.close()


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] -> uint8 in [0, 255]."""
  return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _squeeze_channel(mels: np.ndarray) -> np.ndarray:
  mels = np.asarray(mels, np.float32)
  return mels[..., 0] if mels.ndim == 4 else mels


def mel_images(mels: np.ndarray) -> np.ndarray:
  """Mels (N, H, W) or (N, H, W, 1) in [-1, 1] -> magma uint8 RGB (N, H, W, 3)."""
  return spectrogram.colorize_mel(_squeeze_channel(mels))


def mels_to_clips(
  mels: np.ndarray,
  params: spectrogram.MelParams,
  *,
  n_iter: int = GRIFFIN_LIM_ITERS,
  seed: int = AUDIO_SEED,
  index: np.ndarray | None = None,
) -> np.ndarray:
  """Mels (N, H, W) -> Griffin-Lim audio (N, clip_samples), on the default device.

  Clip i starts from the phase of `fold_in(key(seed), index[i])` (index: 0..N-1 by default), so
  equal indices give equal initial phases whatever the batch holds.
  """
  index = np.arange(len(mels)) if index is None else np.asarray(index)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(index)
  return np.asarray(inverse.mel_image_to_audio(mels, params, n_iter=n_iter, key=keys))


# Reads the summaries back (tests, notebooks), from a local folder or a URI.
read_events = run_logs.read_events
