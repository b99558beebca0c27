"""Painting sources: find every painting and its raw label, without decoding any pixels.

Three layouts (docs/data_prep.md), detected from the directory or named with --paintings_format:

  wikiart  ArtGAN release: <root>/<Style>/<artist>_<title>.jpg, optionally with
           style_train.csv / style_val.csv (rows 'Style/file.jpg,<class index>', no header) in
           <root>, its parent, or <root>/../wikiart_csv. With CSVs, their rows are the painting
           list and the class index is the label.
  parquet  huggan/wikiart: <root>/data/train-*.parquet (any *.parquet under <root>) with an
           `image` struct (bytes, path) and `style` (int, ArtGAN class order, or a style name).
  folders  <root>/<label>/**/*.{jpg,jpeg,png,webp,...}; <label> is an era, a style or a name the
           era tables know.

A reader returns `PaintingItem`s whose `ref` loads the pixels later, in a worker process.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from data_prep import entries
from pix2pitch_jax.data import images

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif')
FORMATS = ('auto', 'wikiart', 'parquet', 'folders')
_STYLE_CSVS = ('style_train.csv', 'style_val.csv')


@dataclasses.dataclass(frozen=True)
class FilePainting:
  """A painting stored as an image file."""

  path: str

  def load(self, size: int, mode: str) -> np.ndarray:
    return images.load_painting(self.path, size, mode)


@dataclasses.dataclass(frozen=True)
class ParquetPainting:
  """Row `row` of a parquet file whose `image` column is a struct with the encoded bytes."""

  path: str
  row: int

  def load(self, size: int, mode: str) -> np.ndarray:
    group, index = _locate_row(self.path, self.row)
    return images.load_painting(_row_group_images(self.path, group)[index], size, mode)


@dataclasses.dataclass(frozen=True)
class PaintingItem:
  painting_id: str  # stable and unique: the source-relative path (or file#row)
  label: str  # raw label: a WikiArt style or a folder name
  ref: FilePainting | ParquetPainting


@dataclasses.dataclass
class PaintingScan:
  format: str
  items: list[PaintingItem]
  ignored: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # reason -> paths


def detect_format(root: str | os.PathLike, style_names: Sequence[str]) -> str:
  """'parquet' if parquet files exist, 'wikiart' if the layout is ArtGAN's, else 'folders'."""
  root = _existing_dir(root, 'paintings')
  if any(root.glob('data/*.parquet')) or any(root.glob('*.parquet')):
    return 'parquet'
  if _find_style_csvs(root):
    return 'wikiart'
  subdirs = {d.name for d in root.iterdir() if d.is_dir()}
  if subdirs and subdirs <= set(style_names):
    return 'wikiart'
  return 'folders'


def scan_paintings(
  root: str | os.PathLike, fmt: str, style_names: Sequence[str], *, labelled: bool = True
) -> PaintingScan:
  """List the paintings under `root` in layout `fmt` ('auto' detects it).

  `labelled=False` (unpaired builds): in the folders layout, images directly in `root` are kept
  too, with the label ''.
  """
  if fmt not in FORMATS:
    raise ValueError(f'paintings format must be one of {FORMATS}, got {fmt!r}')
  if fmt == 'auto':
    fmt = detect_format(root, style_names)
  root = _existing_dir(root, 'paintings')
  if fmt == 'parquet':
    return _scan_parquet(root, style_names)
  if fmt == 'wikiart' and _find_style_csvs(root):
    return _scan_wikiart_csv(root, style_names)
  scan = _scan_folders(root, labelled)
  scan.format = fmt
  return scan


def _scan_folders(root: pathlib.Path, labelled: bool = True) -> PaintingScan:
  found = entries.walk(root, IMAGE_EXTENSIONS)
  items, ignored = [], collections.defaultdict(list, found.problems)
  for path in found.files:
    rel = path.relative_to(root)
    if path.name in _STYLE_CSVS:
      continue
    if len(rel.parts) < 2 and labelled:
      ignored['not inside a label folder'].append(str(rel))
    elif path.suffix.lower() not in IMAGE_EXTENSIONS:
      ignored['not an image extension'].append(str(rel))
    else:
      label = rel.parts[0] if len(rel.parts) > 1 else ''
      items.append(PaintingItem(rel.as_posix(), label, FilePainting(str(path))))
  return PaintingScan('folders', items, dict(ignored))


