"""Operability: goodput and per-host step time, the profiler window, the compiled step's memory
analysis, gradient accumulation through the loop, and the default compilation cache."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pix2pitch_jax.core import configs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.runtime import checkpointing
from pix2pitch_jax.training import profiling, trainer

from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_goodput_is_the_share_of_wall_time_no_category_claims():
  clock = FakeClock()
  goodput = profiling.Goodput(clock)
  clock.now += 3.0  # start-up
  goodput.charge_since_start('startup')
  with goodput.timing('compile'):
    clock.now += 5.0
  for _ in range(4):
    with goodput.timing('input'):
      clock.now += 0.25
    clock.now += 0.5  # a train step
    goodput.steps += 1
  with goodput.timing('checkpoint'):
    clock.now += 1.0
  figures = goodput.figures()
  assert figures['wall_s'] == pytest.approx(12.0)
  assert figures['goodput'] == pytest.approx(2.0 / 12.0)
  assert figures['step_time_s'] == pytest.approx(0.5)
  assert (figures['startup_s'], figures['compile_s'], figures['input_s']) == (3.0, 5.0, 1.0)
  with pytest.raises(ValueError, match='unknown category'):
    with goodput.timing('lunch'):
      pass


@pytest.mark.parametrize(
  'spec, expected',
  [('', None), ('10:15', (10, 15)), (' 1:2 ', (1, 2))],
)
def test_parse_profile_steps(spec, expected):
  assert profiling.parse_profile_steps(spec) == expected


@pytest.mark.parametrize('spec', ['10', '5:5', '0:3', 'a:b', '1:2:3'])
def test_bad_profile_steps_are_a_config_error(spec, tiny_dataset, tmp_path):
  config = tiny_config()
  config.data_dir = tiny_dataset
  config.profile_steps = spec
  with pytest.raises(configs.ConfigError, match='profile_steps'):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_tiny_run_reports_goodput_memory_and_writes_a_profile(tiny_dataset, tmp_path):
  """4 steps, gradients accumulated over 2, steps 2-3 profiled; then resumed to 6 steps."""
  config = tiny_config()
  configs.apply_overrides(
    config,
    {'data_dir': tiny_dataset, 'profile_steps': '2:4', 'optimizer.grad_accum_steps': 2},
  )
  workdir = str(tmp_path / 'run')
  summary = trainer.train_and_evaluate(config, workdir)

  assert summary['step'] == 4 and summary['host'] == 0
  assert 0.0 < summary['goodput'] <= 1.0
  assert summary['step_time_s'] > 0.0
  assert summary['compile_s'] > 0.0 and summary['startup_s'] > 0.0 and summary['eval_s'] > 0.0
  accounted = summary['step_time_s'] * 4 + sum(summary[f'{c}_s'] for c in profiling.BADPUT)
  assert accounted == pytest.approx(summary['wall_s'], rel=0.05)
  memory = summary['step_memory_bytes']
  assert memory['argument'] > 0 and memory['temp'] > 0 and memory['output'] > 0
  assert memory['alias'] > 0  # the donated state

  profile = workdir_lib.Workdir(workdir).profile
  traces = list(profile.glob('plugins/profile/*/*.xplane.pb'))
  assert len(traces) == 1 and traces[0].stat().length > 0

  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  perf = [r for r in rows if 'perf/goodput/host_0' in r]
  assert [r['step'] for r in perf] == [1, 2, 3, 4]
  assert all(0.0 < r['perf/goodput/host_0'] <= 1.0 for r in perf)
  assert perf[-1]['perf/step_time_s/host_0'] > 0.0
  # The schedule counts steps, an update takes the lr of its group's first step: without
  # accumulation step 3 would log 1e-4 (decay from step 2 to 0 at step 4).
  np.testing.assert_allclose([r['lr'] for r in rows if 'lr' in r], [2e-4] * 4, rtol=1e-6)

  # The accumulator and both step counters are in the checkpoint: resume and go on.
  config.num_train_steps = 6
  config.profile_steps = ''
  resumed = trainer.train_and_evaluate(config, workdir)
  assert resumed['resumed_from'] == 4 and resumed['step'] == 6
  assert np.isfinite(resumed['G_loss']) and 0.0 < resumed['goodput'] <= 1.0
  assert checkpointing.Checkpointer(workdir, read_only=True).latest_step() == 6


CACHE_SCRIPT = """
import sys
if sys.argv[1] == 'jax-first':
  import jax  # imported before the tool starts: the cache is set in jax.config
from pix2pitch_jax.core import cli

def main():
  import jax
  jax.jit(lambda x: x * 2.0)(1.0).block_until_ready()
  print('cache_dir=' + repr(jax.config.jax_compilation_cache_dir))

sys.argv = sys.argv[:1]
cli.run(main)
"""


@pytest.mark.parametrize('order', ['jax-first', 'jax-later'])
def test_command_line_tools_use_a_compilation_cache_by_default(order, tmp_path):
  home = tmp_path / 'home'
  env = {k: v for k, v in os.environ.items() if k not in ('JAX_COMPILATION_CACHE_DIR', 'XLA_FLAGS')}
  env.pop('XDG_CACHE_HOME', None)
  env.update(HOME=str(home), PYTHONPATH=REPO, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  out = _run_cache_script(tmp_path, order, env)
  expected = home / '.cache' / 'pix2pitch_jax' / 'jax'
  assert f'cache_dir={str(expected)!r}' in out, out
  assert any(expected.iterdir()), 'nothing was written to the cache'

  # The user's own JAX_COMPILATION_CACHE_DIR wins; an empty one turns the cache off.
  mine = tmp_path / 'mine'
  out = _run_cache_script(tmp_path, order, dict(env, JAX_COMPILATION_CACHE_DIR=str(mine)))
  assert f'cache_dir={str(mine)!r}' in out and any(mine.iterdir()), out
  out = _run_cache_script(tmp_path, order, dict(env, JAX_COMPILATION_CACHE_DIR=''))
  assert "cache_dir=''" in out, out


def _run_cache_script(tmp_path, order, env):
  script = tmp_path / 'cache_script.py'
  script.write_text(CACHE_SCRIPT)
  result = subprocess.run(
    [sys.executable, str(script), order], env=env, capture_output=True, text=True, timeout=240
  )
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  return result.stdout
