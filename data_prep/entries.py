"""Directory entries that are not readable files, named with the reason, for the build report.

`pathlib.Path.rglob` + `is_file()` drops them without a word: a broken or looping symlink, a
folder named like an image (`x.jpg/`), a fifo; and since glob does not follow folder symlinks,
every linked folder with all it holds. The scanners walk with `walk` instead, which follows
folder symlinks (each real folder once) and returns every entry it cannot use with its reason.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import pathlib
import stat
from collections.abc import Collection

MISSING = 'missing'


def problem(path: str | os.PathLike) -> str | None:
  """None when `path` is a regular file this process may read, else the reason it is not."""
  try:
    st = os.stat(path)
  except FileNotFoundError:
    return 'broken symlink' if os.path.islink(path) else MISSING
  except OSError as e:
    return 'symlink loop' if e.errno == errno.ELOOP else f'cannot stat: {e.strerror}'
  if stat.S_ISDIR(st.st_mode):
    return 'a folder, not a file'
  if not stat.S_ISREG(st.st_mode):
    return 'not a regular file'
  if not os.access(path, os.R_OK):
    return 'unreadable: permission denied'
  return None


@dataclasses.dataclass
class Walk:
  files: list[pathlib.Path]  # readable regular files, sorted; names starting with '.' left out
  problems: dict[str, list[str]]  # reason -> paths relative to the root


def walk(root: pathlib.Path, file_suffixes: Collection[str]) -> Walk:
  """Every file under `root`, and every entry that is not a usable file, by reason.

  A folder whose name ends in one of `file_suffixes` is listed (its contents are still walked):
  a user who unpacked `x.jpg/` expects a painting there.
  """
  files: list[pathlib.Path] = []
  problems: dict[str, list[str]] = collections.defaultdict(list)
  seen: set[tuple[int, int]] = set()
  stack: list[tuple[pathlib.Path, frozenset[tuple[int, int]]]] = [(root, frozenset())]
  while stack:
    folder, ancestors = stack.pop()
    rel = folder.relative_to(root).as_posix()
    try:
      st = os.stat(folder)
      key = (st.st_dev, st.st_ino)
      if key in ancestors:
        problems['symlink loop'].append(rel)
        continue
      if key in seen:
        problems['folder already scanned under another name (symlink)'].append(rel)
        continue
      seen.add(key)
      with os.scandir(folder) as it:
        children = list(it)
    except OSError as e:
      problems[f'folder unreadable: {e.strerror}'].append(rel)
      continue
    for entry in children:
      path = pathlib.Path(entry.path)
      if _is_dir(entry):
        if path.suffix.lower() in file_suffixes:
          problems['a folder named like a file'].append(path.relative_to(root).as_posix())
        stack.append((path, ancestors | {key}))
      elif not entry.name.startswith('.'):
        reason = problem(path)
        if reason is None:
          files.append(path)
        else:
          problems[reason].append(path.relative_to(root).as_posix())
  return Walk(sorted(files), {reason: sorted(paths) for reason, paths in problems.items()})


def _is_dir(entry: os.DirEntry) -> bool:
  """Follows symlinks; False for broken and looping ones (`problem` then names the reason)."""
  try:
    return entry.is_dir()
  except OSError:  # ELOOP, EACCES: only FileNotFoundError is swallowed by DirEntry
    return False
