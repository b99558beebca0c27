"""The MIDI route: a mel image -> the notes it holds -> a Standard MIDI File -> audio.

Notes are read off the mel image by the project's transcriber (`transcription.py`), widened from
the synesthesia demo's two octaves to every pitch the mel image can resolve (`route_config`), and
written as one General MIDI part (a piano unless told otherwise) with velocities from each note's
loudness. The file is what a musician opens in a notation program or a DAW; rendered with
FluidSynth and the best soundfont installed (`soundfont.py`) it is a clean, phase-free clip, at
the price of everything the transcriber does not hear (timbre, noise, dynamics within a note).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from pix2pitch_jax.audio import soundfont, spectrogram, transcription

PIANO = 0  # General MIDI programme numbers count from 0 here, as in pretty_midi
LOWEST_MIDI, HIGHEST_MIDI = 21.0, 108.0  # the piano's range, A0..C8
# Velocity from a note's peak level (dB re a full-scale sine): this range maps onto 20..127.
_QUIET_DB, _LOUD_DB = -60.0, -6.0
_MIN_VELOCITY = 20


def route_config(params: spectrogram.MelParams) -> transcription.TranscriptionConfig:
  """The transcriber's settings for any music: every pitch between the third mel band's centre
  (lower bands are too wide to place a note) and the highest band, within the piano's range.

  Polyphonic music with rich instruments needs a stricter ear than the synesthesia demo's sparse
  melodies: notes within 20 dB of the loudest (not 40) and detections of one pitch within 4 frames
  merged (not 2). On the eras demo's validation clips, against the notes of their source MIDI,
  that takes onset+pitch F1 from 0.13 to 0.20 and the notes per 4 s clip from 152 to 66
  (reference: 36); the test clips agree (0.13 -> 0.22). WORKSPACE_NOTES.md has the table."""
  peak_bins = spectrogram.mel_filterbank(params).argmax(axis=1)  # each band's centre, in FFT bins
  bin_hz = params.sample_rate / params.n_fft
  lowest = float(transcription.hz_to_midi(max(peak_bins[2] * bin_hz, 1.0)))
  highest = float(transcription.hz_to_midi(max(peak_bins[-2] * bin_hz, 1.0)))
  return transcription.TranscriptionConfig(
    min_midi=max(LOWEST_MIDI, lowest),
    max_midi=min(HIGHEST_MIDI, highest),
    dynamic_range_db=20.0,
    merge_frames=4,
  )


def velocities(peak_db: np.ndarray) -> np.ndarray:
  """MIDI velocities (20..127) from the notes' peak levels in dB."""
  scaled = (np.asarray(peak_db, np.float64) - _QUIET_DB) / (_LOUD_DB - _QUIET_DB)
  return np.clip(np.round(_MIN_VELOCITY + scaled * (127 - _MIN_VELOCITY)), _MIN_VELOCITY, 127)


def notes_to_midi(notes: transcription.Notes, program: int = PIANO):
  """A pretty_midi.PrettyMIDI with one part playing `notes` (pitches rounded to semitones)."""
  import pretty_midi

  midi = pretty_midi.PrettyMIDI()
  name = pretty_midi.program_to_instrument_name(program)
  part = pretty_midi.Instrument(program=program, name=name)
  peak = notes.peak_db if notes.peak_db is not None else np.full(len(notes), _LOUD_DB)
  for (start, end), pitch, velocity in zip(
    notes.intervals, np.round(transcription.hz_to_midi(notes.pitches_hz)), velocities(peak)
  ):
    end = max(float(end), float(start) + 0.05)  # a note needs a length to be heard and edited
    part.notes.append(pretty_midi.Note(int(velocity), int(pitch), float(start), end))
  midi.instruments.append(part)
  return midi


def midi_file_bytes(midi) -> bytes:
  """A pretty_midi.PrettyMIDI as the bytes of a Standard MIDI File."""
  buffer = io.BytesIO()
  midi.write(buffer)
  return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class MidiClip:
  """One mel image through the MIDI route."""

  midi: bytes  # the .mid file
  audio: np.ndarray  # float32 (clip_samples,) at the mel's sample rate
  num_notes: int


def mel_to_midi_clip(
  image: np.ndarray,
  params: spectrogram.MelParams,
  font: soundfont.Soundfont,
  program: int = PIANO,
) -> MidiClip:
  """A mel image (n_mels, n_frames) in [-1, 1] -> its notes as MIDI, rendered with `font`.

  A mel with no notes gives an empty (but valid) MIDI file and silence: FluidSynth is not run.
  """
  notes = transcription.transcribe_mel_image(image, params, route_config(params))
  midi = midi_file_bytes(notes_to_midi(notes, program))
  if not len(notes):
    return MidiClip(midi, np.zeros(params.clip_samples, np.float32), 0)
  audio = soundfont.render_midi_bytes(midi, params.sample_rate, params.clip_samples, font)
  return MidiClip(midi, audio, len(notes))
