"""Two processes (jax.distributed, loopback coordinator, 2 CPU devices each): a stop request
that reaches them 2 s apart makes both save the same step and exit 0; they resume on 1 device
each, and every step's losses match one process with 4 devices (what scripts/multihost_check.sh
checks by hand, without the stop).

A few minutes on 2 cores: several JAX processes run at once.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from pix2pitch_jax.training import trainer

from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- pre-emption


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(flags, workdir, *, devices: int, tag: str) -> list[subprocess.Popen]:
  """Two training processes (jax.distributed over loopback), `devices` CPU devices each.

  Without the persistent compile cache: on XLA:CPU its key differs per process (the topology
  fingerprint) and only process 0 writes it, so process 0 would load the step while process 1
  compiles it, and on a loaded machine the first collective's 30 s set-up deadline (gloo) can
  pass before process 1 arrives. Compiling in both keeps them in step.
  """
  port = _free_port()
  base = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_PLATFORMS')}
  procs = []
  for pid in (0, 1):
    env = dict(
      base,
      JAX_PLATFORMS='cpu',
      JAX_ENABLE_COMPILATION_CACHE='false',
      XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
      JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
      JAX_NUM_PROCESSES='2',
      JAX_PROCESS_ID=str(pid),
    )
    log = open(workdir / f'{tag}_process_{pid}.log', 'w')
    procs.append(
      subprocess.Popen(
        [sys.executable, '-m', 'pix2pitch_jax.train', *flags],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
      )
    )
    log.close()
  return procs


def _finish(procs, timeout: float) -> list[int | None]:
  """Exit codes (None: still running at the deadline, then killed)."""
  deadline = time.time() + timeout
  codes: list[int | None] = []
  for proc in procs:
    try:
      codes.append(proc.wait(timeout=max(0.1, deadline - time.time())))
    except subprocess.TimeoutExpired:
      codes.append(None)
  for proc in procs:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return codes


def _logs(workdir, tag) -> list[str]:
  return [(workdir / f'{tag}_process_{pid}.log').read_text() for pid in (0, 1)]


def _losses(workdir) -> dict[int, list[float]]:
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return {
    r['step']: [r[k] for k in ('G_GAN', 'G_L1', 'D_real', 'D_fake')] for r in rows if 'G_L1' in r
  }


@pytest.mark.slow
def test_sigterm_two_seconds_apart_saves_one_step_on_both_and_resumes(tiny_dataset, tmp_path):
  """SIGTERM to process 0, then 2 s later to process 1: both save the same step and exit 0
  within a minute; relaunched on 1 device each (a different device count), both resume from that
  step. The losses before and after match one uninterrupted process with 4 devices; a copy of
  the checkpoint resumed by one process on 2 devices (another host count) matches too."""
  steps = 10_000  # never reached: the run ends by the stop request
  # A constant learning rate (decay starts at the end), so a shorter reference run is the same
  # computation step for step.
  overrides = {
    'num_train_steps': steps,
    'optimizer.decay_start_step': steps,
    'checkpoint_every_steps': steps,
    'log_every_steps': 1,
  }
  workdir = tmp_path / 'run'
  workdir.mkdir()

  def flags(**changes):
    return [
      '--config=experiments/tiny.py',
      f'--workdir={workdir}',
      f'--config.data_dir={tiny_dataset}',
    ] + [f'--config.{k}={v}' for k, v in {**overrides, **changes}.items()]

  procs = _launch(flags(), tmp_path, devices=2, tag='first')
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 420  # two compiles on a shared 2-core machine
  while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
    if time.time() > deadline or any(p.poll() is not None for p in procs):
      _finish(procs, 0)
      pytest.fail(
        'training did not start:\n' + '\n'.join(t[-3000:] for t in _logs(tmp_path, 'first'))
      )
    time.sleep(0.1)

  procs[0].send_signal(signal.SIGTERM)
  time.sleep(2.0)
  if procs[1].poll() is None:
    procs[1].send_signal(signal.SIGTERM)
  codes = _finish(procs, 60)
  logs = _logs(tmp_path, 'first')
  assert codes == [0, 0], '\n'.join(t[-3000:] for t in logs)
  stopped = [re.findall(r'Stopping at step (\d+) after a stop request', t) for t in logs]
  assert len(stopped[0]) == len(stopped[1]) == 1 and stopped[0] == stopped[1], stopped
  saved = int(stopped[0][0])
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == [str(saved)]

  # Relaunch both, on 1 device each, for two more steps.
  end = {'num_train_steps': saved + 2, 'optimizer.decay_start_step': saved + 2}
  procs = _launch(flags(**end), tmp_path, devices=1, tag='second')
  codes = _finish(procs, 420)
  logs = _logs(tmp_path, 'second')
  assert codes == [0, 0], '\n'.join(t[-3000:] for t in logs)
  assert all(f'Resumed from checkpoint step {saved} ' in t for t in logs)
  assert (workdir / 'checkpoints' / str(saved + 2)).is_dir()
  multi = _losses(workdir)
  assert sorted(multi) == list(range(1, saved + 3))

  # The same computation in this process: uninterrupted on 4 devices, and resumed from the
  # two-process checkpoint on 2 devices.
  config = tiny_config()
  config.data_dir = tiny_dataset
  config.update_from_flattened_dict({**overrides, **end})
  reference = tmp_path / 'reference'
  config.num_devices = 4
  trainer.train_and_evaluate(config, str(reference))
  one_host = tmp_path / 'one_host'
  shutil.copytree(workdir / 'checkpoints' / str(saved), one_host / 'checkpoints' / str(saved))
  config.num_devices = 2
  trainer.train_and_evaluate(config, str(one_host))
  want = _losses(reference)
  np.testing.assert_allclose([multi[s] for s in want], list(want.values()), rtol=1e-4, atol=1e-6)
  got = _losses(one_host)
  assert sorted(got) == [saved + 1, saved + 2]
  np.testing.assert_allclose([got[s] for s in got], [want[s] for s in got], rtol=1e-4, atol=1e-6)
