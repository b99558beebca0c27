"""train_and_evaluate end to end on the tiny dataset: outputs, TensorBoard summaries, 1 vs 8
devices, config errors, NaN stop, resume, and loading the generator for inference."""

import glob
import io
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile
from PIL import Image

from pix2pitch_jax import inference
from pix2pitch_jax.core import configs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import checkpointing
from pix2pitch_jax.training import loop, pix2pix_task, summaries, trainer

from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Same losses on 1 and 8 devices up to float reassociation of the sharded reductions
# (BatchNorm statistics, loss means, gradient all-reduce).
DEVICE_COUNT_RTOL = 1e-4


def tiny_train_config(data_dir, /, **overrides):
  config = tiny_config()
  config.data_dir = data_dir
  return configs.apply_overrides(config, overrides)


def read_metrics(workdir):
  with open(str(workdir_lib.Workdir(workdir).metrics_jsonl)) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def trained(tiny_dataset, tmp_path_factory):
  """4 steps on 8 devices, checkpoints at 2 and 4, one validation at the end."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  summary = trainer.train_and_evaluate(tiny_train_config(tiny_dataset), workdir)
  return workdir, summary


def test_train_and_evaluate_writes_everything(trained):
  workdir, summary = trained
  assert summary['step'] == 4 and summary['resumed_from'] is None and not summary['preempted']
  for key in pix2pix_task.LOSS_KEYS + ('G_loss', 'D_loss', 'D_real_mean', 'D_fake_mean'):
    assert np.isfinite(summary[key]), key
  # Untrained-GAN sanity: BCE near log 2, D outputs near 0.5, L1 of a tanh net vs targets.
  assert 0.3 < summary['D_real'] < 1.5 and 0.3 < summary['D_fake'] < 1.5
  assert 0.2 < summary['D_real_mean'] < 0.8
  assert 0.0 < summary['val_L1'] < 1.0
  rows = read_metrics(workdir)
  assert [r['step'] for r in rows if 'G_L1' in r] == [1, 2, 3, 4]
  assert {'lr', 'steps_per_s', 'examples_per_s', 'G_GAN', 'D_fake'} <= set(rows[0])
  assert any('val_L1' in r for r in rows)
  # Constant lr for the first half (decay_start_step = num_train_steps // 2), then linear to 0.
  lrs = [r['lr'] for r in rows if 'lr' in r]
  np.testing.assert_allclose(lrs, [2e-4, 2e-4, 2e-4, 1e-4], rtol=1e-6)
  assert glob.glob(os.path.join(workdir, 'tensorboard', 'events.out.tfevents.*'))
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['ngf'] == 8
  assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [2, 4]


def test_tensorboard_shows_magma_mels_and_griffin_lim_audio(trained, tiny_dataset):
  """The final evaluation's examples: RGB paintings, coloured (not grey) mels, and num_images
  reference and generated clips at the dataset's sample rate."""
  workdir, _ = trained
  params = records.read_meta(tiny_dataset).mel_params
  values = {
    v.tag: v
    for e in summaries.read_events(os.path.join(workdir, 'tensorboard'))
    if e.step == 4
    for v in e.summary.value
  }
  for tag in ('painting', 'target_mel', 'generated_mel'):
    image = np.asarray(Image.open(io.BytesIO(values[tag].image.encoded_image_string)))
    assert image.ndim == 3 and image.shape[-1] == 3, tag
    if tag.endswith('_mel'):  # magma: the channels differ (grey would have R == G == B)
      assert (image[..., 0] != image[..., 2]).mean() > 0.5, tag
  for name in ('target_audio', 'generated_audio'):
    for i in range(2):  # tiny.py: num_images = 2
      audio = values[f'{name}/{i}'].audio
      assert audio.sample_rate == params.sample_rate and audio.num_channels == 1
      clip, rate = soundfile.read(io.BytesIO(audio.encoded_audio_string))
      assert rate == params.sample_rate and clip.shape == (params.clip_samples,)
      assert np.abs(clip).max() > 1e-3, (name, i)
  assert 'target_audio/2' not in values


@pytest.mark.parametrize(
  'remaining, rate, expected',
  [
    (100, 2.0, '0:00:50'),
    (7200, 1.0, '2:00:00'),
    (0, 0.0, '0:00:00'),
    (10**6, 0.0, '?'),
    (10**6, 1e-12, '?'),
    (10, float('nan'), '?'),
    (10, -1.0, '?'),
    (10, float('inf'), '0:00:00'),
  ],
)
def test_format_eta_never_overflows(remaining, rate, expected):
  assert loop.format_eta(remaining, rate) == expected


def test_progress_line_right_after_compilation_on_a_long_run():
  """log_every_steps=1: the first report has rate 0 (no step timed yet); it used to crash."""
  losses = dict.fromkeys(pix2pix_task.LOSS_KEYS, 0.5)
  line = loop.progress_line(
    step=1, total=10**6, rate=0.0, batch_size=8, metrics=losses, keys=pix2pix_task.LOSS_KEYS
  )
  assert 'ETA ?' in line and 'G_L1 0.5' in line


