"""MIDI -> audio for the dataset builder: FluidSynth and the best General MIDI soundfont installed.

Soundfont discovery and the FluidSynth call are shared with generation's MIDI route
(`pix2pitch_jax.audio.soundfont`, free of JAX): Debian's `fluid-soundfont-gm` when installed, else
MuseScore's small General MIDI font, else the small one inside pretty_midi; nothing is downloaded.
This module adds what a build needs on top: validating a file, cutting long pieces, choosing the
instruments (an `Ensemble`: one General MIDI programme per part, by register).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile

from pix2pitch_jax.audio import soundfont as soundfont_lib

MidiRenderError = soundfont_lib.MidiRenderError


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """The instruments a piece is played with: General MIDI programmes (0-127, pretty_midi's
  numbering) for its parts from the highest to the lowest, by each part's mean pitch, so the
  melody and the bass get the instruments meant for them. Parts beyond the list take its last
  programme; a one-programme ensemble plays every part with that instrument."""

  name: str
  programs: tuple[int, ...]

  def __post_init__(self):
    if not self.programs or not all(0 <= p <= 127 for p in self.programs):
      raise ValueError(f'ensemble {self.name!r}: programmes must be 0..127, got {self.programs}')

  def program_for(self, rank: int) -> int:
    """The programme of the part that is `rank`-th highest (0: the highest)."""
    return self.programs[min(rank, len(self.programs) - 1)]

  @property
  def key(self) -> str:
    """'name:p1-p2-...': names it in cache keys and fingerprints."""
    return f'{self.name}:{"-".join(map(str, self.programs))}'


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
  ensemble: Ensemble | None = None,
) -> pathlib.Path:
  """Render `midi_path` to a 16-bit wav at `sample_rate`, written atomically to `wav_path`.

  Args:
    max_seconds: drop notes starting after this time (keeps long pieces cheap to render).
    ensemble: if given, play the non-drum parts with its instruments (`Ensemble`), else with the
      programmes the file names.
  """
  with tempfile.TemporaryDirectory(prefix='p2p-midi-') as tmp:
    prepared = _prepare(midi_path, pathlib.Path(tmp) / 'in.mid', max_seconds, ensemble)
    return soundfont_lib.render_midi_file(prepared, wav_path, sample_rate)


def _prepare(
  midi_path, out_path: pathlib.Path, max_seconds: float | None, ensemble: Ensemble | None
) -> pathlib.Path:
  """Validate with pretty_midi; truncate / re-orchestrate into `out_path` when asked."""
  import pretty_midi

  try:
    midi = pretty_midi.PrettyMIDI(str(midi_path))
  except Exception as e:  # pretty_midi/mido raise many types on malformed files.
    raise MidiRenderError(f'cannot read MIDI {midi_path}: {type(e).__name__}: {e}') from e
  if not any(inst.notes for inst in midi.instruments):
    raise MidiRenderError(f'MIDI {midi_path} has no notes')
  if max_seconds is None and ensemble is None:
    return pathlib.Path(midi_path)
  for inst in midi.instruments:
    if max_seconds is not None:
      inst.notes = [n for n in inst.notes if n.start < max_seconds]
      for note in inst.notes:
        note.end = min(note.end, max_seconds)
      # Later controller events would make FluidSynth render silence up to the original end.
      inst.control_changes = [c for c in inst.control_changes if c.time < max_seconds]
      inst.pitch_bends = [b for b in inst.pitch_bends if b.time < max_seconds]
  if ensemble is not None:
    orchestrate(midi, ensemble)
  midi.write(str(out_path))
  return out_path


def orchestrate(midi, ensemble: Ensemble) -> None:
  """Give the non-drum parts of a pretty_midi.PrettyMIDI the ensemble's programmes by register:
  the part with the highest mean pitch gets the first, the next the second, and so on."""
  parts = [inst for inst in midi.instruments if not inst.is_drum and inst.notes]
  by_register = sorted(parts, key=lambda inst: -sum(n.pitch for n in inst.notes) / len(inst.notes))
  for rank, inst in enumerate(by_register):
    inst.program = ensemble.program_for(rank)
