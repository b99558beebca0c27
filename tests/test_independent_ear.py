"""The independent ear: basic-pitch finds the notes of a synthesised clip, and hears partials."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from pix2pitch_jax.audio import transcription
from pix2pitch_jax.evaluation import independent_ear

EAR_INSTALLED = all(importlib.util.find_spec(m) for m in ('basic_pitch', 'onnxruntime'))
needs_ear = pytest.mark.skipif(
  not EAR_INSTALLED, reason='the `ear` extra (basic-pitch, onnxruntime) is not installed'
)

# (onset_s, duration_s, MIDI): C5, E5, G5, apart in time, as in the synesthesia demo's range.
NOTES = ((0.5, 0.5, 72), (1.2, 0.6, 76), (2.0, 0.5, 79))
# Partial amplitudes from the fundamental up: the demo's flute-like and sawtooth-like timbres.
FLUTE = (1.0, 0.08)
SAW = tuple(1.0 / k for k in range(1, 9))


def render(notes, sample_rate: int, partials=FLUTE, seconds: float = 3.0) -> np.ndarray:
  """Additive synthesis with a 10 ms attack and a 40 ms release (the demo's envelope)."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  out = np.zeros_like(t)
  amps = np.asarray(partials) / np.sum(partials)
  for onset, duration, midi in notes:
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
    local = t[(t >= onset) & (t < onset + duration)] - onset
    envelope = np.minimum(1.0, local / 0.01) * np.minimum(1.0, (duration - local) / 0.04)
    tone = sum(a * np.sin(2 * np.pi * k * f0 * local) for k, a in enumerate(amps, 1))
    out[(t >= onset) & (t < onset + duration)] += 0.3 * envelope * tone
  return out.astype(np.float32)


def reference(notes) -> transcription.Notes:
  rows = [[onset, duration, midi, 80, 73] for onset, duration, midi in notes]
  return transcription.parse_notes_json(json.dumps(rows))


@needs_ear
@pytest.mark.parametrize('sample_rate', [22_050, 44_100])  # its own rate, and one resampled
def test_basic_pitch_hears_the_notes_of_a_clip(sample_rate):
  heard = independent_ear.transcribe_audio(render(NOTES, sample_rate), sample_rate)
  scores = transcription.note_scores(reference(NOTES), heard)
  assert scores['onset_f1'] >= 0.9 and scores['onset_pitch_f1'] >= 0.9, scores
  np.testing.assert_allclose(transcription.hz_to_midi(heard.pitches_hz), [72, 76, 79], atol=0.01)
  np.testing.assert_allclose(heard.onsets, [0.5, 1.2, 2.0], atol=0.05)


@needs_ear
def test_basic_pitch_hears_strong_partials_as_notes_too():
  """Why the two ears can disagree on the demo's bright timbres: basic-pitch finds every note, and
  any extra note it reports is a partial (2 to 8 times the frequency) of a note that sounds."""
  heard = independent_ear.transcribe_audio(render(NOTES, 22_050, partials=SAW), 22_050)
  scores = transcription.note_scores(reference(NOTES), heard)
  assert scores['onset_pitch_recall'] == 1.0, scores
  heard_midi = transcription.hz_to_midi(heard.pitches_hz)
  # The fundamentals (k = 1) and their partials, in MIDI.
  partials = np.asarray([midi + 12 * np.log2(k) for _, _, midi in NOTES for k in range(1, 9)])
  assert all(np.abs(partials - m).min() < 0.5 for m in heard_midi), heard_midi


def test_without_the_extra_a_one_line_error(monkeypatch):
  monkeypatch.setitem(sys.modules, 'basic_pitch', None)  # `import basic_pitch` raises ImportError
  independent_ear._basic_pitch.cache_clear()
  try:
    with pytest.raises(independent_ear.EarUnavailable) as error:
      independent_ear.check_available()
  finally:
    independent_ear._basic_pitch.cache_clear()
  assert '\n' not in str(error.value) and '`ear` extra' in str(error.value)
