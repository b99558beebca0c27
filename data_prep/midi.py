"""MIDI -> audio with the FluidSynth command-line synthesiser, offline.

The General MIDI soundfont is the one pretty_midi ships (TimGM6mb.sf2), so nothing is downloaded.
The CLI is used (not pyfluidsynth) because it is a Debian package (`fluidsynth`) and it renders
faster than real time with no Python audio loop.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

FLUIDSYNTH = 'fluidsynth'
_GAIN = 0.6  # FluidSynth's default 0.2 is very quiet; loudness is peak-normalised later anyway.


class MidiRenderError(RuntimeError):
  """A MIDI file could not be read or rendered."""


def soundfont_path() -> str:
  import pretty_midi

  path = pathlib.Path(pretty_midi.__file__).with_name('TimGM6mb.sf2')
  if not path.is_file():
    raise MidiRenderError(f'General MIDI soundfont not found at {path}')
  return str(path)


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
  if shutil.which(FLUIDSYNTH) is None:
    raise MidiRenderError('the fluidsynth command is not installed (apt-get install fluidsynth)')
  wav_path = pathlib.Path(wav_path)
  wav_path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix='p2p-midi-') as tmp:
    prepared = _prepare(midi_path, pathlib.Path(tmp) / 'in.mid', max_seconds, program)
    rendered = pathlib.Path(tmp) / 'out.wav'
    cmd = [
      FLUIDSYNTH,
      '-ni',
      '-q',
      '-g',
      str(_GAIN),
      '-r',
      str(int(sample_rate)),
      '-F',
      str(rendered),
      soundfont_path(),
      str(prepared),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not rendered.is_file() or rendered.stat().st_size <= 44:
      raise MidiRenderError(
        f'fluidsynth failed on {midi_path}: '
        f'{(result.stderr or result.stdout).strip()[-300:] or "no audio"}'
      )
    os.replace(rendered, wav_path)
  return wav_path


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
