"""Audio transforms: the one home for waveform <-> log-mel image conversions.

The dataset stores each clip as a *mel image*: an (n_mels, n_frames) float array in [-1, 1] whose
rows are mel bands with the lowest frequency in the **last** row (so it looks like a spectrogram
plot) and whose columns are time frames. The mapping is fixed and documented so that generation
inverts exactly what data_prep built:

    power mel  P = melspectrogram(y, sr, n_fft, hop, n_mels, fmin, fmax, power=2, htk=False,
                                  norm=None, center=True)[:, :n_frames]
    dB         D = 10 * log10(max(P, amin) / ref_power)        (ref_power: see below)
    image      X = flipud(2 * (clip(D, min_db, max_db) - min_db) / (max_db - min_db) - 1)

The mel filters are triangles with unit peak (Slaney mel scale, `norm=None`), and `ref_power` is
the squared peak window gain (sum(hann(n_fft)) / 2)**2, so a full-scale (amplitude 1) sine at a
band's centre reads 0 dB whatever the resolution. With the default range [-80, 0] dB a clip
therefore fills the image from silence (-1) to loud (+1) without per-clip normalisation, which
would erase loudness differences between eras.

All parameters live in `MelParams`, which is written into every dataset's metadata.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import numpy as np

from pix2pitch_jax.audio import numba_cache


@dataclasses.dataclass(frozen=True)
class MelParams:
  """Everything needed to turn audio into a mel image and back."""

  sample_rate: int = 22_050
  image_size: int = 256  # n_mels == n_frames == image_size
  clip_seconds: float = 10.0
  n_fft: int = 4096
  fmin: float = 0.0
  fmax: float | None = None  # None: sample_rate / 2
  min_db: float = -80.0
  max_db: float = 0.0
  amin: float = 1e-10

  def __post_init__(self):
    if self.image_size < 8 or self.image_size & (self.image_size - 1):
      raise ValueError(f'image_size must be a power of two >= 8, got {self.image_size}')
    if self.sample_rate <= 0 or self.clip_seconds <= 0:
      raise ValueError('sample_rate and clip_seconds must be positive')
    if self.max_db <= self.min_db:
      raise ValueError(f'max_db ({self.max_db}) must exceed min_db ({self.min_db})')
    if self.hop_length < 1 or self.n_fft < self.hop_length // 4:
      raise ValueError(f'n_fft={self.n_fft} too small for hop_length={self.hop_length}')

  @property
  def n_mels(self) -> int:
    return self.image_size

  @property
  def n_frames(self) -> int:
    return self.image_size

  @property
  def clip_samples(self) -> int:
    return int(round(self.clip_seconds * self.sample_rate))

  @property
  def hop_length(self) -> int:
    # With center=True librosa yields 1 + len // hop frames; this hop gives >= n_frames frames.
    return max(1, self.clip_samples // self.n_frames)

  @property
  def fmax_hz(self) -> float:
    return float(self.fmax) if self.fmax is not None else self.sample_rate / 2.0

  @property
  def ref_power(self) -> float:
    window_gain = np.hanning(self.n_fft + 1)[:-1].sum() / 2.0  # periodic Hann, as librosa
    return float(window_gain) ** 2

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.update(
      hop_length=self.hop_length,
      n_mels=self.n_mels,
      n_frames=self.n_frames,
      clip_samples=self.clip_samples,
      ref_power=self.ref_power,
    )
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> MelParams:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# Defaults for the two resolutions of the Pix2Pitch thesis: 256 at 22 050 Hz, 512 at 44 100 Hz.
# n_fft is large enough that no mel filter is empty at these band counts.
MEL_256_22K = MelParams(sample_rate=22_050, image_size=256, n_fft=4096)
MEL_512_22K = MelParams(sample_rate=22_050, image_size=512, n_fft=8192)
MEL_512_44K = MelParams(sample_rate=44_100, image_size=512, n_fft=8192)


def default_mel_params(image_size: int, sample_rate: int) -> MelParams:
  """Thesis defaults for a resolution/sample rate; other sizes get a scaled n_fft."""
  n_fft = 2 ** max(9, math.ceil(math.log2(16 * image_size * sample_rate / 22_050)))
  return MelParams(sample_rate=sample_rate, image_size=image_size, n_fft=min(n_fft, 8192))


@functools.lru_cache(maxsize=8)
def mel_filterbank(params: MelParams) -> np.ndarray:
  """(n_mels, 1 + n_fft // 2) unit-peak triangular mel filterbank, lowest band first."""
  # Deferred: importing librosa costs ~2 s and the trainer does not need it.
  librosa = numba_cache.import_librosa()

  return librosa.filters.mel(
    sr=params.sample_rate,
    n_fft=params.n_fft,
    n_mels=params.n_mels,
    fmin=params.fmin,
    fmax=params.fmax_hz,
    norm=None,
  ).astype(np.float32)


def audio_to_power_mel(y: np.ndarray, params: MelParams) -> np.ndarray:
  """Power mel spectrogram (n_mels, n_frames), lowest band first, of a mono clip."""
  librosa = numba_cache.import_librosa()

  y = np.asarray(y, np.float32)
  if y.ndim != 1:
    raise ValueError(f'expected mono audio of shape (samples,), got {y.shape}')
  need = params.hop_length * (params.n_frames - 1) + 1
  if y.shape[0] < need:
    y = np.pad(y, (0, need - y.shape[0]))
  stft = librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length, center=True)
  power = np.abs(stft[:, : params.n_frames]) ** 2
  return mel_filterbank(params) @ power


