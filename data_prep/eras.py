"""Era tables: which era a WikiArt style, a composer, or a folder name belongs to.

The tables are data (`eras.json`, versioned next to this file) so they can be reviewed, tested and
overridden without touching code. Matching is case-, accent- and separator-insensitive
('Frédéric Chopin' == 'frederic_chopin'). For arrangements written 'Composer / Arranger' (as in
MAESTRO) the first name, the composer of the music, decides the era.

An input whose label maps to no era is never silently dropped: `partition_by_era` returns it in
`unmapped`, which the builder lists in its report.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import pathlib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

ERAS_JSON = pathlib.Path(__file__).with_name('eras.json')
_TABLE_KEYS = (
  'style_to_era',
  'composer_to_era',
  'composer_aliases',
  'collection_to_era',
  'era_sets',
)
_KNOWN_KEYS = {'version', 'about', 'eras', 'artgan_styles', *_TABLE_KEYS}

T = TypeVar('T')


def normalize(name: str) -> str:
  """'Frédéric_Chopin ' -> 'frederic chopin': the form every table key is compared in."""
  plain = unicodedata.normalize('NFKD', str(name))
  plain = ''.join(c for c in plain if not unicodedata.combining(c))
  return ' '.join(plain.replace('_', ' ').lower().split())


@dataclasses.dataclass(frozen=True)
class EraTables:
  """Loaded era tables; every lookup returns a canonical era name or None."""

  eras: tuple[str, ...]
  era_sets: Mapping[str, tuple[str, ...]]
  artgan_styles: tuple[str, ...]  # WikiArt ArtGAN/huggan style names in class-index order
  style_to_era: Mapping[str, str | None]  # keys normalized
  composer_to_era: Mapping[str, str | None]
  composer_aliases: Mapping[str, str]
  collection_to_era: Mapping[str, str | None]

  def style_era(self, style: str) -> str | None:
    return self.style_to_era.get(normalize(style))

  def composer_era(self, composer: str) -> str | None:
    """Era of a composer given as full name, surname, alias, or 'Composer / Arranger'."""
    name = normalize(str(composer).split('/')[0])
    name = normalize(self.composer_aliases.get(name) or name)
    if name in self.composer_to_era:
      return self.composer_to_era[name]
    return self.composer_to_era.get(self._unique_surnames.get(name, ''))

  def label_era(self, label: str) -> str | None:
    """Era of a folder name: an era itself, else a WikiArt style, composer or collection."""
    key = normalize(label)
    if key in self.eras:
      return key
    for lookup in (
      self.style_era,
      self.composer_era,
      lambda k: self.collection_to_era.get(normalize(k)),
    ):
      era = lookup(label)
      if era is not None:
        return era
    return None

  def resolve_era_set(self, spec: str | Sequence[str]) -> tuple[str, ...]:
    """A named set ('thesis') or a comma-separated / sequence of era names -> era names."""
    if isinstance(spec, str) and normalize(spec) in self.era_sets:
      return self.era_sets[normalize(spec)]
    names = [normalize(s) for s in (spec.split(',') if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in self.eras]
    if unknown or not names:
      raise ValueError(
        f'unknown era set or era names {unknown or spec!r}: use one of the sets '
        f'{sorted(self.era_sets)} or eras {list(self.eras)}'
      )
    if len(set(names)) != len(names):
      raise ValueError(f'era set {spec!r} names an era twice')
    return tuple(names)

  @functools.cached_property
  def _unique_surnames(self) -> dict[str, str]:
    """'chopin' -> 'frederic chopin' for surnames that name exactly one composer."""
    by_surname = collections.defaultdict(list)
    for full in self.composer_to_era:
      by_surname[full.split()[-1]].append(full)
    return {s: names[0] for s, names in by_surname.items() if len(names) == 1}


def load_tables(overrides: str | os.PathLike | Mapping[str, Any] | None = None) -> EraTables:
  """The shipped tables, with a user's override file (or dict) merged on top."""
  data = json.loads(ERAS_JSON.read_text())
  if overrides is not None:
    data = merge_tables(data, _read_overrides(overrides))
  return _tables_from_dict(data)


def merge_tables(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
  """Override entries replace base entries key by key; `eras` and `artgan_styles` replace whole."""
  unknown = set(overrides) - _KNOWN_KEYS
  if unknown:
    raise ValueError(
      f'era overrides: unknown keys {sorted(unknown)}; allowed: {sorted(_KNOWN_KEYS)}'
    )
  merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
  for key, value in overrides.items():
    if key in _TABLE_KEYS:
      if not isinstance(value, dict):
        raise ValueError(f'era overrides: {key!r} must be an object, got {type(value).__name__}')
      merged.setdefault(key, {}).update(value)
    else:
      merged[key] = value
  return merged


def partition_by_era(
  items: Iterable[T],
  era_of: Callable[[T], str | None],
  label_of: Callable[[T], str],
  era_set: Sequence[str],
):
  """Split items into (kept [(item, era)], unmapped {label: count}, outside_set {era: count})."""
  kept: list[tuple[T, str]] = []
  unmapped: collections.Counter[str] = collections.Counter()
  outside: collections.Counter[str] = collections.Counter()
  for item in items:
    era = era_of(item)
    if era is None:
      unmapped[label_of(item)] += 1
    elif era not in era_set:
      outside[era] += 1
    else:
      kept.append((item, era))
  return kept, dict(sorted(unmapped.items())), dict(sorted(outside.items()))


def _read_overrides(overrides: str | os.PathLike | Mapping[str, Any]) -> Mapping[str, Any]:
  if isinstance(overrides, Mapping):
    return overrides
  path = pathlib.Path(overrides)
  try:
    data = json.loads(path.read_text())
  except FileNotFoundError:
    raise FileNotFoundError(f'era overrides file {path} not found') from None
  except json.JSONDecodeError as e:
    raise ValueError(f'era overrides file {path} is not valid JSON: {e}') from None
  if not isinstance(data, dict):
    raise ValueError(f'era overrides file {path} must hold a JSON object')
  return data


def _tables_from_dict(data: Mapping[str, Any]) -> EraTables:
  eras = tuple(normalize(e) for e in data['eras'])

  def table(key: str) -> dict[str, str | None]:
    out = {}
    for name, era in data.get(key, {}).items():
      if era is not None and normalize(era) not in eras:
        raise ValueError(
          f'era tables: {key}[{name!r}] = {era!r} is not one of the eras {list(eras)}'
        )
      out[normalize(name)] = None if era is None else normalize(era)
    return out

  era_sets = {}
  for name, members in data.get('era_sets', {}).items():
    bad = [m for m in members if normalize(m) not in eras]
    if bad:
      raise ValueError(f'era tables: era set {name!r} names unknown eras {bad}')
    era_sets[normalize(name)] = tuple(normalize(m) for m in members)
  aliases = {normalize(k): v for k, v in data.get('composer_aliases', {}).items()}
  return EraTables(
    eras=eras,
    era_sets=era_sets,
    artgan_styles=tuple(data['artgan_styles']),
    style_to_era=table('style_to_era'),
    composer_to_era=table('composer_to_era'),
    composer_aliases=aliases,
    collection_to_era=table('collection_to_era'),
  )
