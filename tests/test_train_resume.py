"""Crash safety of `python -m pix2pitch_jax.train`: kill -9 + rerun is bit-identical to an
uninterrupted run; SIGTERM or Ctrl-C saves a restorable checkpoint and exits cleanly."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import checkpointing, sharding
from pix2pitch_jax.training import loop, pix2pix_task, trainer

from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def _flags(data_dir, workdir, **overrides):
  flags = ['--config=experiments/tiny.py', f'--workdir={workdir}', f'--config.data_dir={data_dir}']
  return flags + [f'--config.{k}={v}' for k, v in overrides.items()]


def _start(flags):
  # The child inherits XLA_FLAGS (8 CPU devices) and the compile cache from conftest.
  return subprocess.Popen(
    [sys.executable, '-m', 'pix2pitch_jax.train', *flags],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _wait_for(predicate, proc, timeout=180.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(0.02)
  raise TimeoutError('training subprocess made no progress')


def _config(data_dir, overrides):
  config = tiny_config()
  config.data_dir = data_dir
  for k, v in overrides.items():
    config[k] = v
  return config


def _restore(data_dir, workdir, overrides):
  config = _config(data_dir, overrides)
  meta = records.read_meta(data_dir)
  target, _ = loop.abstract_state(pix2pix_task.Pix2PixTask(config, meta), sharding.make_mesh())
  return checkpointing.Checkpointer(workdir, read_only=True).restore(target)


def test_kill_9_then_resume_is_bit_identical(tiny_dataset, tmp_path):
  overrides = dict(num_train_steps=24, checkpoint_every_steps=6, log_every_steps=6)
  reference = str(tmp_path / 'reference')
  trainer.train_and_evaluate(_config(tiny_dataset, overrides), reference)

  workdir = str(tmp_path / 'killed')
  first_ckpt = os.path.join(workdir, 'checkpoints', '6')
  proc = _start(_flags(tiny_dataset, workdir, **overrides))
  if not _wait_for(lambda: os.path.isdir(first_ckpt), proc):
    pytest.fail(f'run ended before its first checkpoint:\n{proc.stdout.read()[-3000:]}')
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = checkpointing.Checkpointer(workdir, read_only=True).latest_step()
  assert killed_at is not None and killed_at < 24, 'the run was not interrupted'

  proc = _start(_flags(tiny_dataset, workdir, **overrides))
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  assert f'Resumed from checkpoint step {killed_at}' in out

  (step_a, a), (step_b, b) = (
    _restore(tiny_dataset, reference, overrides),
    _restore(tiny_dataset, workdir, overrides),
  )
  assert step_a == step_b == 24
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])  # pre-emption and Ctrl-C
def test_stop_signal_saves_and_exits_cleanly(tiny_dataset, tmp_path, sig):
  overrides = dict(num_train_steps=100_000, checkpoint_every_steps=100_000, log_every_steps=2)
  workdir = str(tmp_path)
  metrics = str(workdir_lib.Workdir(workdir).metrics_jsonl)
  proc = _start(_flags(tiny_dataset, workdir, **overrides))
  assert _wait_for(lambda: os.path.exists(metrics) and os.path.getsize(metrics) > 0, proc)
  proc.send_signal(sig)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out[-3000:]
  assert f'Received {sig.name}' in out and 'checkpoint saved' in out
  step, state = _restore(tiny_dataset, workdir, overrides)
  assert 0 < step < 100_000 and int(state['progress']['step']) == step
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state['generator']))
