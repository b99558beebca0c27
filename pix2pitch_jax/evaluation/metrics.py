"""Evaluation metrics (definitions in docs/evaluation.md): one tested function per metric.

Conventions. Spectrogram metrics take batches with the two spectrogram axes last,
(..., n_mels, n_frames), and return one value per example (shape `...`), so they run jitted and
sharded over the batch axis; reduce with a mean afterwards. `reference` comes first, as in
`metric(reference, generated)`. dB mels have the lowest band first (`spectrogram.image_to_db`);
images are the normalised mel images in [-1, 1]. Set-level statistics (Fréchet distance, KID,
diversity, audio descriptors) and bootstrap intervals run on the host in numpy/scipy/librosa.

Directions: lower is better for every distance (L1, L2, spectral convergence, LSD, MCD, Fréchet,
KID, descriptor differences); higher is better for SSIM (max 1) and PSNR (inf for identical inputs).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from pix2pitch_jax.audio import inverse, numba_cache, spectrogram

_SPECTROGRAM_AXES = (-2, -1)


# ------------------------------------------------------------------------------------------------
# Spectrogram and image metrics (jnp, per example).
# ------------------------------------------------------------------------------------------------


def mel_l1(reference_db: Any, generated_db: Any) -> jax.Array:
  """Mean absolute difference of dB mels (dB). 0 for identical inputs."""
  return jnp.mean(jnp.abs(jnp.asarray(reference_db) - generated_db), axis=_SPECTROGRAM_AXES)


def mel_l2(reference_db: Any, generated_db: Any) -> jax.Array:
  """Mean squared difference of dB mels (dB^2), the L2 counterpart of `mel_l1`."""
  return jnp.mean(jnp.square(jnp.asarray(reference_db) - generated_db), axis=_SPECTROGRAM_AXES)


def spectral_convergence(reference_magnitude: Any, generated_magnitude: Any) -> jax.Array:
  """||S| - |S_hat||_F / ||S||_F on linear magnitudes (a relative error; 0 is perfect)."""
  reference_magnitude = jnp.abs(jnp.asarray(reference_magnitude))
  error = jnp.linalg.norm(
    reference_magnitude - jnp.abs(generated_magnitude), axis=_SPECTROGRAM_AXES
  )
  return error / jnp.maximum(jnp.linalg.norm(reference_magnitude, axis=_SPECTROGRAM_AXES), 1e-30)


def log_spectral_distance(reference_db: Any, generated_db: Any) -> jax.Array:
  """Per-frame RMS over bands of the dB difference, averaged over frames (dB)."""
  per_frame = jnp.sqrt(jnp.mean(jnp.square(jnp.asarray(reference_db) - generated_db), axis=-2))
  return jnp.mean(per_frame, axis=-1)


def mel_cepstrum(db: Any, n_coeffs: int = 24) -> jax.Array:
  """Mel cepstrum c_1..c_n (c_0, the loudness, dropped) per frame: (..., n_mels, T) -> (..., n, T).

  The cepstrum of the standard definition (Kubichek 1993; SPTK): the coefficients of the
  natural-log amplitude envelope ln A(w) = c_0 + 2 sum_{d>=1} c_d cos(d w), sampled at the N mel
  band centres w_k = pi (k + 1/2) / N, i.e. c_d = (1/N) sum_k ln A_k cos(d w_k). That is the
  orthonormal DCT-II divided by sqrt(2 N), so the same envelope gives the same coefficients at any
  number of bands (the bare orthonormal DCT grows with sqrt(N)). ln A = dB * ln(10) / 20 is the
  scale on which the MCD formula's 10 / ln 10 gives dB.
  """
  log_amplitude = jnp.asarray(db) * (np.log(10.0) / 20.0)
  n_mels = log_amplitude.shape[-2]
  dct = jax.scipy.fft.dct(log_amplitude, type=2, norm='ortho', axis=-2)
  return dct[..., 1 : n_coeffs + 1, :] / np.sqrt(2.0 * n_mels)


def mel_cepstral_distortion(reference_db: Any, generated_db: Any, n_coeffs: int = 24) -> jax.Array:
  """MCD (dB): 10 / ln 10 * sqrt(2 * sum_{d>=1} (c_d - c_hat_d)^2) per frame, frame-averaged."""
  diff = mel_cepstrum(reference_db, n_coeffs) - mel_cepstrum(generated_db, n_coeffs)
  per_frame = (10.0 / np.log(10.0)) * jnp.sqrt(2.0 * jnp.sum(jnp.square(diff), axis=-2))
  return jnp.mean(per_frame, axis=-1)


def psnr(reference_image: Any, generated_image: Any, data_range: float = 2.0) -> jax.Array:
  """Peak signal-to-noise ratio (dB) of images with values spanning `data_range` (2 for [-1, 1])."""
  mse = jnp.mean(jnp.square(jnp.asarray(reference_image) - generated_image), axis=_SPECTROGRAM_AXES)
  return 10.0 * jnp.log10(data_range**2 / mse)  # mse == 0 gives +inf, as it should.


@functools.lru_cache(maxsize=8)
def _gaussian_valid_filter(size: int, window: int, sigma: float) -> np.ndarray:
  """(size - window + 1, size) matrix applying a normalised Gaussian window at every valid shift."""
  taps = np.exp(-0.5 * ((np.arange(window) - (window - 1) / 2) / sigma) ** 2)
  taps /= taps.sum()
  rows = np.zeros((size - window + 1, size), np.float32)
  for i in range(rows.shape[0]):
    rows[i, i : i + window] = taps
  return rows


def ssim(
  reference_image: Any,
  generated_image: Any,
  data_range: float = 2.0,
  window: int = 11,
  sigma: float = 1.5,
) -> jax.Array:
  """Structural similarity (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, valid windows only (as tf.image.ssim), averaged over the image. 1 when identical."""
  x = jnp.asarray(reference_image, jnp.float32)
  y = jnp.asarray(generated_image, jnp.float32)
  height, width = x.shape[-2:]
  if min(height, width) < window:
    raise ValueError(f'images of {height}x{width} are smaller than the {window}x{window} window')
  rows = _gaussian_valid_filter(height, window, sigma)
  cols = _gaussian_valid_filter(width, window, sigma)
  # The separable Gaussian filter as two small matmuls: G_rows @ image @ G_cols^T.
  blur = lambda z: jnp.einsum(
    'ih,...hw,jw->...ij', rows, z, cols, precision=jax.lax.Precision.HIGHEST
  )
  mu_x, mu_y = blur(x), blur(y)
  var_x = blur(x * x) - mu_x**2
  var_y = blur(y * y) - mu_y**2
  cov = blur(x * y) - mu_x * mu_y
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
    (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
  )
  return jnp.mean(ssim_map, axis=_SPECTROGRAM_AXES)


def mel_image_metrics(
  reference_images: Any, generated_images: Any, params: spectrogram.MelParams
) -> dict[str, jax.Array]:
  """All per-example spectrogram metrics of generated vs reference mel images in [-1, 1].

  dB metrics use the images mapped back to dB; spectral convergence uses the mel amplitude
  10^(dB / 20); SSIM and PSNR use the images themselves. Jit it with the batch sharded and every
  value stays sharded per example.
  """
  ref_db = spectrogram.image_to_db(jnp.asarray(reference_images, jnp.float32), params)
  gen_db = spectrogram.image_to_db(jnp.asarray(generated_images, jnp.float32), params)
  return {
    'l1_db': mel_l1(ref_db, gen_db),
    'l2_db2': mel_l2(ref_db, gen_db),
    'spectral_convergence': spectral_convergence(10.0 ** (ref_db / 20.0), 10.0 ** (gen_db / 20.0)),
    'log_spectral_distance_db': log_spectral_distance(ref_db, gen_db),
    'mel_cepstral_distortion_db': mel_cepstral_distortion(ref_db, gen_db),
    'ssim': ssim(reference_images, generated_images),
    'psnr_db': psnr(reference_images, generated_images),
  }


def griffin_lim_consistency(
  images: Any, audio_clips: Any, params: spectrogram.MelParams
) -> jax.Array:
  """How far a mel image is from one that real audio could have: the spectral convergence between
  the image's mel amplitude and the mel amplitude of its own Griffin-Lim reconstruction
  `audio_clips` (B, samples). 0 for a consistent spectrogram; generated mels that no signal could
  produce score higher."""
  target_db = spectrogram.image_to_db(jnp.asarray(images, jnp.float32), params)
  rebuilt_power = inverse.power_mel(jnp.asarray(audio_clips, jnp.float32), params)
  rebuilt_db = 10.0 * jnp.log10(jnp.maximum(rebuilt_power, params.amin) / params.ref_power)
  # Clip to the image's own [min_db, max_db] range so the silence floor does not count as error.
  rebuilt_db = jnp.clip(rebuilt_db, params.min_db, params.max_db)
  target, rebuilt = 10.0 ** (target_db / 20.0), 10.0 ** (rebuilt_db / 20.0)
  return spectral_convergence(target, rebuilt)


# ------------------------------------------------------------------------------------------------
# Set-level statistics (host).
# ------------------------------------------------------------------------------------------------


def frechet_distance(embeddings_a: Any, embeddings_b: Any, ridge: float = 1e-6) -> float:
  """Fréchet distance between Gaussians fitted to two sets of embeddings (n_i, dim).

  ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2}). `ridge` * I is added to both covariances
  so small or degenerate sets (n <= dim, or one example: covariance 0) still give a finite,
  non-negative number; tiny imaginary parts of the matrix square root are dropped.
  """
  a, b = (np.asarray(e, np.float64) for e in (embeddings_a, embeddings_b))
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
    raise ValueError(f'need two non-empty (n, dim) sets of equal dim, got {a.shape}, {b.shape}')
  cov_a, cov_b = (_covariance(e) + ridge * np.eye(e.shape[1]) for e in (a, b))
  sqrt_product = scipy.linalg.sqrtm(cov_a @ cov_b)
  sqrt_product = np.real(sqrt_product)
  distance = (
    np.sum((a.mean(0) - b.mean(0)) ** 2)
    + np.trace(cov_a)
    + np.trace(cov_b)
    - 2.0 * np.trace(sqrt_product)
  )
  return float(max(distance, 0.0))


def kernel_inception_distance(embeddings_a: Any, embeddings_b: Any) -> float:
  """KID: the unbiased estimate of the squared MMD between two sets of embeddings (n_i, dim)
  with the cubic polynomial kernel k(x, y) = (x . y / dim + 1)^3 (Binkowski et al. 2018).

  Unlike the Fréchet distance it has no bias at small n: two sets drawn from one distribution
  score ~0 on average (it can be slightly negative). Needs >= 2 embeddings per set.
  """
  a, b = (np.asarray(e, np.float64) for e in (embeddings_a, embeddings_b))
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
    raise ValueError(f'need two (n >= 2, dim) sets of equal dim, got {a.shape}, {b.shape}')
  k_aa, k_bb, k_ab = _kid_kernels(a, b)
  m, n = len(a), len(b)
  within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
  within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
  return float(within_a + within_b - 2.0 * k_ab.mean())


def bootstrap_interval(
  values: Any,
  *,
  statistic: Any = np.mean,
  confidence: float = 0.95,
  num_resamples: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """Percentile bootstrap interval of `statistic` over per-example `values` (n, ...).

  Resamples the n examples with replacement `num_resamples` times (a fixed seed, so a report is
  reproducible). (nan, nan) for an empty set; a single example gives a zero-width interval.
  """
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)] if values.ndim == 1 else values
  if not len(values):
    return float('nan'), float('nan')
  rng = np.random.default_rng(seed)
  rows = rng.integers(0, len(values), size=(num_resamples, len(values)))
  stats = np.asarray([statistic(values[r]) for r in rows], np.float64)
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(stats, [tail, 100.0 - tail])
  return float(low), float(high)


def kernel_inception_distance_interval(
  embeddings_a: Any,
  embeddings_b: Any,
  *,
  confidence: float = 0.95,
  num_resamples: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """Percentile bootstrap interval of `kernel_inception_distance` of two paired sets (n, dim):
  `bootstrap_interval` over the n rows, pair i (a_i, b_i) drawn together.

  A resample repeats examples, and a repeated example paired with itself in a within-set sum
  adds k(x, x), the kernel's largest values, as if the set were tighter: recomputing KID on the
  resampled rows sits above the estimate (synthetic n = 99, 64-d: its whole 95 % interval). So
  each resample's within-set sums run over pairs of distinct examples only, weighted by how often
  each was drawn; with no repeats that is exactly `kernel_inception_distance`.

  (nan, nan) with fewer than 2 pairs, or when some resample holds fewer than 2 distinct examples
  (a chance n^(1 - n) per resample: with 1000 resamples about 80 % at n = 5, 12 % at n = 6, under
  1 % from n = 7).
  """
  a, b = (np.asarray(e, np.float64) for e in (embeddings_a, embeddings_b))
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f'need two paired (n, dim) sets, got {a.shape}, {b.shape}')
  if len(a) < 2:
    return float('nan'), float('nan')
  kernels = _kid_kernels(a, b)

  def resampled(rows: np.ndarray) -> float:
    # `bootstrap_interval` hands the drawn rows of the (n, 1) index column as floats.
    counts = np.bincount(rows[:, 0].astype(np.int64), minlength=len(a))
    return _kid_from_counts(kernels, counts.astype(np.float64))

  return bootstrap_interval(
    np.arange(len(a))[:, None],
    statistic=resampled,
    confidence=confidence,
    num_resamples=num_resamples,
    seed=seed,
  )


def _kid_kernels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The cubic polynomial kernel of `kernel_inception_distance` within a, within b and across."""
  dim = a.shape[1]
  kernel = lambda x, y: (x @ y.T / dim + 1.0) ** 3
  return kernel(a, a), kernel(b, b), kernel(a, b)


