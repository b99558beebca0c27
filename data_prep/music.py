"""Music sources: find every recording and its raw label (era or composer), decoding nothing.

Layouts (docs/data_prep.md), detected from the directory or named with --music_format:

  maestro   <root>/maestro-v3.0.0.csv (any maestro-v*.csv) with canonical_composer,
            audio_filename, midi_filename; files under <root>/<year>/. When the audio file is
            absent (the MIDI-only download) the MIDI file is rendered instead.
  musicnet  <root>/musicnet_metadata.csv with id, composer; audio <root>/{train,test}_data/<id>.wav.
  folders   <root>/<label>/**/*.{wav,flac,ogg,mp3,mid,midi}; <label> is an era or a composer.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
import pathlib
from collections.abc import Sequence

from data_prep import entries

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.mp3')
MIDI_EXTENSIONS = ('.mid', '.midi')
FORMATS = ('auto', 'folders', 'maestro', 'musicnet')
MUSICNET_CSV = 'musicnet_metadata.csv'


@dataclasses.dataclass(frozen=True)
class Recording:
  source_id: str  # stable and unique: the path relative to the music root
  label: str  # raw label: an era (folders) or a composer
  path: str

  @property
  def is_midi(self) -> bool:
    return pathlib.Path(self.path).suffix.lower() in MIDI_EXTENSIONS


@dataclasses.dataclass
class MusicScan:
  format: str
  recordings: list[Recording]
  ignored: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # reason -> entries


def detect_format(root: str | os.PathLike) -> str:
  root = _existing_dir(root)
  if _maestro_csv(root):
    return 'maestro'
  if (root / MUSICNET_CSV).is_file():
    return 'musicnet'
  return 'folders'


def scan_music(root: str | os.PathLike, fmt: str, *, labelled: bool = True) -> MusicScan:
  """List the recordings under `root` in layout `fmt` ('auto' detects it).

  `labelled=False` (unpaired builds): in the folders layout, files directly in `root` are kept
  too, with the label ''.
  """
  if fmt not in FORMATS:
    raise ValueError(f'music format must be one of {FORMATS}, got {fmt!r}')
  root = _existing_dir(root)
  fmt = detect_format(root) if fmt == 'auto' else fmt
  if fmt == 'folders':
    return _scan_folders(root, labelled)
  return {'maestro': _scan_maestro, 'musicnet': _scan_musicnet}[fmt](root)


def _scan_folders(root: pathlib.Path, labelled: bool = True) -> MusicScan:
  found = entries.walk(root, AUDIO_EXTENSIONS + MIDI_EXTENSIONS)
  recordings, ignored = [], collections.defaultdict(list, found.problems)
  for path in found.files:
    rel = path.relative_to(root)
    if len(rel.parts) < 2 and labelled:
      ignored['not inside a label folder'].append(str(rel))
    elif path.suffix.lower() not in AUDIO_EXTENSIONS + MIDI_EXTENSIONS:
      ignored['not an audio or MIDI extension'].append(str(rel))
    else:
      label = rel.parts[0] if len(rel.parts) > 1 else ''
      recordings.append(Recording(rel.as_posix(), label, str(path)))
  return MusicScan('folders', recordings, dict(ignored))


def _scan_maestro(root: pathlib.Path) -> MusicScan:
  csv_path = _maestro_csv(root)
  if csv_path is None:
    raise FileNotFoundError(f'no maestro-v*.csv in {root}: is it the MAESTRO root?')
  recordings, ignored = [], collections.defaultdict(list)
  for row in _read_csv(csv_path, ('canonical_composer', 'audio_filename', 'midi_filename')):
    audio_rel, midi_rel = row['audio_filename'], row['midi_filename']
    rel, reason = _first_usable(root, [r for r in (audio_rel, midi_rel) if r])
    if rel is None:
      ignored[reason].append(audio_rel or midi_rel)
    else:
      recordings.append(Recording(rel, row['canonical_composer'], str(root / rel)))
  return MusicScan('maestro', recordings, dict(ignored))


def _scan_musicnet(root: pathlib.Path) -> MusicScan:
  recordings, ignored = [], collections.defaultdict(list)
  for row in _read_csv(root / MUSICNET_CSV, ('id', 'composer')):
    candidates = [f'{split}_data/{row["id"]}.wav' for split in ('train', 'test')]
    rel, reason = _first_usable(root, candidates)
    if rel is None:
      ignored[reason].append(candidates[0])
    else:
      recordings.append(Recording(rel, row['composer'], str(root / rel)))
  return MusicScan('musicnet', recordings, dict(ignored))


def _first_usable(root: pathlib.Path, candidates: Sequence[str]) -> tuple[str | None, str]:
  """The first candidate that is a readable file, else None and why none is ('listed in csv
  but missing' unless one exists but is not a readable file: a broken link, a folder, ...)."""
  problems = []
  for rel in candidates:
    problem = entries.problem(root / rel)
    if problem is None:
      return rel, ''
    problems.append(problem)
  named = [p for p in problems if p != entries.MISSING]
  return None, f'listed in csv: {named[0]}' if named else 'listed in csv but missing'


def _read_csv(path: pathlib.Path, required: tuple[str, ...]) -> list[dict[str, str]]:
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(f'{path} lacks the columns {missing} (has {reader.fieldnames})')
    return sorted(reader, key=lambda row: tuple(row[c] for c in required[1:]))


def _maestro_csv(root: pathlib.Path) -> pathlib.Path | None:
  found = sorted(root.glob('maestro-v*.csv'))
  return found[-1] if found else None


def _existing_dir(root) -> pathlib.Path:
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f'music directory {root} does not exist')
  return root
