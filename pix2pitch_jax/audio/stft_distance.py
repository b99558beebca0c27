"""Multi-resolution STFT distance (Parallel WaveGAN, Yamamoto et al. 2020): how far a waveform is
from a reference, phase-blind, at several time-frequency trade-offs at once. In JAX, batched and
differentiable: the neural vocoder trains on it (training/vocoder_task.py) and the vocoder
benchmark scores every vocoder with it (bench/vocoder.py).

At each resolution (n_fft, hop) with a Hann window and centred frames (zero padding):

    spectral convergence   ||R| - |G||_F / ||R||_F
    log-magnitude L1       mean |log|R| - log|G||

with |X| = sqrt(max(re^2 + im^2, 1e-7)) (keeps the gradient finite at silence); the distance of a
clip is the mean over resolutions of their sum. 0 for identical clips; lower is closer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# (n_fft, hop) at 22 050 Hz: ~23, 46 and 93 ms windows, a quarter of each apart.
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
_MIN_POWER = 1e-7


def resolutions_for(sample_rate: int) -> tuple[tuple[int, int], ...]:
  """`DEFAULT_RESOLUTIONS` scaled to `sample_rate` (same durations; powers of two)."""
  scale = 2 ** int(round(np.log2(sample_rate / 22_050)))
  return tuple((n * scale, h * scale) for n, h in DEFAULT_RESOLUTIONS)


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def stft_magnitude(y: jax.Array, n_fft: int, hop: int) -> jax.Array:
  """|STFT| (..., frames, 1 + n_fft // 2) of audio (..., samples), centred frames.

  Frames are cut without a gather (hop-sized blocks laid end to end), so `hop` must divide
  `n_fft`.
  """
  if n_fft % hop:
    raise ValueError(f'hop {hop} must divide n_fft {n_fft}')
  k = n_fft // hop
  n_frames = 1 + y.shape[-1] // hop
  total = (n_frames + k - 1) * hop
  lead = [(0, 0)] * (y.ndim - 1)
  padded = jnp.pad(y, lead + [(n_fft // 2, total - y.shape[-1] - n_fft // 2)])
  blocks = padded.reshape(*padded.shape[:-1], -1, hop)
  frames = jnp.concatenate([blocks[..., i : i + n_frames, :] for i in range(k)], axis=-1)
  spec = jnp.fft.rfft(frames * _hann(n_fft), axis=-1)
  return jnp.sqrt(jnp.maximum(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2, _MIN_POWER))


def stft_distance_terms(
  reference: jax.Array, generated: jax.Array, n_fft: int, hop: int
) -> tuple[jax.Array, jax.Array]:
  """(spectral convergence, log-magnitude L1) per clip, (...,) each, at one resolution."""
  ref = stft_magnitude(jnp.asarray(reference, jnp.float32), n_fft, hop)
  gen = stft_magnitude(jnp.asarray(generated, jnp.float32), n_fft, hop)
  axes = (-2, -1)
  convergence = jnp.sqrt(jnp.sum((ref - gen) ** 2, axis=axes)) / jnp.sqrt(
    jnp.sum(ref**2, axis=axes)
  )
  log_l1 = jnp.mean(jnp.abs(jnp.log(ref) - jnp.log(gen)), axis=axes)
  return convergence, log_l1


def multi_resolution_stft_distance(
  reference: jax.Array,
  generated: jax.Array,
  resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
) -> jax.Array:
  """Per-clip distance (...,) between audio batches (..., samples) of equal length."""
  if reference.shape != generated.shape:
    raise ValueError(f'shapes differ: {reference.shape} vs {generated.shape}')
  total = jnp.zeros(reference.shape[:-1], jnp.float32)
  for n_fft, hop in resolutions:
    convergence, log_l1 = stft_distance_terms(reference, generated, n_fft, hop)
    total = total + convergence + log_l1
  return total / len(resolutions)


def multi_resolution_stft_loss(
  reference: jax.Array,
  generated: jax.Array,
  resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
) -> jax.Array:
  """The training form (a scalar): spectral convergence over the whole batch at once, as Parallel
  WaveGAN's loss does, so that a near-silent crop (tiny ||R||) cannot dominate a step."""
  total = jnp.zeros((), jnp.float32)
  for n_fft, hop in resolutions:
    ref = stft_magnitude(jnp.asarray(reference, jnp.float32), n_fft, hop)
    gen = stft_magnitude(jnp.asarray(generated, jnp.float32), n_fft, hop)
    convergence = jnp.sqrt(jnp.sum((ref - gen) ** 2)) / jnp.sqrt(jnp.sum(ref**2))
    total = total + convergence + jnp.mean(jnp.abs(jnp.log(ref) - jnp.log(gen)))
  return total / len(resolutions)
