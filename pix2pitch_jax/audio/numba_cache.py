"""librosa, imported so that one process at a time fills numba's on-disk cache.

librosa compiles its numba kernels with `cache=True`, most of them eagerly, when their module is
imported. Two processes that compile the same `guvectorize` kernel into an empty cache at once can
leave a pair of cache files written by different processes; every later process that loads that
pair dies with SIGSEGV (numba issue #10128, open). Jobs here run several processes on one machine
(a multi-process evaluation on one host, data_prep workers, tests in parallel), so the project
imports librosa only through `import_librosa`: the modules it calls are imported under a file lock,
so one process compiles and writes the cache and the others then load it whole.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import tempfile
import types

import filelock

# The librosa modules the project calls, and with them every module whose kernels they use.
_LIBROSA_MODULES = ('librosa.core', 'librosa.feature', 'librosa.filters', 'librosa.onset')
_LOCK_TIMEOUT_S = 600  # Compiling every kernel takes ~10 s; a stuck holder should not hang a job.


def lock_path() -> str:
  """The lock of this environment's numba cache: NUMBA_CACHE_DIR when set, else the caches beside
  librosa's source (numba's default), so jobs in different environments never wait for each other.
  """
  spec = importlib.util.find_spec('librosa')
  source = os.path.dirname(spec.origin) if spec and spec.origin else 'librosa'
  cache = os.environ.get('NUMBA_CACHE_DIR') or source
  digest = hashlib.sha256(os.path.abspath(cache).encode()).hexdigest()[:16]
  return os.path.join(tempfile.gettempdir(), f'pix2pitch-numba-{digest}.lock')


@functools.cache
def import_librosa() -> types.ModuleType:
  """The `librosa` module, its kernels compiled or loaded while holding the cache lock."""
  with filelock.FileLock(lock_path(), timeout=_LOCK_TIMEOUT_S):
    for name in _LIBROSA_MODULES:
      importlib.import_module(name)
  return importlib.import_module('librosa')