def test_training_reduces_l1(tiny_dataset, tmp_path):
  """The mel of the tiny set is a function of the painting: L1 must fall steadily over 30 steps."""
  config = tiny_train_config(
    tiny_dataset,
    num_train_steps=30,
    checkpoint_every_steps=30,
    log_every_steps=5,
    **{
      'input.jitter': False,
      'model.use_dropout': False,
      'optimizer.lr': 2e-3,
      'optimizer.decay_start_step': 30,
    },
  )
  trainer.train_and_evaluate(config, str(tmp_path))
  l1 = [r['G_L1'] for r in read_metrics(str(tmp_path)) if 'G_L1' in r]
  assert l1[-1] < 0.9 * l1[0] and l1 == sorted(l1, reverse=True), l1


def test_one_and_eight_devices_give_the_same_losses(trained, tiny_dataset, tmp_path):
  workdir8, _ = trained
  trainer.train_and_evaluate(tiny_train_config(tiny_dataset, num_devices=1), str(tmp_path))
  rows1, rows8 = read_metrics(str(tmp_path)), read_metrics(workdir8)
  for r1, r8 in zip(rows1, rows8):
    for key in pix2pix_task.LOSS_KEYS + ('D_real_mean', 'D_fake_mean'):
      if key in r1:
        np.testing.assert_allclose(r1[key], r8[key], rtol=DEVICE_COUNT_RTOL, err_msg=key)


def test_fsdp_shards_params_and_optimizer_state(tiny_dataset, tmp_path):
  """Params and Adam state sharded over 'data': trains, checkpoints, loads sharded."""
  summary = trainer.train_and_evaluate(
    tiny_train_config(tiny_dataset, fsdp=True, num_train_steps=2), str(tmp_path)
  )
  assert all(np.isfinite(summary[k]) for k in pix2pix_task.LOSS_KEYS)
  gen = inference.load_generator(str(tmp_path))
  kernel = gen.variables['params']['down_convs'][3]['kernel']  # (4, 4, 32, 64)
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, None, None, 'data')
  assert gen.generate(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 32, 32)


@pytest.mark.parametrize(
  'overrides, message',
  [
    ({'model.norm': 'layer'}, 'model.norm must be one of'),
    ({'image_size': 64}, 'has 32x32 mels'),
    ({'batch_size': 12, 'num_devices': 8}, 'divisible by the 8 devices'),
    ({'optimizer.decay_start_step': 99}, 'decay_start_step must be in'),
    ({'data_dir': '/nonexistent'}, 'is not a directory'),
  ],
)
def test_config_errors_are_clear_and_early(tiny_dataset, tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    trainer.train_and_evaluate(tiny_train_config(tiny_dataset, **overrides), str(tmp_path))
  assert not os.path.exists(tmp_path / 'checkpoints')  # failed before any work


def test_small_batches_use_fewer_devices(tiny_dataset):
  assert loop.mesh_size(tiny_train_config(tiny_dataset, batch_size=4)) == 4
  assert loop.mesh_size(tiny_train_config(tiny_dataset, batch_size=6)) == 6
  assert loop.mesh_size(tiny_train_config(tiny_dataset, batch_size=16)) == 8
  assert loop.mesh_size(tiny_train_config(tiny_dataset, batch_size=4, num_devices=2)) == 2


def test_unknown_config_field(tiny_dataset, tmp_path):
  config = tiny_train_config(tiny_dataset)
  config.model.lambda_l1 = 10.0  # typo of lambda_L1
  with pytest.raises(
    configs.ConfigError, match=r'unknown key model.lambda_l1 \(did you mean model.lambda_L1\?\)'
  ):
    trainer.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize(
  'override, message',
  [
    (
      '--config.model.lambda_l1=50',
      'error: Bad config: unknown key model.lambda_l1 (did you mean model.lambda_L1?)',
    ),
    ('--config.batchsize=2', 'error: Bad config: unknown key batchsize (did you mean batch_size?)'),
  ],
)
def test_cli_reports_a_mistyped_key_in_one_line_from_any_directory(
  tiny_dataset, tmp_path, override, message
):
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'pix2pitch_jax.train',
      f'--config={REPO}/experiments/tiny.py',
      f'--workdir={tmp_path}',
      f'--config.data_dir={tiny_dataset}',
      override,
    ],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, 'PYTHONPATH': REPO},
  )
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [message]