def power_mel_to_db(power_mel: np.ndarray, params: MelParams) -> np.ndarray:
  return 10.0 * np.log10(np.maximum(power_mel, params.amin) / params.ref_power)


def db_to_image(db: np.ndarray, params: MelParams) -> np.ndarray:
  """dB (lowest band first) -> image in [-1, 1] with the lowest band in the last row."""
  scaled = np.clip(db, params.min_db, params.max_db) - params.min_db
  scaled = 2.0 * scaled / (params.max_db - params.min_db) - 1.0
  return np.flip(scaled, axis=-2).astype(np.float32)


def image_to_db(image: Any, params: MelParams) -> Any:
  """Inverse of `db_to_image` (up to clipping); works on numpy or jax arrays, any batch dims."""
  xp = _array_module(image)
  db = (xp.clip(image, -1.0, 1.0) + 1.0) * 0.5 * (params.max_db - params.min_db) + params.min_db
  return xp.flip(db, axis=-2)


def audio_to_mel_image(y: np.ndarray, params: MelParams) -> np.ndarray:
  """Mono clip -> (n_mels, n_frames) float32 mel image in [-1, 1] (the dataset's `mel`)."""
  return db_to_image(power_mel_to_db(audio_to_power_mel(y, params), params), params)


def _array_module(x: Any):
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return np
  import jax.numpy as jnp

  return jnp


def image_to_power_mel(images: Any, params: MelParams) -> Any:
  """Mel image(s) in [-1, 1] -> power mel (..., n_mels, n_frames), lowest band first.

  Inverts `db_to_image` and `power_mel_to_db`: a pixel at -1 comes back as the `min_db` floor, as
  the forward transform would have produced for silence.
  """
  xp = _array_module(images)
  return params.ref_power * xp.power(10.0, image_to_db(images, params) / 10.0)


# Anchors of the 'magma' colormap (dark -> light), linearly interpolated: readable in print and
# for colour-blind readers, and matplotlib is not a dependency.
_MAGMA = np.array(
  [
    (0, 0, 4),
    (28, 16, 68),
    (79, 18, 123),
    (129, 37, 129),
    (181, 54, 122),
    (229, 80, 100),
    (251, 135, 97),
    (254, 194, 135),
    (252, 253, 191),
  ],
  np.float32,
)


def colorize_mel(image: np.ndarray) -> np.ndarray:
  """Mel image(s) (..., H, W) in [-1, 1] -> uint8 RGB (..., H, W, 3) in the magma colormap.

  Rows stay as stored (lowest band in the last row), so the picture reads as a spectrogram plot.
  One colouring for every place a mel is shown (the gallery's PNGs, TensorBoard), so that the
  same loudness looks the same everywhere; grey levels hide quiet detail that a colormap shows.
  """
  x = (np.clip(np.asarray(image, np.float32), -1.0, 1.0) + 1.0) / 2.0 * (len(_MAGMA) - 1)
  low = np.minimum(np.floor(x).astype(int), len(_MAGMA) - 2)
  frac = (x - low)[..., None]
  return np.round(_MAGMA[low] * (1 - frac) + _MAGMA[low + 1] * frac).astype(np.uint8)
