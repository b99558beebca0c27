"""data_prep's MIDI rendering: ensembles by register, and the eras demo's orchestras by era."""

import pathlib
import shutil

import pretty_midi
import pytest
import soundfile

from data_prep import demo_eras, midi


def _three_parts(path: pathlib.Path) -> pathlib.Path:
  """Bass (around C2), melody (around C5) and an inner part (around C4), in that order."""
  score = pretty_midi.PrettyMIDI()
  for name, base in (('bass', 36), ('melody', 72), ('inner', 60)):
    part = pretty_midi.Instrument(program=0, name=name)
    part.notes = [pretty_midi.Note(80, base + k, 0.5 * k, 0.5 * k + 0.4) for k in range(6)]
    score.instruments.append(part)
  score.write(str(path))
  return path


def test_an_ensemble_plays_the_parts_by_register(tmp_path):
  source = _three_parts(tmp_path / 'in.mid')
  prepared = midi._prepare(source, tmp_path / 'out.mid', 2.0, midi.Ensemble('trio', (40, 41)))
  programs = {p.name: p.program for p in pretty_midi.PrettyMIDI(str(prepared)).instruments}
  assert programs == {'melody': 40, 'inner': 41, 'bass': 41}  # beyond the list: the last one
  assert max(n.end for p in pretty_midi.PrettyMIDI(str(prepared)).instruments for n in p.notes) <= 2
  with pytest.raises(ValueError, match='0..127'):
    midi.Ensemble('bad', (128,))


@pytest.mark.skipif(shutil.which('fluidsynth') is None, reason='needs fluidsynth')
def test_render_with_an_ensemble(tmp_path):
  wav = midi.render_midi(
    _three_parts(tmp_path / 'in.mid'),
    tmp_path / 'out.wav',
    16_000,
    max_seconds=1.5,
    ensemble=midi.Ensemble('organ', (19,)),
  )
  info = soundfile.info(wav)
  assert info.samplerate == 16_000 and info.duration > 1.5


def test_eras_are_more_than_one_instrument_each():
  ensembles = demo_eras.ERA_ENSEMBLES
  programs = {era: {p for e in ensembles[era] for p in e.programs} for era in demo_eras.ERAS}
  for era in demo_eras.ERAS:
    assert len(ensembles[era]) >= 3 and len(programs[era]) >= 5, era
    others = set().union(*(programs[e] for e in demo_eras.ERAS if e != era))
    assert programs[era] & others, f'{era} shares no instrument with another era'
  # The works of each era are dealt its ensembles in turn: at least three are heard per era.
  works = demo_eras.corpus_works()
  dealt = demo_eras.ensembles_of_works(works)
  for era in demo_eras.ERAS:
    heard = {dealt[path].name for work_era, path in works if work_era == era}
    assert len(heard) >= 3, (era, heard)