def _kid_from_counts(
  kernels: tuple[np.ndarray, np.ndarray, np.ndarray], counts: np.ndarray
) -> float:
  """KID of a resample of paired rows drawn `counts[i]` times each: within-set means over pairs
  of distinct rows (sum_{i != j} c_i c_j k_ij / sum_{i != j} c_i c_j), cross mean over all."""
  k_aa, k_bb, k_ab = kernels
  distinct_pairs = counts.sum() ** 2 - (counts**2).sum()
  if distinct_pairs <= 0:
    return float('nan')
  within = lambda k: (counts @ k @ counts - (counts**2) @ np.diag(k)) / distinct_pairs
  cross = counts @ k_ab @ counts / counts.sum() ** 2
  return float(within(k_aa) + within(k_bb) - 2.0 * cross)


def confusion_matrix(labels: Any, predictions: Any, num_classes: int) -> np.ndarray:
  """(num_classes, num_classes) counts: row = true class, column = predicted class."""
  labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
  if labels.shape != predictions.shape:
    raise ValueError(f'labels {labels.shape} and predictions {predictions.shape} differ')
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  return matrix


def _covariance(x: np.ndarray) -> np.ndarray:
  return (
    np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    if len(x) > 1
    else np.zeros((x.shape[1], x.shape[1]))
  )


