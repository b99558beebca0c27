"""Checkpoint retention, restore that fails loudly (or falls back when asked), checkpoints of an
older layout, and resuming on another device count."""

import json
import pathlib
import shutil

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from pix2pitch_jax import inference
from pix2pitch_jax.data import input_pipeline, records
from pix2pitch_jax.runtime import checkpointing, sharding
from pix2pitch_jax.training import loop, pix2pix_task, trainer

from conftest import tiny_config

LOSSES = ('G_GAN', 'G_L1', 'D_real', 'D_fake')


def _config(data_dir, **kw):
  config = tiny_config()
  config.data_dir = data_dir
  for k, v in kw.items():
    config[k] = v
  return config


def _corrupt(step_dir: pathlib.Path) -> None:
  """Overwrite every array file of the generator items (weights, moving average) with garbage."""
  for item in ('generator', 'generator_ema'):
    for path in (step_dir / item).rglob('*'):
      if path.is_file():
        path.write_bytes(b'not a checkpoint')


def _target(config):
  meta = records.read_meta(config.data_dir)
  return loop.abstract_state(pix2pix_task.Pix2PixTask(config, meta), sharding.make_mesh())[0]


def _losses(workdir) -> dict[int, list[float]]:
  rows = [json.loads(line) for line in open(pathlib.Path(workdir) / 'metrics.jsonl')]
  return {r['step']: [r[k] for k in LOSSES] for r in rows if 'G_L1' in r}


@pytest.fixture(scope='module')
def trained(tiny_dataset, tmp_path_factory):
  """A workdir trained for 3 steps, checkpoints 2 and 3 (LatestN(2) kept only those)."""
  workdir = tmp_path_factory.mktemp('trained')
  config = _config(tiny_dataset, num_train_steps=3, checkpoint_every_steps=1, keep_checkpoints=2)
  trainer.train_and_evaluate(config, str(workdir))
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps() == [2, 3]
  return config, workdir


@pytest.fixture
def corrupt_latest(trained, tmp_path):
  """A copy of `trained` with step 3 corrupt."""
  config, trained_dir = trained
  workdir = tmp_path / 'workdir'
  shutil.copytree(trained_dir, workdir)
  _corrupt(workdir / 'checkpoints' / '3')
  return config, workdir


def test_corrupt_latest_fails_loudly_by_default(corrupt_latest):
  config, workdir = corrupt_latest
  with pytest.raises(checkpointing.CheckpointRestoreError) as e:
    checkpointing.Checkpointer(str(workdir)).restore(_target(config))
  message = str(e.value)
  assert 'checkpoint step 3' in message and 'failed to restore' in message
  assert '--config.restore_fallback=True' in message
  # Training refuses too (one line at the command line: a cli.UserInputError), and moves nothing.
  with pytest.raises(checkpointing.CheckpointRestoreError, match='checkpoint step 3'):
    trainer.train_and_evaluate(_config(config.data_dir, num_train_steps=4), str(workdir))
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2', '3']
  with pytest.raises(checkpointing.CheckpointRestoreError, match='checkpoint step 3'):
    inference.load_generator(str(workdir))


def test_fallback_moves_the_bad_step_aside_and_resumes_before_it(corrupt_latest, caplog):
  config, workdir = corrupt_latest
  ckpt = checkpointing.Checkpointer(str(workdir))
  step, state = ckpt.restore(_target(config), fallback=True)
  assert step == 2 and int(state['progress']['step']) == 2
  assert ckpt.all_steps() == [2] and ckpt.latest_step() == 2
  ckpt.close()
  moved = [p.name for p in (workdir / 'checkpoints').iterdir() if p.name.startswith('3.bad-')]
  assert len(moved) == 1, list((workdir / 'checkpoints').iterdir())
  assert 'moved checkpoint step 3 aside' in caplog.text
  assert inference.load_generator(str(workdir)).step == 2

  # Training saves step 3 again (no collision with the moved one) and goes on to 4.
  summary = trainer.train_and_evaluate(
    _config(
      config.data_dir,
      num_train_steps=4,
      checkpoint_every_steps=1,
      keep_checkpoints=2,
      restore_fallback=True,
    ),
    str(workdir),
  )
  assert summary['resumed_from'] == 2 and summary['step'] == 4
  assert np.isfinite(summary['G_L1'])
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps() == [3, 4]
  assert (workdir / 'checkpoints' / moved[0]).is_dir()


def test_fallback_with_nothing_left_says_so(corrupt_latest):
  config, workdir = corrupt_latest
  _corrupt(workdir / 'checkpoints' / '2')
  with pytest.raises(checkpointing.NoRestorableCheckpointError, match=r'\[3, 2\]'):
    checkpointing.Checkpointer(str(workdir)).restore(_target(config), fallback=True)
  names = sorted(p.name.split('.bad-')[0] for p in (workdir / 'checkpoints').iterdir())
  assert names == ['2', '3']  # both moved aside, none left under a step name
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps() == []


def test_no_checkpoint_means_none(tmp_path):
  assert checkpointing.Checkpointer(str(tmp_path)).restore({}) is None


def test_checkpoint_with_a_data_iterator_item_restores(tiny_dataset, tmp_path):
  """Checkpoints of the earlier layout also hold grain's per-process iterator: ignored."""
  config = _config(tiny_dataset, num_train_steps=3)  # as `trained`: the same compiled step
  task = pix2pix_task.Pix2PixTask(config, records.read_meta(tiny_dataset))
  state, _ = loop.create_state(task, sharding.make_mesh())
  state['progress']['step'] = jnp.int32(2)
  data_iter = iter(input_pipeline.train_dataset(tiny_dataset, global_batch_size=8, seed=0))
  next(data_iter)
  items = {k: ocp.args.StandardSave(v) for k, v in state.items()}
  items['data_iterator'] = grain.checkpoint.CheckpointSave(data_iter)
  with ocp.CheckpointManager(checkpointing.checkpoint_dir(tmp_path)) as manager:
    manager.save(2, args=ocp.args.Composite(**items))
  summary = trainer.train_and_evaluate(config, str(tmp_path))
  assert summary['resumed_from'] == 2 and summary['step'] == 3


@pytest.mark.slow
def test_resume_on_another_device_count_matches_an_uninterrupted_run(tiny_dataset, tmp_path):
  """1 process x 4 devices to step 4, then resumed on 2 devices: steps 5-8 lose what an
  uninterrupted 4-device run loses (same global batches, same state; only the reduction order
  over devices differs)."""
  assert jax.device_count() >= 4
  overrides = dict(num_train_steps=8, checkpoint_every_steps=4, log_every_steps=1)
  reference = tmp_path / 'reference'
  trainer.train_and_evaluate(_config(tiny_dataset, num_devices=4, **overrides), str(reference))
  resumed = tmp_path / 'resumed'
  shutil.copytree(reference / 'checkpoints' / '4', resumed / 'checkpoints' / '4')
  summary = trainer.train_and_evaluate(
    _config(tiny_dataset, num_devices=2, **overrides), str(resumed)
  )
  assert summary['resumed_from'] == 4 and summary['step'] == 8
  want, got = _losses(reference), _losses(resumed)
  assert sorted(got) == [5, 6, 7, 8]
  np.testing.assert_allclose([got[s] for s in got], [want[s] for s in got], rtol=1e-4, atol=1e-6)