def test_cli_reports_a_bad_value_in_one_line(tiny_dataset, tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'pix2pitch_jax.train',
      '--config=experiments/tiny.py',
      f'--workdir={tmp_path}',
      f'--config.data_dir={tiny_dataset}',
      '--config.model.gan_mode=wgan',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    "error: Bad config: model.gan_mode must be one of ('vanilla', 'lsgan'), got 'wgan'"
  )


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
  real_step = pix2pix_task.train_step

  def poisoned_step(nets, model_config, state, batch):
    new_state, metrics = real_step(nets, model_config, state, batch)
    poison = jax.numpy.where(state['progress']['step'] >= 2, jax.numpy.nan, 0.0)
    return new_state, dict(metrics, G_GAN=metrics['G_GAN'] + poison)

  monkeypatch.setattr(pix2pix_task, 'train_step', poisoned_step)
  with pytest.raises(
    FloatingPointError, match=r'non-finite .* step 3: .*G_GAN.*step 2\) is intact'
  ):
    trainer.train_and_evaluate(tiny_train_config(tiny_dataset), str(tmp_path))
  assert checkpointing.Checkpointer(str(tmp_path), read_only=True).all_steps() == [2]


def test_rerun_resumes_from_the_latest_checkpoint(trained, tiny_dataset, tmp_path):
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(trained[0], workdir)
  summary = trainer.train_and_evaluate(tiny_train_config(tiny_dataset, num_train_steps=6), workdir)
  assert summary['resumed_from'] == 4 and summary['step'] == 6


def test_load_generator_generates_deterministically(trained):
  workdir, _ = trained
  gen = inference.load_generator(workdir)
  assert gen.step == 4 and gen.image_size == 32 and gen.meta.era_names == ('baroque', 'romanticism')
  assert gen.config.model.ngf == 8
  paintings = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  mels = gen.generate(paintings)  # 3 examples padded to the 8 devices
  assert mels.shape == (3, 32, 32) and mels.dtype == np.float32
  assert np.abs(mels).max() <= 1.0
  np.testing.assert_allclose(gen.generate(paintings[1:2])[0], mels[1], atol=1e-6)
  np.testing.assert_array_equal(gen.generate(paintings), mels)
  assert inference.load_generator(workdir, checkpoint=2).step == 2
  with pytest.raises(ValueError, match='uint8'):
    gen.generate(paintings.astype(np.float32))
  with pytest.raises(FileNotFoundError, match='checkpoint 3 not in'):
    inference.load_generator(workdir, checkpoint=3)


def test_ema_update_follows_its_warmup_then_the_decay():
  ema, new = {'w': np.float32(1.0)}, {'w': np.float32(3.0)}
  # Step 0: decay min(0.999, 1/10) = 0.1 -> 0.1 * 1 + 0.9 * 3.
  out = pix2pix_task.ema_update(ema, new, np.int32(0), 0.999)
  np.testing.assert_allclose(out['w'], 2.8, rtol=1e-6)
  # Step 10 000: (1 + t) / (10 + t) = 0.9991 > 0.999, so the decay itself.
  out = pix2pix_task.ema_update(ema, new, np.int32(10_000), 0.999)
  np.testing.assert_allclose(out['w'], 0.999 * 1 + 0.001 * 3, rtol=1e-6)


def test_generator_ema_is_checkpointed_and_used_by_default(trained):
  workdir, _ = trained
  assert (checkpointing.checkpoint_dir(workdir) / '4' / 'generator_ema').is_dir()
  paintings = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  ema, raw = inference.load_generator(workdir), inference.load_generator(workdir, weights='raw')
  assert (ema.weights, raw.weights) == ('ema', 'raw')
  assert not np.allclose(ema.generate(paintings), raw.generate(paintings), rtol=1e-3, atol=1e-6)
  with pytest.raises(ValueError, match='weights must be one of'):
    inference.load_generator(workdir, weights='best')


def test_runs_without_a_moving_average_load_their_weights(tiny_dataset, tmp_path):
  workdir = str(tmp_path / 'no_ema')
  config = tiny_train_config(tiny_dataset, num_train_steps=2, **{'model.ema_decay': 0.0})
  trainer.train_and_evaluate(config, workdir)
  assert inference.load_generator(workdir).weights == 'raw'


def test_l1_only_training_leaves_the_discriminator_untouched(tiny_dataset, tmp_path):
  config = tiny_train_config(tiny_dataset, num_train_steps=2, **{'model.lambda_GAN': 0.0})
  meta = records.read_meta(tiny_dataset)
  task = pix2pix_task.Pix2PixTask(config, meta)
  state = jax.jit(task.init_state)()
  batch = next(task.train_iterator(0))
  new_state, metrics = jax.jit(task.train_step)(state, batch)
  assert not any(k.startswith('D_') or k == 'G_GAN' for k in metrics)
  np.testing.assert_allclose(metrics['G_loss'], config.model.lambda_L1 * metrics['G_L1'], rtol=1e-6)
  same = jax.tree.map(np.array_equal, new_state['discriminator'], state['discriminator'])
  assert all(jax.tree.leaves(same))
  changed = jax.tree.map(np.array_equal, new_state['generator'], state['generator'])
  assert not all(jax.tree.leaves(changed))
  with pytest.raises(configs.ConfigError, match='both 0'):
    pix2pix_task.validate_config(
      tiny_train_config(tiny_dataset, **{'model.lambda_GAN': 0.0, 'model.lambda_L1': 0.0})
    )
