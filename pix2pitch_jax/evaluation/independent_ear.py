"""An independent ear: notes transcribed from audio by a model this project did not write.

`audio/transcription.py` reads notes off a mel image with rules written here, for the corpus made
here; a flaw shared by the corpus, the model and those rules would go unseen. This module hears the
*audio* instead, with Spotify's basic-pitch (Bittner et al., ICASSP 2022), a polyphonic
transcriber trained on guitar, piano, singing and multi-instrument data: its own windowing,
thresholds and note creation (`basic_pitch.inference.predict` with its defaults), run from the
ONNX model its wheel ships, on onnxruntime, offline. It needs the `ear` extra (pyproject.toml);
without it, `EarUnavailable` says so in one line.

basic-pitch is imported on first use and its model loaded once per process, so importing this
module costs nothing (the trainer never does).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
import types
from typing import Any

import numpy as np

from pix2pitch_jax.audio import numba_cache, transcription

SAMPLE_RATE = 22_050  # basic-pitch's input rate (basic_pitch.constants.AUDIO_SAMPLE_RATE)
INSTALL_HINT = (
  'the independent ear needs the `ear` extra (basic-pitch with onnxruntime): make setup installs '
  'it; elsewhere see README.md, "Dependencies"'
)


class EarUnavailable(RuntimeError):
  """basic-pitch or onnxruntime is not installed (the `ear` extra)."""


@functools.cache
def _basic_pitch() -> tuple[types.ModuleType, Any]:
  """basic_pitch.inference and its ONNX model, loaded once per process."""
  # basic-pitch imports librosa itself: import it first, under the project's numba cache lock.
  numba_cache.import_librosa()
  try:
    with _root_logger_silenced():
      import basic_pitch
      import onnxruntime  # noqa: F401  (basic-pitch imports without it, then fails to load the model)
      from basic_pitch import inference
  except ImportError as error:
    raise EarUnavailable(f'{INSTALL_HINT} ({error})') from None
  model = inference.Model(basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx))
  return inference, model


@contextlib.contextmanager
def _root_logger_silenced():
  """basic-pitch warns on the root logger, when imported, about each backend it did not find
  (TensorFlow, CoreML, TFLite); only its ONNX model is used here. A filter on the root logger drops
  only records logged on it directly, not those of named loggers (absl's) passing through; the
  NullHandler stops `logging.warning` from configuring a console handler of its own."""
  root = logging.getLogger()
  drop = lambda record: False
  placeholder = logging.NullHandler()
  root.addFilter(drop)
  root.addHandler(placeholder)
  try:
    yield
  finally:
    root.removeHandler(placeholder)
    root.removeFilter(drop)


def check_available() -> None:
  """Loads basic-pitch and its ONNX model; EarUnavailable (one line) when the `ear` extra is not
  installed."""
  _basic_pitch()


def transcribe_audio(clip: Any, sample_rate: int) -> transcription.Notes:
  """The notes basic-pitch hears in one mono clip (samples,) at `sample_rate` (resampled to its
  22 050 Hz first). Pitches are its MIDI note numbers in Hz (pitch bends are not used)."""
  inference, model = _basic_pitch()
  audio = np.asarray(clip, np.float32).reshape(-1)
  if sample_rate != SAMPLE_RATE:
    librosa = numba_cache.import_librosa()
    audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
  events = _predict_note_events(inference, model, audio)
  if not events:
    return transcription.Notes(np.zeros((0, 2)), np.zeros(0))
  events = sorted(events, key=lambda e: (e[0], e[2]))
  return transcription.Notes(
    np.asarray([[start, end] for start, end, *_ in events], np.float64),
    transcription.midi_to_hz([pitch for _, _, pitch, *_ in events]),
  )


def _predict_note_events(inference: types.ModuleType, model: Any, audio: np.ndarray) -> list:
  """`basic_pitch.inference.predict` on `audio`: it reads a file, so the clip goes through a
  32-bit float WAV (lossless, no clipping) in a temporary folder; it prints a line per file, which
  is swallowed."""
  import soundfile

  with tempfile.TemporaryDirectory(prefix='pix2pitch-ear-') as folder:
    path = os.path.join(folder, 'clip.wav')
    soundfile.write(path, audio, SAMPLE_RATE, subtype='FLOAT')
    with contextlib.redirect_stdout(io.StringIO()):
      _, _, events = inference.predict(path, model)
  return list(events)
