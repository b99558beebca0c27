"""MIDI -> audio for the dataset builder: FluidSynth and the best General MIDI soundfont installed.

Soundfont discovery and the FluidSynth call are shared with generation's MIDI route
(`pix2pitch_jax.audio.soundfont`, free of JAX): Debian's `fluid-soundfont-gm` when installed, else
MuseScore's small General MIDI font, else the small one inside pretty_midi; nothing is downloaded.
This module adds what a build needs on top: validating a file, cutting long pieces, choosing the
instruments.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

from pix2pitch_jax.audio import soundfont as soundfont_lib

MidiRenderError = soundfont_lib.MidiRenderError


def soundfont_path() -> str:
  """The soundfont a build renders with (`soundfont_lib.find_soundfont`)."""
  return soundfont_lib.find_soundfont().path


def soundfont_name() -> str:
  """Its file name: part of a build's fingerprint, so another soundfont means another build."""
  return soundfont_lib.find_soundfont().name


def render_midi(
  midi_path: str | os.PathLike,
  wav_path: str | os.PathLike,
  sample_rate: int,
  *,
  max_seconds: float | None = None,
  program: int | None = None,
) -> pathlib.Path:
  """Render `midi_path` to a 16-bit wav at `sample_rate`, written atomically to `wav_path`.

  Args:
    max_seconds: drop notes starting after this time (keeps long pieces cheap to render).
    program: if given, play every non-drum part with this General MIDI program.
  """
  with tempfile.TemporaryDirectory(prefix='p2p-midi-') as tmp:
    prepared = _prepare(midi_path, pathlib.Path(tmp) / 'in.mid', max_seconds, program)
    return soundfont_lib.render_midi_file(prepared, wav_path, sample_rate)


def _prepare(
  midi_path, out_path: pathlib.Path, max_seconds: float | None, program: int | None
) -> pathlib.Path:
  """Validate with pretty_midi; truncate / re-program into `out_path` when asked."""
  import pretty_midi

  try:
    midi = pretty_midi.PrettyMIDI(str(midi_path))
  except Exception as e:  # pretty_midi/mido raise many types on malformed files.
    raise MidiRenderError(f'cannot read MIDI {midi_path}: {type(e).__name__}: {e}') from e
  if not any(inst.notes for inst in midi.instruments):
    raise MidiRenderError(f'MIDI {midi_path} has no notes')
  if max_seconds is None and program is None:
    return pathlib.Path(midi_path)
  for inst in midi.instruments:
    if max_seconds is not None:
      inst.notes = [n for n in inst.notes if n.start < max_seconds]
      for note in inst.notes:
        note.end = min(note.end, max_seconds)
      # Later controller events would make FluidSynth render silence up to the original end.
      inst.control_changes = [c for c in inst.control_changes if c.time < max_seconds]
      inst.pitch_bends = [b for b in inst.pitch_bends if b.time < max_seconds]
    if program is not None and not inst.is_drum:
      inst.program = program
  midi.write(str(out_path))
  return out_path
