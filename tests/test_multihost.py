"""Two processes (jax.distributed, loopback coordinator, 2 CPU devices each) train the same
steps as one process with 4 devices and log the same losses: scripts/multihost_check.sh.

About a minute on 2 cores: three JAX processes run at once.
"""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_two_processes_match_one_process(tiny_dataset, tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_PLATFORMS')}
  result = subprocess.run(
    [os.path.join(REPO, 'scripts', 'multihost_check.sh'), tiny_dataset, str(tmp_path)],
    env=dict(env, STEPS='2'),
    capture_output=True,
    text=True,
    timeout=400,
  )
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == 'multihost_check OK'