def _scan_wikiart_csv(root: pathlib.Path, style_names: Sequence[str]) -> PaintingScan:
  items, ignored, seen = [], collections.defaultdict(list), set()
  for csv_path in _find_style_csvs(root):
    with open(csv_path, newline='') as f:
      for line_no, row in enumerate(csv.reader(f), 1):
        if not row:
          continue
        where = f'{csv_path.name}:{line_no}'
        rel, label = row[0].strip(), _style_label(row[1] if len(row) > 1 else '', style_names)
        problem = entries.problem(root / rel)
        if label is None:
          ignored['bad csv row'].append(f'{where}: {",".join(row)}')
        elif problem is not None:
          ignored[_csv_reason(problem)].append(rel)
        elif rel not in seen:
          seen.add(rel)
          items.append(PaintingItem(rel, label, FilePainting(str(root / rel))))
  items.sort(key=lambda item: item.painting_id)
  return PaintingScan('wikiart', items, dict(ignored))


def _scan_parquet(root: pathlib.Path, style_names: Sequence[str]) -> PaintingScan:
  import pyarrow.parquet as pq

  files = sorted(set(root.glob('data/*.parquet')) | set(root.glob('*.parquet')))
  items, ignored = [], collections.defaultdict(list)
  for path in files:
    rel = path.relative_to(root).as_posix()
    try:
      styles = pq.read_table(path, columns=['style']).column('style').to_pylist()
    except Exception as e:  # pyarrow raises several types for bad files; report, don't crash.
      ignored['unreadable parquet'].append(f'{rel}: {e}')
      continue
    for row, style in enumerate(styles):
      label = _style_label(style, style_names)
      if label is None:
        ignored['bad style value'].append(f'{rel}#{row}: {style!r}')
      else:
        items.append(PaintingItem(f'{rel}#{row:07d}', label, ParquetPainting(str(path), row)))
  return PaintingScan('parquet', items, dict(ignored))


def _csv_reason(problem: str) -> str:
  return 'listed in csv but missing' if problem == entries.MISSING else f'listed in csv: {problem}'


def _style_label(value, style_names: Sequence[str]) -> str | None:
  """An ArtGAN class index (int or digit string) or a style name -> the style name."""
  if isinstance(value, str) and not value.strip().lstrip('-').isdigit():
    return value.strip() or None
  try:
    index = int(value)
  except (TypeError, ValueError):
    return None
  return style_names[index] if 0 <= index < len(style_names) else None


def _find_style_csvs(root: pathlib.Path) -> list[pathlib.Path]:
  for folder in (root, root.parent, root.parent / 'wikiart_csv'):
    found = [folder / name for name in _STYLE_CSVS if (folder / name).is_file()]
    if found:
      return found
  return []


def _existing_dir(root, what: str) -> pathlib.Path:
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f'{what} directory {root} does not exist')
  return root


@functools.lru_cache(maxsize=16)
def _row_group_starts(path: str) -> np.ndarray:
  import pyarrow.parquet as pq

  meta = pq.ParquetFile(path).metadata
  return np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])


def _locate_row(path: str, row: int) -> tuple[int, int]:
  starts = _row_group_starts(path)
  group = int(np.searchsorted(starts, row, side='right') - 1)
  return group, row - int(starts[group])


# Paintings are planned in file order, so consecutive loads hit the same cached row group.
@functools.lru_cache(maxsize=2)
def _row_group_images(path: str, group: int) -> list[bytes]:
  import pyarrow.parquet as pq

  column = pq.ParquetFile(path).read_row_group(group, columns=['image']).column('image')
  return [cell['bytes'] if isinstance(cell, dict) else cell for cell in column.to_pylist()]
