"""Recordings -> fixed-length clips -> mel images (via `pix2pitch_jax.audio`, the one transform).

Two steps, so that each recording is decoded in full only once:

  probe_recording  decodes the whole file once (in a worker), rejects it with a reason if it is
                   empty, undecodable, truncated, too short or silent, measures its peak (for
                   per-recording peak normalisation, which keeps loudness contrasts *within* a
                   piece) and lists the clip offsets that are not near-silent.
  AudioClip        one planned clip: reading it seeks to the offset, decodes only the clip,
                   mixes to mono, resamples with librosa and applies the recording's gain.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from pix2pitch_jax.audio import numba_cache, spectrogram

_TRUNCATED_DATA = re.compile(r'data\s*:\s*(?P<declared>\d+)\s*\(should be (?P<found>\d+)\)')


@dataclasses.dataclass(frozen=True)
class ClipSettings:
  clip_seconds: float
  hop_seconds: float  # offset step between clips of one recording
  silence_db: float  # clips whose RMS (after peak normalisation) is below this dBFS are skipped
  max_clips_per_recording: int | None = None

  def __post_init__(self):
    if self.clip_seconds <= 0 or self.hop_seconds <= 0:
      raise ValueError('clip_seconds and hop_seconds must be positive')


@dataclasses.dataclass(frozen=True)
class Probe:
  """What a recording yields: the clip offsets to use, or the reason it is skipped."""

  reason: str = ''  # empty when usable
  duration_s: float = 0.0
  gain: float = 1.0  # 1 / peak
  offsets_s: tuple[float, ...] = ()
  silent_clips: int = 0

  @property
  def ok(self) -> bool:
    return not self.reason


class UnusableAudio(Exception):
  """Why a recording cannot be used; the message is the reason shown in the report."""


@dataclasses.dataclass(frozen=True)
class AudioClip:
  """`clip_seconds` of a recording from `offset_s`, peak-normalised with `gain`."""

  path: str
  offset_s: float
  gain: float

  def waveform(self, params: spectrogram.MelParams) -> np.ndarray:
    import soundfile as sf

    with sf.SoundFile(self.path) as f:
      f.seek(int(round(self.offset_s * f.samplerate)))
      frames = int(round(params.clip_seconds * f.samplerate))
      y = _to_mono(f.read(frames, dtype='float32', always_2d=True))
      y = _resample(y, f.samplerate, params.sample_rate)
    y = fit_length(y * np.float32(self.gain), params.clip_samples)
    return np.clip(y, -1.0, 1.0)

  def notes_json(self) -> str:
    return ''


def probe_recording(path: str, settings: ClipSettings) -> Probe:
  """Decode `path` once and decide which clips it yields (never raises for bad audio)."""
  try:
    y, sample_rate = read_mono(path)
  except UnusableAudio as e:
    return Probe(reason=str(e))
  duration = y.shape[0] / sample_rate
  if duration + 1e-6 < settings.clip_seconds:
    return Probe(
      reason=f'too short: {duration:.2f} s < clip {settings.clip_seconds:g} s', duration_s=duration
    )
  peak = float(np.max(np.abs(y)))
  if peak < 10 ** (settings.silence_db / 20):
    return Probe(reason=f'silent: peak {_db(peak):.0f} dBFS', duration_s=duration)
  gain = 1.0 / peak
  offsets, silent = [], 0
  clip_frames = int(round(settings.clip_seconds * sample_rate))
  for offset in clip_offsets(duration, settings.clip_seconds, settings.hop_seconds):
    start = int(round(offset * sample_rate))
    rms = gain * float(
      np.sqrt(np.mean(np.square(y[start : start + clip_frames], dtype=np.float64)))
    )
    if _db(rms) < settings.silence_db:
      silent += 1
    else:
      offsets.append(round(offset, 6))
  if settings.max_clips_per_recording is not None:
    offsets = _evenly_spaced(offsets, settings.max_clips_per_recording)
  if not offsets:
    return Probe(
      reason=f'silent: all {silent} clips below {settings.silence_db:g} dBFS',
      duration_s=duration,
      silent_clips=silent,
    )
  return Probe(duration_s=duration, gain=gain, offsets_s=tuple(offsets), silent_clips=silent)


def clip_offsets(duration_s: float, clip_seconds: float, hop_seconds: float) -> np.ndarray:
  """Start times of the whole clips that fit in `duration_s`, `hop_seconds` apart."""
  last = duration_s - clip_seconds + 1e-6
  return np.arange(0.0, last, hop_seconds) if last >= 0 else np.zeros((0,))


def read_mono(path: str) -> tuple[np.ndarray, int]:
  """Whole file as mono float32 at its own rate; raises UnusableAudio with a reason."""
  import soundfile as sf

  if os.path.getsize(path) == 0:
    raise UnusableAudio('empty file')
  try:
    with sf.SoundFile(path) as f:
      declared = f.frames
      y = f.read(dtype='float32', always_2d=True)
      sample_rate = f.samplerate
      header_notes = f.extra_info
  except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
    raise UnusableAudio(f'undecodable: {e}') from e
  if y.shape[0] == 0:
    raise UnusableAudio('no audio frames')
  # A cut-off WAV decodes what is left; libsndfile notes 'data : <declared> (should be <found>)'.
  cut = _TRUNCATED_DATA.search(header_notes)
  if cut and int(cut['found']) < int(cut['declared']):
    raise UnusableAudio(
      f'truncated: data chunk declares {cut["declared"]} bytes, file holds {cut["found"]}'
    )
  if y.shape[0] < declared:
    raise UnusableAudio(f'truncated: header declares {declared} frames, decoded {y.shape[0]}')
  if not np.isfinite(y).all():
    raise UnusableAudio('corrupt: non-finite samples')
  return _to_mono(y), sample_rate


def clip_mel(clip, params: spectrogram.MelParams) -> np.ndarray:
  """Mel image of any clip reference with a `waveform(params)` method."""
  return spectrogram.audio_to_mel_image(clip.waveform(params), params)


def fit_length(y: np.ndarray, length: int) -> np.ndarray:
  return y[:length] if y.shape[0] >= length else np.pad(y, (0, length - y.shape[0]))


def _to_mono(y: np.ndarray) -> np.ndarray:
  return y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]


def _resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  if orig_sr == target_sr:
    return y
  librosa = numba_cache.import_librosa()
  return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type='soxr_hq')


def _evenly_spaced(values: list, count: int) -> list:
  if len(values) <= count:
    return values
  picks = np.linspace(0, len(values) - 1, count).round().astype(int)
  return [values[i] for i in picks]


def _db(amplitude: float) -> float:
  return 20.0 * np.log10(max(amplitude, 1e-12))
