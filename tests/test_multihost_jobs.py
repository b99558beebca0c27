"""Generation and evaluation as multi-host jobs: two processes (jax.distributed over a loopback
coordinator, one CPU device each) write the same files as one process with one device, every
input once; a generation started again skips what it has finished.

A few minutes on a loaded 2-core machine: each job is a fresh JAX process (or two).
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import job as evaluation_job
from pix2pitch_jax.generation import job as generation_job
from pix2pitch_jax.models import pix2pix
from pix2pitch_jax.runtime import checkpointing

from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 600
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def checkpoint_workdir(tiny_dataset, tmp_path_factory):
  """A workdir with an untrained tiny generator saved at step 4: real weights, no training."""
  workdir = tmp_path_factory.mktemp('workdir')
  config = tiny_config()
  config.data_dir = tiny_dataset
  config.model.ema_decay = 0.0  # the checkpoint holds the generator's weights, no moving average
  workdir_lib.Workdir(workdir).config_json.write_text(config.to_json_best_effort(indent=2))
  num_eras = len(records.read_meta(tiny_dataset).era_names)
  generator = pix2pix.generator_from_config(config, num_eras, nnx.Rngs(params=jax.random.key(3)))
  ckpt = checkpointing.Checkpointer(workdir)
  ckpt.save(4, {checkpointing.GENERATOR_ITEM: pix2pix.split_variables(generator)[1]}, force=True)
  ckpt.close()
  return workdir


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _run(module, args, *, processes):
  """`python -m module args` as one process, or as `processes` processes of one job."""
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_PLATFORMS')}
  env.update(XLA_FLAGS='--xla_force_host_platform_device_count=1', JAX_PLATFORMS='cpu')
  if processes > 1:
    env.update(
      JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{_free_port()}', JAX_NUM_PROCESSES=str(processes)
    )
  procs = [
    subprocess.Popen(
      [sys.executable, '-m', module, *args],
      cwd=REPO,
      env=dict(env, JAX_PROCESS_ID=str(i)) if processes > 1 else env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(processes)
  ]
  try:
    logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-4000:]
  return logs


def _files(folder):
  """Every visible file of an output folder -> its bytes."""
  return {
    p.relative_to(folder).as_posix(): p.read_bytes()
    for p in sorted(pathlib.Path(folder).rglob('*'))
    if p.is_file() and not p.name.startswith('.') and '.generation' not in p.parts
  }


def _records(out):
  [key] = list((pathlib.Path(out) / generation_job.RECORDS_DIR).iterdir())
  return generation_job.read_records(key), [
    json.loads(p.read_text()) for p in sorted(key.glob('chunk-*.json'))
  ]


def test_generate_on_two_hosts_matches_one_host_and_resumes(checkpoint_workdir, tmp_path):
  common = [f'--workdir={checkpoint_workdir}', '--split=test', '--griffin_lim_iters=4']
  common += ['--batch_size=2', '--seed=5']
  _run('pix2pitch_jax.generate', [*common, f'--out={tmp_path / "one"}'], processes=1)
  two = tmp_path / 'two'
  # Half the set first (an interrupted run), then all of it.
  _run('pix2pitch_jax.generate', [*common, f'--out={two}', '--max_examples=2'], processes=2)
  first = {name: (two / name).stat().st_mtime_ns for name in _files(two)}
  assert len([n for n in first if n.endswith('.wav')]) == 4  # 2 inputs, with their references
  _run('pix2pitch_jax.generate', [*common, f'--out={two}'], processes=2)

  one_files, two_files = _files(tmp_path / 'one'), _files(two)
  assert len([n for n in one_files if n.endswith('.wav')]) == 8
  assert two_files.keys() == one_files.keys()
  for name, data in one_files.items():
    assert two_files[name] == data, f'{name} differs between one and two processes'
  for name, mtime in first.items():
    if name not in (workdir_lib.GALLERY_INDEX, workdir_lib.GALLERY_MANIFEST):
      assert (two / name).stat().st_mtime_ns == mtime, f'{name} was written again'
  found, chunks = _records(two)
  stems = [e['title'] for e in json.loads(one_files['manifest.json'])['entries']]
  assert sorted(found.writes) == sorted(stems) and set(found.writes.values()) == {1}
  # Both processes wrote in both runs: each its own half.
  assert sorted((c['process'], len(c['entries'])) for c in chunks) == [
    (0, 1),
    (0, 1),
    (1, 1),
    (1, 1),
  ]
  assert not list(two.glob('.*.tmp-*'))


def test_evaluate_on_two_hosts_matches_one_host(checkpoint_workdir, tmp_path):
  results = {}
  for processes in (1, 2):
    workdir = tmp_path / f'p{processes}'
    # The same checkpoint, and the era classifier process 1 trained, for both.
    workdir.mkdir()
    for name in ('config.json', 'checkpoints'):
      os.symlink(checkpoint_workdir / name, workdir / name)
    if processes == 2:
      os.symlink(tmp_path / 'p1' / 'era_classifier', workdir / 'era_classifier')
    logs = _run(
      'pix2pitch_jax.evaluate',
      [f'--workdir={workdir}', '--griffin_lim_iters=4', '--batch_size=2', '--max_examples=3'],
      processes=processes,
    )
    assert sum('| l1_db |' in log for log in logs) == 1  # the report, printed by process 0 only
    results[processes] = json.loads((workdir / 'eval' / 'metrics_4.json').read_text())
    assert not (workdir / 'eval' / '.parts_4').exists()
  one, two = (evaluation_job.scalar_items(results[p]) for p in (1, 2))
  assert one.keys() == two.keys() and len(one) > 50
  assert results[1]['num_examples'] == results[2]['num_examples'] == 3
  np.testing.assert_allclose([two[k] for k in one], list(one.values()), rtol=1e-5, atol=1e-6)
  assert results[2]['model']['per_era'].keys() == results[1]['model']['per_era'].keys()
