"""Benchmark: JAX fast Griffin-Lim (batched, jitted) vs librosa.griffinlim at equal iterations.

A batch of 16 ten-second clips at 22 050 Hz with the MEL_256_22K parameters (n_fft 4096, hop 861,
256 frames). Both implementations start from zero phase and run the same number of iterations on
the same magnitudes (the linear STFT magnitude of test signals), so their spectral convergence
must match; the time excludes JAX's one-off compile, which is printed separately.

    python bench/griffin_lim.py [--batch=16] [--iters=32]
"""

import os
import sys
import time

# Runnable as a plain script from the repository root (make bench).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax
import librosa
import numpy as np
from absl import app, flags

from pix2pitch_jax.audio import inverse, spectrogram
from pix2pitch_jax.evaluation import metrics

_BATCH = flags.DEFINE_integer('batch', 16, 'Clips per batch.')
_ITERS = flags.DEFINE_integer('iters', 32, 'Griffin-Lim iterations (both implementations).')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timed JAX runs (the best is reported).')


def test_clips(n: int, params: spectrogram.MelParams, seed: int = 0) -> np.ndarray:
  """Chords of decaying harmonic notes with a little noise: music-like, different per clip."""
  rng = np.random.default_rng(seed)
  t = np.arange(params.clip_samples) / params.sample_rate
  clips = np.zeros((n, t.size), np.float32)
  for clip in clips:
    for onset in np.arange(0.0, params.clip_seconds, 0.5):
      f0 = 440.0 * 2 ** ((rng.integers(60, 84) - 69) / 12)
      env = np.where(t >= onset, np.exp(-3.0 * (t - onset)), 0.0)
      clip += sum(0.2 / h * np.sin(2 * np.pi * h * f0 * t) for h in (1, 2, 3)) * env
    clip += 0.003 * rng.standard_normal(t.size)
  return clips


def magnitudes(clips: np.ndarray, params: spectrogram.MelParams) -> np.ndarray:
  return np.stack(
    [
      np.abs(librosa.stft(c, n_fft=params.n_fft, hop_length=params.hop_length))[
        :, : params.n_frames
      ]
      for c in clips
    ]
  )


def consistency(mags: np.ndarray, audio_out: np.ndarray, params: spectrogram.MelParams) -> float:
  rebuilt = np.abs(np.asarray(inverse.stft(jax.numpy.asarray(audio_out), params)))
  rebuilt = rebuilt[..., : mags.shape[-1]]
  return float(np.mean(np.asarray(metrics.spectral_convergence(mags, rebuilt))))


def main(argv):
  del argv
  params = spectrogram.MEL_256_22K
  mags = magnitudes(test_clips(_BATCH.value, params), params)
  print(
    f'batch {mags.shape[0]} x {params.clip_seconds:g} s @ {params.sample_rate} Hz, '
    f'n_fft {params.n_fft}, hop {params.hop_length}, {mags.shape[-1]} frames, '
    f'{_ITERS.value} iterations, devices: {jax.devices()[0].platform} x {jax.device_count()}'
  )

  mags_device = jax.device_put(mags)
  start = time.perf_counter()
  jax.block_until_ready(inverse.griffin_lim(mags_device, params, n_iter=_ITERS.value))
  compile_s = time.perf_counter() - start
  jax_s = np.inf
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    out_jax = np.asarray(
      jax.block_until_ready(inverse.griffin_lim(mags_device, params, n_iter=_ITERS.value))
    )
    jax_s = min(jax_s, time.perf_counter() - start)

  # librosa's overlap-add is numba code compiled on first use: warm it up outside the timing too.
  librosa.griffinlim(mags[0][:, :8], n_iter=1, hop_length=params.hop_length, n_fft=params.n_fft)
  start = time.perf_counter()
  out_librosa = np.stack(
    [
      librosa.griffinlim(
        m, n_iter=_ITERS.value, hop_length=params.hop_length, n_fft=params.n_fft, init=None
      )
      for m in mags
    ]
  )
  librosa_s = time.perf_counter() - start

  print(
    f'jax      {jax_s:7.2f} s  (first call incl. compile {compile_s:.2f} s)  '
    f'spectral convergence {consistency(mags, out_jax, params):.4f}'
  )
  print(
    f'librosa  {librosa_s:7.2f} s  '
    f'spectral convergence {consistency(mags, out_librosa, params):.4f}'
  )
  print(f'speed-up {librosa_s / jax_s:.2f}x')


if __name__ == '__main__':
  app.run(main)
