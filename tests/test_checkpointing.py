"""Checkpoint retention and fall-back to the previous checkpoint when the latest is corrupt."""

import pathlib

import numpy as np

from pix2pitch_jax import inference
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import checkpointing, sharding
from pix2pitch_jax.training import loop, pix2pix_task, trainer

from conftest import tiny_config


def _config(data_dir, **kw):
  config = tiny_config()
  config.data_dir = data_dir
  for k, v in kw.items():
    config[k] = v
  return config


def _corrupt(step_dir: pathlib.Path) -> None:
  """Overwrite every array file of the generator item with garbage."""
  for path in (step_dir / 'generator').rglob('*'):
    if path.is_file():
      path.write_bytes(b'not a checkpoint')


def test_keeps_last_k_and_falls_back_when_latest_is_corrupt(tiny_dataset, tmp_path, caplog):
  workdir = str(tmp_path)
  config = _config(tiny_dataset, num_train_steps=3, checkpoint_every_steps=1, keep_checkpoints=2)
  trainer.train_and_evaluate(config, workdir)
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  assert ckpt.all_steps() == [2, 3]  # LatestN(2) preservation policy
  _corrupt(pathlib.Path(ckpt.directory) / '3')

  meta = records.read_meta(tiny_dataset)
  target, _ = loop.abstract_state(pix2pix_task.Pix2PixTask(config, meta), sharding.make_mesh())
  step, state = ckpt.restore(target)
  assert step == 2 and int(state['progress']['step']) == 2
  assert 'Checkpoint 3' in caplog.text and 'failed to restore' in caplog.text
  assert 'trying the previous one' in caplog.text
  assert inference.load_generator(workdir).step == 2

  # Re-running training resumes from step 2, not from scratch.
  summary = trainer.train_and_evaluate(
    _config(tiny_dataset, num_train_steps=4, checkpoint_every_steps=1, keep_checkpoints=2), workdir
  )
  assert summary['resumed_from'] == 2 and summary['step'] == 4
  assert np.isfinite(summary['G_L1'])


def test_no_checkpoint_means_none(tmp_path):
  assert checkpointing.Checkpointer(str(tmp_path)).restore({}) is None
