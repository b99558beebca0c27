"""Simple measurements of squiggle pictures and single-note mel images, and the hidden rule.

The `squiggles` demo corpus (data_prep/demo_squiggles.py) pairs its held-out clips and pictures
by a rule: pitch -> height, loudness -> size, timbre -> colour, brightness -> spikiness. A model
that learned that rule from unpaired data makes pictures whose measured features rank like the
clip's: `rule_correlations` gives the Spearman correlation of each pair. The measurements are
plain image analysis and spectrum statistics (numpy, no JAX, no learned weights), so they work
on real and generated pictures and mels alike.

Picture features (uint8 RGB (S, S, 3) or a batch (N, S, S, 3)); the ink is every pixel that
differs from the paper (the median colour of the border) by more than `INK_THRESHOLD` in some
channel:
  height     vertical centre of mass of the ink, 0 = bottom row, 1 = top row
  ink_area   fraction of the canvas that is ink
  hue        saturation-weighted circular mean hue of the ink, in [-0.2, 0.8) (reds near 0
             stay low; hue 0.9 reads as -0.1)
  spikiness  perimeter^2 / (4 pi area) of the ink (1 for a disc, more for a star); the perimeter
             is the number of ink/paper pixel edges times pi/4, which makes a digital disc ~1

Mel features (a dataset mel image in [-1, 1], (S, S) or (N, S, S), and its MelParams):
  pitch_band           mel band of the strongest partial (fractional: parabola through the peak)
  pitch_hz             that band's frequency (Slaney mel scale, as the dataset's filterbank)
  loudness_db          loudest frame's total mel power, dB re the full-scale sine
  centroid_hz          spectral centroid of the time-summed mel power spectrum
  brightness           centroid_hz / pitch_hz: how many harmonics deep the energy goes
  flatness             spectral flatness (geometric / arithmetic mean) of that spectrum
  temporal_centroid_s  energy-weighted mean time: early for a pluck, late for a swell
Any feature is NaN where it is undefined (no ink; a silent clip).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records

PICTURE_FEATURES = ('height', 'ink_area', 'hue', 'spikiness')
MEL_FEATURES = (
  'pitch_band',
  'pitch_hz',
  'loudness_db',
  'centroid_hz',
  'brightness',
  'flatness',
  'temporal_centroid_s',
)
# The hidden rule of the squiggles corpus as (mel feature, picture feature) pairs. Timbre is the
# note's envelope (pluck, mallet, organ, bowed: from a fast decay to a slow swell), so its
# measure is the temporal centroid; the hues go red, amber, green, blue in the same order.
RULE = (
  ('pitch_hz', 'height'),
  ('loudness_db', 'ink_area'),
  ('temporal_centroid_s', 'hue'),
  ('brightness', 'spikiness'),
)
RULE_NAMES = ('pitch -> height', 'loudness -> size', 'timbre -> colour', 'brightness -> spikiness')
INK_THRESHOLD = 48  # uint8 levels: far above paper grain, far below any drawn colour


# ---------------------------------------------------------------------------------------------
# Pictures.


def ink_mask(picture: np.ndarray, threshold: int = INK_THRESHOLD) -> np.ndarray:
  """bool (S, S): pixels that differ from the paper colour (median of the border)."""
  rgb = np.asarray(picture, np.int16)
  border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
  paper = np.median(border, axis=0)
  return np.abs(rgb - paper).max(axis=-1) > threshold


def picture_features(pictures: np.ndarray) -> dict[str, np.ndarray]:
  """{feature: (N,) float64} for a batch of pictures (or (1,) for one picture)."""
  pictures = np.asarray(pictures)
  if pictures.ndim == 3:
    pictures = pictures[None]
  if pictures.ndim != 4 or pictures.shape[-1] != 3:
    raise ValueError(f'expected RGB pictures (N, S, S, 3), got {pictures.shape}')
  rows = [_one_picture(p) for p in pictures]
  return {name: np.array([r[name] for r in rows], np.float64) for name in PICTURE_FEATURES}


def _one_picture(picture: np.ndarray) -> dict[str, float]:
  mask = ink_mask(picture)
  size = mask.shape[0]
  area = int(mask.sum())
  if area == 0:
    return dict.fromkeys(PICTURE_FEATURES, math.nan)
  rows = np.nonzero(mask)[0]
  hue, saturation = _hue_saturation(picture[mask])
  # Circular mean: hue is an angle; weighting by saturation lets grey antialiasing count little.
  angle = 2 * np.pi * hue
  weights = saturation + 1e-6
  mean = math.atan2(float(np.sum(weights * np.sin(angle))), float(np.sum(weights * np.cos(angle))))
  mean_hue = (mean / (2 * np.pi)) % 1.0
  padded = np.pad(mask, 1)
  edges = int(np.sum(padded[1:] != padded[:-1]) + np.sum(padded[:, 1:] != padded[:, :-1]))
  perimeter = edges * np.pi / 4
  return dict(
    height=1.0 - (float(rows.mean()) + 0.5) / size,
    ink_area=area / mask.size,
    hue=mean_hue - 1.0 if mean_hue >= 0.8 else mean_hue,
    spikiness=perimeter**2 / (4 * np.pi * area),
  )


def _hue_saturation(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """HSV hue in [0, 1) and saturation of (n, 3) uint8 pixels (vectorised colorsys)."""
  rgb = np.asarray(rgb, np.float64) / 255.0
  high, low = rgb.max(axis=1), rgb.min(axis=1)
  spread = high - low
  safe = np.where(spread > 0, spread, 1.0)
  r, g, b = rgb.T
  hue = np.where(
    high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)
  )
  hue = np.where(spread > 0, hue / 6.0, 0.0)
  saturation = np.where(high > 0, spread / np.where(high > 0, high, 1.0), 0.0)
  return hue, saturation


# ---------------------------------------------------------------------------------------------
# Mel images.


def mel_features(mels: np.ndarray, params: spectrogram.MelParams) -> dict[str, np.ndarray]:
  """{feature: (N,) float64} for a batch of mel images (or (1,) for one)."""
  mels = np.asarray(mels, np.float64)
  if mels.ndim == 2:
    mels = mels[None]
  if mels.ndim != 3:
    raise ValueError(f'expected mel images (N, S, S), got {mels.shape}')
  centres = band_frequencies(params)
  seconds_per_frame = params.hop_length / params.sample_rate
  rows = [_one_mel(m, params, centres, seconds_per_frame) for m in mels]
  return {name: np.array([r[name] for r in rows], np.float64) for name in MEL_FEATURES}


def _one_mel(mel, params, centres, seconds_per_frame) -> dict[str, float]:
  power = spectrogram.image_to_power_mel(mel, params) / params.ref_power  # lowest band first
  floor = 10 ** (params.min_db / 10)
  power = np.where(power > floor * 1.001, power, 0.0)  # the image's silence floor is silence
  frame_energy = power.sum(axis=0)
  spectrum = power.sum(axis=1)
  if frame_energy.max() <= 0:
    return dict.fromkeys(MEL_FEATURES, math.nan)
  peak = int(np.argmax(spectrum))
  band = float(peak)
  if 0 < peak < len(spectrum) - 1:  # parabola through the log power around the peak
    left, mid, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-30)
    curvature = left - 2 * mid + right
    if curvature < 0:
      band += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
  pitch_hz = float(np.interp(band, np.arange(len(centres)), centres))
  centroid = float(np.sum(spectrum * centres) / spectrum.sum())
  positive = np.maximum(spectrum, 1e-12 * spectrum.max())
  flatness = float(np.exp(np.mean(np.log(positive))) / np.mean(positive))
  times = (np.arange(len(frame_energy)) + 0.5) * seconds_per_frame
  return dict(
    pitch_band=band,
    pitch_hz=pitch_hz,
    loudness_db=10 * math.log10(float(frame_energy.max())),
    centroid_hz=centroid,
    brightness=centroid / pitch_hz,
    flatness=flatness,
    temporal_centroid_s=float(np.sum(times * frame_energy) / frame_energy.sum()),
  )


def band_frequencies(params: spectrogram.MelParams) -> np.ndarray:
  """Centre frequency (Hz) of each mel band, lowest first: librosa's `mel_frequencies` on the
  Slaney scale (htk=False), computed here so that measuring needs no librosa import."""
  edges = np.linspace(_hz_to_mel(params.fmin), _hz_to_mel(params.fmax_hz), params.n_mels + 2)
  return _mel_to_hz(edges[1:-1])


_F_SP = 200.0 / 3  # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ, _MIN_LOG_MEL, _LOG_STEP = 1000.0, 15.0, math.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
  if hz < _MIN_LOG_HZ:
    return hz / _F_SP
  return _MIN_LOG_MEL + math.log(hz / _MIN_LOG_HZ) / _LOG_STEP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
  linear = mels * _F_SP
  log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mels - _MIN_LOG_MEL))
  return np.where(mels >= _MIN_LOG_MEL, log, linear)


# ---------------------------------------------------------------------------------------------
# The rule.


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman rank correlation over the rows where both are finite (NaN if < 3 such rows)."""
  from scipy import stats

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  keep = np.isfinite(a) & np.isfinite(b)
  if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
    return math.nan
  return float(stats.spearmanr(a[keep], b[keep]).statistic)


def rule_correlations(
  mel_feats: Mapping[str, np.ndarray], picture_feats: Mapping[str, np.ndarray]
) -> dict[str, float]:
  """{'pitch -> height': rho, ...}: Spearman of each pair of the hidden rule, row by row."""
  return {
    name: spearman(mel_feats[audio], picture_feats[visual])
    for name, (audio, visual) in zip(RULE_NAMES, RULE)
  }


def load_hidden_params(data_dir: str | os.PathLike) -> dict[str, Any]:
  """The hidden parameters a squiggles corpus stores beside its records (the file named by
  `extra.hidden_params` in its meta): {'clips': {clip_source_id: {pitch, velocity, timbre,
  timbre_name, brightness, split}}, 'pictures': {painting_id: the same + height, area, hue,
  spike_depth}, 'rule': ..., 'paired_splits': [...]}. ValueError for any other dataset."""
  name = records.read_meta(data_dir).extra.get('hidden_params')
  if not name:
    raise ValueError(f'{data_dir} stores no hidden parameters (not a squiggles corpus)')
  return json.loads((workdir_lib.as_path(data_dir) / name).read_text())
