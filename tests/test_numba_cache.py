"""librosa's kernels are compiled into numba's cache by one process at a time."""

import os
import subprocess
import sys

from pix2pitch_jax.audio import numba_cache

# Imports librosa through the project in a thread while other processes try the cache lock: once
# during the import (which compiles for seconds, the cache being empty) and once after it.
_IMPORT_AND_PROBE = """
import subprocess, sys, threading
from pix2pitch_jax.audio import numba_cache

TRY_LOCK = 'import filelock, sys; filelock.FileLock(sys.argv[1], timeout=0).acquire()'
def lock_is_free():
  return subprocess.run([sys.executable, '-c', TRY_LOCK, numba_cache.lock_path()],
                        capture_output=True).returncode == 0

importing = threading.Thread(target=numba_cache.import_librosa)
importing.start()
during = lock_is_free()
importing.join()
print(during, lock_is_free(), 'librosa.feature.spectral' in sys.modules)
"""


def test_import_holds_the_lock_while_compiling_then_releases_it(tmp_path):
  env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / 'numba'))
  result = subprocess.run(
    [sys.executable, '-c', _IMPORT_AND_PROBE], env=env, capture_output=True, text=True, timeout=300
  )
  assert result.stdout.split() == ['False', 'True', 'True'], result.stderr[-2000:]
  # The kernels of #10128's race were compiled into the cache, both files of each pair.
  kernels = {p.name.rsplit('-', 1)[0] for p in (tmp_path / 'numba').rglob('*.nbi')}
  assert {'utils._localmax', 'guf-utils._localmax', 'utils.__peak_pick'} <= kernels


def test_one_lock_per_numba_cache(monkeypatch, tmp_path):
  monkeypatch.setenv('NUMBA_CACHE_DIR', str(tmp_path / 'a'))
  a = numba_cache.lock_path()
  monkeypatch.setenv('NUMBA_CACHE_DIR', str(tmp_path / 'b'))
  assert numba_cache.lock_path() != a
  monkeypatch.setenv('NUMBA_CACHE_DIR', str(tmp_path / 'a'))
  assert numba_cache.lock_path() == a
