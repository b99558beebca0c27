"""Note transcription straight from a mel image, and note-level scores against a known score.

Used on the synesthesia demo, whose examples carry the notes they were rendered from
(`notes_json`: `[[onset_s, duration_s, midi_pitch, velocity, program], ...]`, times relative to
the clip start). Transcribing the *mel image* rather than its Griffin-Lim audio measures what the
generator drew, without the vocoder's phase artefacts; the audio holds the same spectrogram.

Method (documented in docs/evaluation.md):
  1. Amplitude per band a[m, t] = 10^(dB / 20) of the image mapped back to dB.
  2. Onset: band m has an onset between frames t-1 and t when a[m, t-1] < half of the band's
     maximum over the next `ceil(n_fft / hop) + 1` frames <= a[m, t]. With centred Hann windows
     a steady note starting at time tau reaches half its amplitude exactly in the frame centred on
     tau (the window is symmetric), so the onset time is the linear interpolation of that crossing,
     far finer than the STFT window (186 ms at MEL_256_22K). The rise is >= 6 dB by construction.
  3. Gates: the band's maximum must be within `dynamic_range_db` of the image's loudest pixel, and
     band m must be a spectral peak (louder than both neighbour bands) at the frame of its maximum;
     neighbouring bands of the same note rise too but are not peaks.
  4. Pitch: parabolic interpolation of the dB values of bands m-1, m, m+1 at that frame, on the mel
     scale (where band centres are evenly spaced), converted to Hz; notes outside
     [min_midi, max_midi] are dropped (the synesthesia demo plays a pentatonic scale C5..C7).
  5. Clean-up: detections of one note in adjacent bands or frames are merged (loudest kept), and a
     harmonic sieve drops a detection at ~2, 3 or 4 times the frequency of a simultaneous one that
     is not much quieter: instrument partials are not notes. (An octave doubling of a real note is
     therefore lost; the demo's melodies rarely have one.)
  6. Offset: when the amplitude falls 20 dB below the note's peak (onset-only scores ignore it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from pix2pitch_jax.audio import numba_cache, spectrogram


@dataclasses.dataclass(frozen=True)
class TranscriptionConfig:
  min_midi: float = 58.0  # the synesthesia demo plays C5 (72) .. C7 (96); tests use C4..C6
  max_midi: float = 98.0
  dynamic_range_db: float = 40.0  # quieter than (loudest pixel - this) is not a note
  merge_frames: int = 2  # detections of one pitch closer than this many frames are one note
  harmonic_sieve: bool = True
  harmonic_tolerance_cents: float = 50.0
  harmonic_max_excess_db: float = 6.0  # a "partial" louder than its fundamental by more is a note
  offset_drop_db: float = 20.0


@dataclasses.dataclass(frozen=True)
class Notes:
  """A note list as mir_eval wants it: intervals (N, 2) in seconds, pitches (N,) in Hz."""

  intervals: np.ndarray
  pitches_hz: np.ndarray
  peak_db: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.pitches_hz)

  @property
  def onsets(self) -> np.ndarray:
    return self.intervals[:, 0] if len(self) else np.zeros(0)


def parse_notes_json(notes_json: str, clip_seconds: float | None = None) -> Notes:
  """The dataset's `notes_json` -> Notes; notes starting after `clip_seconds` are dropped."""
  rows = json.loads(notes_json) if notes_json else []
  rows = [r for r in rows if clip_seconds is None or r[0] < clip_seconds]
  if not rows:
    return Notes(np.zeros((0, 2)), np.zeros(0))
  table = np.asarray(rows, np.float64)
  onsets, durations = table[:, 0], np.maximum(table[:, 1], 1e-3)
  return Notes(np.stack([onsets, onsets + durations], axis=1), midi_to_hz(table[:, 2]))


def midi_to_hz(midi: Any) -> np.ndarray:
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def hz_to_midi(hz: Any) -> np.ndarray:
  return 69.0 + 12.0 * np.log2(np.asarray(hz, np.float64) / 440.0)


def transcribe_mel_image(
  image: Any, params: spectrogram.MelParams, config: TranscriptionConfig = TranscriptionConfig()
) -> Notes:
  """Notes of one mel image (n_mels, n_frames) in [-1, 1] (the method in the module docstring)."""
  db = np.asarray(spectrogram.image_to_db(np.asarray(image, np.float32), params), np.float64)
  candidates = _onset_candidates(db, params, config)
  candidates = _merge_duplicates(candidates, config)
  if config.harmonic_sieve:
    candidates = _drop_harmonics(candidates, config)
  candidates.sort(key=lambda c: (c['onset_s'], c['pitch_hz']))
  if not candidates:
    return Notes(np.zeros((0, 2)), np.zeros(0), np.zeros(0))
  return Notes(
    np.asarray([[c['onset_s'], c['offset_s']] for c in candidates]),
    np.asarray([c['pitch_hz'] for c in candidates]),
    np.asarray([c['peak_db'] for c in candidates]),
  )


def _band_centres_mel(params: spectrogram.MelParams) -> np.ndarray:
  librosa = numba_cache.import_librosa()

  return librosa.mel_frequencies(
    params.n_mels + 2, fmin=params.fmin, fmax=params.fmax_hz, htk=False
  )[1:-1]


