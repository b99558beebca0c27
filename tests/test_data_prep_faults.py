"""data_prep faults: entries that are not readable files are reported by name, and a build killed
with kill -9 takes its worker processes with it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from test_data_prep_build import TINY  # the same tiny build options

from data_prep import builder, entries, music, paintings

SR = 16_000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tone(path, seconds=3.0, freq=440.0):
  t = np.arange(int(seconds * SR)) / SR
  sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def _lock(path, monkeypatch):
  """chmod 000 `path`; as root (which reads it anyway) simulate the refusal with a mock."""
  os.chmod(path, 0)
  if os.access(path, os.R_OK):  # root: permissions do not stop reads
    real_access = os.access
    monkeypatch.setattr(
      os, 'access', lambda p, mode, **kw: os.fspath(p) != str(path) and real_access(p, mode, **kw)
    )


def _faulty_tree(root, make_file, suffix, monkeypatch):
  """Good files in two label folders, plus one entry of every kind that is not a readable file."""
  outside = root.parent / f'{root.name}_linked'
  for era in ('baroque', 'romanticism'):
    (root / era).mkdir(parents=True)
    for i in range(4):
      make_file(root / era / f'ok{i}{suffix}', i)
  outside.mkdir()
  make_file(outside / f'far{suffix}', 9)
  bad = root / 'baroque'
  (bad / f'broken{suffix}').symlink_to(root / 'nowhere')
  (bad / f'loop{suffix}').symlink_to(bad / f'loop{suffix}')
  (bad / f'folder{suffix}').mkdir()
  (bad / 'again').symlink_to(root)  # a folder loop
  os.mkfifo(bad / f'pipe{suffix}')
  make_file(bad / f'locked{suffix}', 5)
  _lock(bad / f'locked{suffix}', monkeypatch)
  (root / 'romanticism' / 'elsewhere').symlink_to(outside)  # followed, not a fault
  return {
    f'baroque/broken{suffix}': 'broken symlink',
    f'baroque/loop{suffix}': 'symlink loop',
    f'baroque/folder{suffix}': 'a folder named like a file',
    'baroque/again': 'symlink loop',
    f'baroque/pipe{suffix}': 'not a regular file',
    f'baroque/locked{suffix}': 'unreadable: permission denied',
  }


def _by_id(ignored):
  return {entry: reason for reason, found in ignored.items() for entry in found}


def _painting(path, i):
  Image.new('RGB', (40, 30), (40 * i, 90, 30)).save(path, format='PNG')


def test_painting_scan_names_every_fault(tmp_path, monkeypatch):
  root = tmp_path / 'paintings'
  expected = _faulty_tree(root, _painting, '.png', monkeypatch)
  scan = paintings.scan_paintings(root, 'folders', [])
  assert _by_id(scan.ignored) == expected
  ids = [item.painting_id for item in scan.items]
  assert ids == sorted(
    [f'{era}/ok{i}.png' for era in ('baroque', 'romanticism') for i in range(4)]
    + ['romanticism/elsewhere/far.png']
  )


def test_music_scan_names_every_fault(tmp_path, monkeypatch):
  root = tmp_path / 'music'
  expected = _faulty_tree(root, lambda p, i: _tone(p, freq=220 + 40 * i), '.wav', monkeypatch)
  scan = music.scan_music(root, 'folders')
  assert _by_id(scan.ignored) == expected
  assert len(scan.recordings) == 9


def test_csv_listed_entries_say_what_is_wrong(tmp_path):
  wiki = tmp_path / 'wikiart'
  (wiki / 'Baroque').mkdir(parents=True)
  _painting(wiki / 'Baroque' / 'a.jpg', 1)
  (wiki / 'Baroque' / 'b.jpg').symlink_to(wiki / 'gone.jpg')
  (wiki / 'Baroque' / 'c.jpg').mkdir()
  (tmp_path / 'style_train.csv').write_text(
    'Baroque/a.jpg,0\nBaroque/b.jpg,0\nBaroque/c.jpg,0\nBaroque/d.jpg,0\n'
  )
  scan = paintings.scan_paintings(wiki, 'wikiart', ['Baroque'])
  assert [i.painting_id for i in scan.items] == ['Baroque/a.jpg']
  assert scan.ignored == {
    'listed in csv: broken symlink': ['Baroque/b.jpg'],
    'listed in csv: a folder, not a file': ['Baroque/c.jpg'],
    'listed in csv but missing': ['Baroque/d.jpg'],
  }
  assert entries.problem(wiki / 'Baroque' / 'a.jpg') is None


@pytest.mark.slow
def test_build_report_lists_faulty_entries(tmp_path, monkeypatch):
  pnt, mus = tmp_path / 'paintings', tmp_path / 'music'
  expected = _faulty_tree(pnt, _painting, '.png', monkeypatch)
  for era in ('baroque', 'romanticism'):
    (mus / era).mkdir(parents=True)
    for i in range(3):
      _tone(mus / era / f'r{i}.wav', freq=220 * (i + 1))
  (mus / 'baroque' / 'loop.wav').symlink_to(mus / 'baroque' / 'loop.wav')
  report = builder.build_from_sources(pnt, mus, tmp_path / 'out', **TINY)
  skipped = {(s['kind'], s['id']): s['reason'] for s in report['skipped']}
  for entry, reason in expected.items():
    assert skipped[('painting file', entry)] == reason
  assert skipped[('music file', 'baroque/loop.wav')] == 'symlink loop'
  summary = (tmp_path / 'out' / 'summary.md').read_text()
  assert '`baroque/loop.png` (painting file): symlink loop' in summary


# ---------------------------------------------------------------------------------------------
# Workers die with their parent.


def _children(pid):
  """Pids whose parent is `pid` (from /proc)."""
  found = []
  for name in os.listdir('/proc'):
    if name.isdigit():
      stat = _proc_stat(int(name))
      if stat is not None and stat[1] == pid:
        found.append(int(name))
  return found


def _proc_stat(pid):
  """(state, ppid) of a live process, None once it is gone."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
  except OSError:
    return None
  return fields[0], int(fields[1])