def mean_pairwise_distance(samples: Any) -> float:
  """Mean RMS difference over all pairs of samples (n, ...): the diversity of a set.

  RMS (Euclidean distance / sqrt(dim)) keeps it comparable across resolutions; a collapsed
  generator, whose outputs are all alike, scores near 0. NaN with fewer than two samples.
  """
  x = np.asarray(samples, np.float64).reshape(len(samples), -1)
  if len(x) < 2:
    return float('nan')
  sq_norms = np.sum(x * x, axis=1)
  sq_dists = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * x @ x.T, 0.0)
  upper = np.triu_indices(len(x), k=1)
  return float(np.mean(np.sqrt(sq_dists[upper] / x.shape[1])))


DESCRIPTORS = ('spectral_centroid_hz', 'spectral_flatness', 'onset_rate_hz')


def audio_descriptors(clips: Any, sample_rate: int) -> dict[str, np.ndarray]:
  """librosa descriptors per clip (B, samples): the three scalar `DESCRIPTORS` (B,) and
  'chroma' (B, 12), the clip's mean chroma normalised to sum to 1 (a pitch-class profile)."""
  librosa = numba_cache.import_librosa()

  clips = np.asarray(clips, np.float32)
  out = {name: np.zeros(len(clips)) for name in DESCRIPTORS}
  out['chroma'] = np.zeros((len(clips), 12))
  for i, y in enumerate(clips):
    out['spectral_centroid_hz'][i] = librosa.feature.spectral_centroid(y=y, sr=sample_rate).mean()
    out['spectral_flatness'][i] = librosa.feature.spectral_flatness(y=y).mean()
    onsets = librosa.onset.onset_detect(y=y, sr=sample_rate, units='time')
    out['onset_rate_hz'][i] = len(onsets) / (len(y) / sample_rate)
    chroma = librosa.feature.chroma_stft(y=y, sr=sample_rate).mean(axis=1)
    out['chroma'][i] = chroma / max(chroma.sum(), 1e-12)
  return out


def descriptor_statistics(
  real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray]
) -> dict[str, float]:
  """Mean and std of each scalar descriptor per set and the difference of means (generated minus
  real; 0 is best), plus 'chroma_distance': half the L1 distance between the two sets' mean
  pitch-class profiles (total variation, 0 = same profile, 1 = disjoint)."""
  stats = {}
  for name in DESCRIPTORS:
    for set_name, values in (('real', real[name]), ('generated', generated[name])):
      stats[f'{name}/{set_name}_mean'] = float(np.mean(values))
      stats[f'{name}/{set_name}_std'] = float(np.std(values))
    stats[f'{name}/difference'] = stats[f'{name}/generated_mean'] - stats[f'{name}/real_mean']
  profile_real = np.mean(real['chroma'], axis=0)
  profile_generated = np.mean(generated['chroma'], axis=0)
  stats['chroma_distance'] = float(0.5 * np.abs(profile_real - profile_generated).sum())
  return stats