def _onset_candidates(
  db: np.ndarray, params: spectrogram.MelParams, config: TranscriptionConfig
) -> list[dict[str, float]]:
  librosa = numba_cache.import_librosa()

  n_mels, n_frames = db.shape
  amplitude = 10.0 ** (db / 20.0)
  lookahead = math.ceil(params.n_fft / params.hop_length) + 1
  # future_max[m, t] = max amplitude over frames t .. t + lookahead of band m.
  padded = np.pad(amplitude, ((0, 0), (0, lookahead)), constant_values=0.0)
  windows = np.lib.stride_tricks.sliding_window_view(padded, lookahead + 1, axis=1)[:, :n_frames]
  future_max = windows.max(axis=-1)
  future_argmax = windows.argmax(axis=-1) + np.arange(n_frames)[None, :]
  half = 0.5 * future_max
  crossing = np.zeros_like(amplitude, bool)
  crossing[:, 1:] = (amplitude[:, :-1] < half[:, 1:]) & (amplitude[:, 1:] >= half[:, 1:])
  loud = 20.0 * np.log10(future_max + 1e-30) > db.max() - config.dynamic_range_db
  centre_mels = librosa.hz_to_mel(_band_centres_mel(params))
  mel_step = np.diff(centre_mels).mean()
  seconds_per_frame = params.hop_length / params.sample_rate

  candidates = []
  for m, t in zip(*np.nonzero(crossing & loud)):
    if m == 0 or m == n_mels - 1:
      continue
    t_peak = future_argmax[m, t]
    below, centre, above = db[m - 1, t_peak], db[m, t_peak], db[m + 1, t_peak]
    if not (centre > below and centre >= above):
      continue
    curvature = below - 2.0 * centre + above
    offset_bands = 0.5 * (below - above) / curvature if curvature < 0 else 0.0
    pitch_hz = float(librosa.mel_to_hz(centre_mels[m] + offset_bands * mel_step))
    if not config.min_midi <= hz_to_midi(pitch_hz) <= config.max_midi:
      continue
    fraction = (half[m, t] - amplitude[m, t - 1]) / (amplitude[m, t] - amplitude[m, t - 1])
    onset_frames = t - 1 + fraction
    peak = future_max[m, t]
    after = np.nonzero(amplitude[m, t_peak:] < peak * 10.0 ** (-config.offset_drop_db / 20.0))[0]
    end_frame = t_peak + (after[0] if len(after) else n_frames - t_peak)
    candidates.append(
      dict(
        onset_s=onset_frames * seconds_per_frame,
        offset_s=max(end_frame, onset_frames + 1.0) * seconds_per_frame,
        pitch_hz=pitch_hz,
        peak_db=float(20.0 * np.log10(peak + 1e-30)),
        frame=float(onset_frames),
      )
    )
  return candidates


def _cents(a_hz: float, b_hz: float) -> float:
  return abs(1200.0 * math.log2(a_hz / b_hz))


def _merge_duplicates(
  candidates: list[dict[str, float]], config: TranscriptionConfig
) -> list[dict[str, float]]:
  """One note seen in two adjacent bands or frames: keep the loudest detection."""
  kept: list[dict[str, float]] = []
  for c in sorted(candidates, key=lambda c: -c['peak_db']):
    if not any(
      abs(c['frame'] - k['frame']) <= config.merge_frames
      and _cents(c['pitch_hz'], k['pitch_hz']) < 100.0
      for k in kept
    ):
      kept.append(c)
  return kept


def _drop_harmonics(
  candidates: list[dict[str, float]], config: TranscriptionConfig
) -> list[dict[str, float]]:
  def is_partial(c, fundamental):
    if abs(c['frame'] - fundamental['frame']) > config.merge_frames:
      return False
    if c['peak_db'] > fundamental['peak_db'] + config.harmonic_max_excess_db:
      return False
    return any(
      _cents(c['pitch_hz'], k * fundamental['pitch_hz']) < config.harmonic_tolerance_cents
      for k in (2, 3, 4)
    )

  return [c for c in candidates if not any(is_partial(c, f) for f in candidates if f is not c)]


SCORE_KEYS = (
  'onset_precision',
  'onset_recall',
  'onset_f1',
  'onset_pitch_precision',
  'onset_pitch_recall',
  'onset_pitch_f1',
)


def note_scores(
  reference: Notes,
  estimated: Notes,
  onset_tolerance_s: float = 0.05,
  pitch_tolerance_cents: float = 50.0,
) -> dict[str, float]:
  """Onset F1 (within 50 ms) and onset+pitch F1 (and within 50 cents) via mir_eval, offsets
  ignored. Both 0 when nothing was transcribed; NaN when the reference has no notes."""
  import mir_eval

  if not len(reference):
    return dict.fromkeys(SCORE_KEYS, float('nan'))
  if not len(estimated):
    return dict.fromkeys(SCORE_KEYS, 0.0)
  p, r, f = mir_eval.transcription.onset_precision_recall_f1(
    reference.intervals, estimated.intervals, onset_tolerance=onset_tolerance_s
  )
  pp, pr, pf, _ = mir_eval.transcription.precision_recall_f1_overlap(
    reference.intervals,
    reference.pitches_hz,
    estimated.intervals,
    estimated.pitches_hz,
    onset_tolerance=onset_tolerance_s,
    pitch_tolerance=pitch_tolerance_cents,
    offset_ratio=None,
  )
  return {
    'onset_precision': float(p),
    'onset_recall': float(r),
    'onset_f1': float(f),
    'onset_pitch_precision': float(pp),
    'onset_pitch_recall': float(pr),
    'onset_pitch_f1': float(pf),
  }