def _running(pids):
  # A zombie has exited; it waits for whichever init adopted it to reap it.
  return [p for p in pids if (s := _proc_stat(p)) is not None and s[0] != 'Z']


def _wait_for(condition, timeout_s, what):
  deadline = time.monotonic() + timeout_s
  while not (value := condition()):
    if time.monotonic() > deadline:
      pytest.fail(f'timed out after {timeout_s} s waiting for {what}')
    time.sleep(0.2)
  return value


def _kill_and_check_children(proc, min_children):
  workers = []
  try:
    workers = _wait_for(
      lambda: (c := _children(proc.pid)) and len(c) >= min_children and c, 120, 'workers'
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _running(workers) and time.monotonic() < deadline:
      time.sleep(0.2)
    assert not _running(workers), f'workers {_running(workers)} outlived their parent'
  finally:
    for pid in _running(workers or _children(proc.pid)):
      os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
      proc.kill()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
@pytest.mark.slow
def test_kill_9_build_leaves_no_workers(tmp_path):
  proc = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'data_prep.build',
      '--demo=synesthesia',
      f'--out={tmp_path / "syn"}',
      '--workers=2',
    ],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  _kill_and_check_children(proc, 2)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_watchdog_alone_ends_an_orphan(tmp_path):
  """The portable fallback (no parent-death signal): the watchdog thread notices re-parenting."""
  script = textwrap.dedent(
    """
    import multiprocessing, os, time
    from data_prep import workers

    def child(parent):
      workers._PARENT_POLL_S = 0.1
      workers._watch_parent(parent)

    if __name__ == '__main__':
      multiprocessing.get_context('spawn').Process(target=child, args=(os.getpid(),)).start()
      time.sleep(600)
    """
  )
  (tmp_path / 'orphan.py').write_text(script)
  proc = subprocess.Popen(
    [sys.executable, str(tmp_path / 'orphan.py')],
    cwd=REPO,
    env=dict(os.environ, PYTHONPATH=REPO),
  )
  _kill_and_check_children(proc, 1)
