"""The cyclegan family: the image pool, unpaired input, training on 1 and 8 devices, kill -9 and
resume bit-identical (image pools included), and the generators restored for inference."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from pix2pitch_jax import inference
from pix2pitch_jax.core import configs
from pix2pitch_jax.data import input_pipeline, records
from pix2pitch_jax.runtime import checkpointing, sharding
from pix2pitch_jax.training import cyclegan_task, loop, trainer

from conftest import EXPERIMENTS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = EXPERIMENTS / 'cyclegan_tiny.py'
# 1 and 8 devices: the first step's losses agree to float reassociation of the sharded
# reductions. Later ones drift further: Adam's first updates are ~lr * sign(gradient), so a
# gradient that is ~0 up to that reassociation moves its weight by +-lr on one device count and
# -+lr on the other, and two adversarial games in a loop carry it on (2e-3 relative at step 4).
FIRST_STEP_RTOL = 1e-5
LATER_STEPS_RTOL = 1e-2
# One worker runs this module, so the module's trained fixture (a compile of ~1-2 CPU minutes) is
# built once, not once per worker (`make test` runs pytest with --dist loadgroup).
pytestmark = pytest.mark.xdist_group('cyclegan')


def tiny_cyclegan_config(data_dir, /, **overrides):
  config = configs.load_config_file(TINY)
  config.data_dir = data_dir
  return configs.apply_overrides(config, overrides)


def read_metrics(workdir):
  import json

  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_image_pool_fills_then_swaps_half():
  pool = jnp.zeros((4, 2, 2, 1))
  images = jnp.arange(1.0, 7.0)[:, None, None, None] * jnp.ones((6, 2, 2, 1))
  out, pool, count = cyclegan_task.query_pool(pool, jnp.int32(0), images, jax.random.key(0))
  # The first four fill the pool and come back as they are.
  np.testing.assert_array_equal(np.asarray(out[:4, 0, 0, 0]), [1, 2, 3, 4])
  assert int(count) == 4
  # Once full, an image either comes back or is swapped for a pooled one, which it replaces.
  pooled = set(np.asarray(pool[:, 0, 0, 0]).tolist())
  for i, value in enumerate(np.asarray(out[4:, 0, 0, 0]).tolist(), start=5):
    assert value == i or (value in {1, 2, 3, 4} and i in pooled)
  fresh = jnp.arange(100.0, 500.0)[:, None, None, None] * jnp.ones((400, 2, 2, 1))
  out, _, _ = cyclegan_task.query_pool(pool, count, fresh, jax.random.key(1))
  swapped = float((np.asarray(out[:, 0, 0, 0]) != np.asarray(fresh[:, 0, 0, 0])).mean())
  assert 0.4 < swapped < 0.6  # about half


def test_unpaired_batches_draw_the_two_sides_apart(tiny_dataset):
  batches = input_pipeline.UnpairedBatches(
    tiny_dataset, seed=0, global_batch_size=8, process_index=0, process_count=1
  )
  try:
    batch = next(batches)
  finally:
    batches.close()
  assert batch['painting'].shape == (8, 32, 32, 3) and batch['mel'].shape == (8, 32, 32)
  # The tiny set's mel is the painting's grey level: a row whose mel matches its painting is a
  # record's own pair. Independent shuffles leave few of those.
  grey = batch['painting'].astype(np.float32).mean(axis=-1) / 127.5 - 1.0
  paired = [np.allclose(g, m, atol=1e-2) for g, m in zip(grey, batch['mel'].astype(np.float32))]
  assert sum(paired) <= 2, paired
  assert sorted(batch['painting_index'].tolist()) == list(range(8))


def test_bad_cyclegan_config_is_one_line(tiny_dataset):
  config = tiny_cyclegan_config(tiny_dataset, **{'cyclegan.generator': 'resnet_9'})
  with pytest.raises(configs.ConfigError, match='cyclegan.generator must be one of'):
    trainer.make_task(config)


@pytest.fixture(scope='module')
def trained(tiny_dataset, tmp_path_factory):
  """4 steps on 8 devices, checkpoints at 2 and 4, one validation at the end."""
  workdir = str(tmp_path_factory.mktemp('cyclegan'))
  summary = trainer.train_and_evaluate(tiny_cyclegan_config(tiny_dataset), workdir)
  return workdir, summary


@pytest.mark.slow
def test_tiny_cyclegan_trains(trained, tiny_dataset):
  workdir, summary = trained
  assert summary['step'] == 4
  for key in cyclegan_task.LOSS_KEYS + ('idt_mel', 'idt_picture', 'G_loss', 'D_loss'):
    assert np.isfinite(summary[key]), key
  # LSGAN near the start: D outputs near 0, each D loss near 0.5 * (1 + 0).
  for domain in ('picture', 'mel'):
    assert 0.1 < summary[f'D_{domain}'] < 1.5
  # tanh outputs against targets in [-1, 1]: cycle errors well inside (0, 2).
  for key in ('cycle_picture', 'cycle_mel', 'val_cycle_picture', 'val_cycle_mel'):
    assert 0.0 < summary[key] < 1.0, key
  lrs = [r['lr'] for r in read_metrics(workdir) if 'lr' in r]
  np.testing.assert_allclose(lrs, [2e-4, 2e-4, 2e-4, 1e-4], rtol=1e-6)
  step, state = _restore(tiny_dataset, workdir)
  assert step == 4
  # 4 steps of 8 generated images per domain into pools of 10: full, and holding generated
  # images (tanh outputs), not the zeros they started as.
  pools = state['image_pools']
  assert int(pools['count']) == 10
  assert np.abs(np.asarray(pools['mel'])).reshape(10, -1).max(axis=1).min() > 0


@pytest.mark.slow
def test_one_and_eight_devices_give_the_same_losses(trained, tiny_dataset, tmp_path):
  workdir8, _ = trained
  trainer.train_and_evaluate(tiny_cyclegan_config(tiny_dataset, num_devices=1), str(tmp_path))
  rows1, rows8 = read_metrics(str(tmp_path)), read_metrics(workdir8)
  compared = 0
  for r1, r8 in zip(rows1, rows8):
    for key in cyclegan_task.LOSS_KEYS + ('idt_mel', 'idt_picture', 'val_cycle_mel'):
      if key in r1:
        rtol = FIRST_STEP_RTOL if r1['step'] == 1 else LATER_STEPS_RTOL
        np.testing.assert_allclose(r1[key], r8[key], rtol=rtol, err_msg=f'{key} {r1["step"]}')
        compared += 1
  assert compared >= 4 * len(cyclegan_task.LOSS_KEYS)


def _restore(data_dir, workdir, **overrides):
  config = tiny_cyclegan_config(data_dir, **overrides)
  task = cyclegan_task.CycleGANTask(config, records.read_meta(data_dir))
  target, _ = loop.abstract_state(task, sharding.make_mesh())
  return checkpointing.Checkpointer(workdir, read_only=True).restore(target)


def _start(data_dir, workdir, overrides):
  flags = [f'--config={TINY}', f'--workdir={workdir}', f'--config.data_dir={data_dir}']
  flags += [f'--config.{k}={v}' for k, v in overrides.items()]
  # The child inherits XLA_FLAGS (8 CPU devices) and the compile cache from conftest.
  return subprocess.Popen(
    [sys.executable, '-m', 'pix2pitch_jax.train', *flags],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_identical(trained, tiny_dataset, tmp_path):
  """The image pools and their draws are part of the state: a run killed with kill -9 and
  resumed ends where the uninterrupted `trained` run did (the same step program, so the compile
  cache serves the subprocesses)."""
  reference, _ = trained
  overrides = dict(checkpoint_every_steps=1)  # a checkpoint to resume from after the first step
  workdir = str(tmp_path / 'killed')
  proc = _start(tiny_dataset, workdir, overrides)
  first = os.path.join(workdir, 'checkpoints', '1')
  deadline = time.time() + 300
  while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  if proc.poll() is not None:
    pytest.fail(f'run ended before it could be killed:\n{proc.stdout.read()[-3000:]}')
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = checkpointing.Checkpointer(workdir, read_only=True).latest_step()
  assert killed_at is not None and killed_at < 4, 'the run was not interrupted'

  proc = _start(tiny_dataset, workdir, overrides)
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-3000:]
  assert f'Resumed from checkpoint step {killed_at}' in out

  (step_a, a), (step_b, b) = _restore(tiny_dataset, reference), _restore(tiny_dataset, workdir)
  assert step_a == step_b == 4
  assert set(a) == set(b) and 'image_pools' in a
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
def test_generators_restore_without_the_training_loop(trained, tiny_dataset):
  workdir, _ = trained
  test = records.read_split(tiny_dataset, 'test')
  to_picture = inference.load_translator(workdir)  # sound -> picture, moving average
  assert to_picture.step == 4 and to_picture.weights == 'ema'
  pictures = to_picture.pictures(test['mel'])
  assert pictures.shape == (4, 32, 32, 3) and pictures.dtype == np.uint8
  assert len({p.tobytes() for p in pictures}) == 4  # each mel its own picture
  raw = inference.load_translator(workdir, weights='raw').pictures(test['mel'])
  assert not np.array_equal(raw, pictures)
  # The picture -> mel direction, and the same through pix2pix's interface (generation and
  # evaluation run on a CycleGAN workdir unchanged).
  to_mel = inference.load_translator(workdir, 'picture_to_mel')
  mels = to_mel.mels(test['painting'])
  assert mels.shape == (4, 32, 32) and np.abs(mels).max() <= 1.0
  generator = inference.load_generator(workdir)
  np.testing.assert_allclose(generator.generate(test['painting']), mels, atol=1e-5)
  with pytest.raises(ValueError, match='runs mel_to_picture'):
    to_picture.mels(test['painting'])


# ----------------------------------------------------------------------------- the visualiser


def _tone_wav(path, seconds=6.0, rate=22_050):
  """A quiet low tone, then a loud high one: the pictures must change with the sound."""
  t = np.arange(int(seconds * rate)) / rate
  half = t < seconds / 2
  samples = np.where(half, 0.05, 0.8) * np.sin(2 * np.pi * np.where(half, 220.0, 1760.0) * t)
  soundfile.write(path, samples.astype(np.float32), rate)
  return path


@pytest.mark.slow
def test_visualiser_writes_a_video_in_sync_with_the_audio(trained, tmp_path):
  import imageio_ffmpeg

  from pix2pitch_jax.generation import gallery, visualiser

  workdir, _ = trained
  wav = _tone_wav(tmp_path / 'tone (1).wav')
  result = visualiser.visualise(workdir, wav, tmp_path / 'out', fps=10, smooth_s=0.0)
  assert result.video.name == 'tone_1_.mp4' and result.frames == 60
  assert abs(visualiser.probe_duration(result.video) - 6.0) < 0.1
  reader = imageio_ffmpeg.read_frames(str(result.video))
  next(reader)  # the stream's metadata
  frames = np.stack([np.frombuffer(f, np.uint8) for f in reader]).astype(np.float32)
  assert len(frames) == 60
  # The dataset's clips are 2 s: the windows of frames 20-29 hold the steady quiet tone alone,
  # those of 50-59 the loud one. Frames barely move within a steady sound and change across.
  within = np.abs(frames[21] - frames[29]).mean()
  across = np.abs(frames[29] - frames[59]).mean()
  assert across > 2.0 and across > 3 * within, (within, across)
  if gallery.find_chromium_or_none():
    (video,) = gallery.probe_media_elements(result.index_html, 'video')
    assert video['src'] == 'tone_1_.mp4' and video['state'] == 'ready'
    assert video['duration'] == pytest.approx(6.0, abs=0.1)


@pytest.mark.slow
def test_sound_gallery_draws_the_trained_models_pictures(trained, tiny_dataset, tmp_path):
  from PIL import Image

  from pix2pitch_jax.generation import sound_gallery

  workdir, _ = trained
  result = sound_gallery.draw(workdir, tmp_path / 'out', split='test', griffin_lim_iters=2)
  assert result['count'] == 4 and result['step'] == 4
  # The pictures on the page are the translator's pictures of the split's mels.
  expected = inference.load_translator(workdir).pictures(
    records.read_split(tiny_dataset, 'test')['mel']
  )
  for i, stem in enumerate(('te0', 'te1', 'te2', 'te3')):
    drawn = np.asarray(Image.open(tmp_path / 'out' / f'{stem}_picture.png'))
    np.testing.assert_array_equal(drawn, expected[i])


def test_visualiser_refuses_a_non_audio_file_in_one_line(tmp_path):
  bad = tmp_path / 'notes.mp3'
  bad.write_text('not audio')
  out = subprocess.run(
    [
      sys.executable,
      '-m',
      'pix2pitch_jax.visualise',
      f'--workdir={tmp_path}',
      f'--audio={bad}',
      f'--out={tmp_path / "out"}',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 1
  assert (
    out.stderr.strip().splitlines()[-1].startswith(f'error: {bad} is not a readable audio file')
  )


# ----------------------------------------------------------------------------- evaluation


def test_diversity_and_bootstrap_helpers():
  from pix2pitch_jax.evaluation import cyclegan_eval

  same = np.zeros((5, 4, 4, 3), np.float32)
  assert cyclegan_eval.pairwise_diversity(same) == 0.0
  varied = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 4, 4, 3))
  assert cyclegan_eval.pairwise_diversity(varied) > 1.0
  x = np.arange(20.0)
  assert cyclegan_eval.bootstrap_spearman(x, 2 * x + 1) == pytest.approx((1.0, 1.0))
  low, high = cyclegan_eval.bootstrap_spearman(x, np.random.default_rng(0).normal(size=20))
  assert -1.0 <= low < 0.0 < high <= 1.0


@pytest.mark.slow
def test_cyclegan_evaluation_writes_correlations_cycles_and_diversity(trained):
  from pix2pitch_jax.evaluation import cyclegan_eval

  workdir, _ = trained
  result = cyclegan_eval.evaluate(workdir, split='test')
  m = result['metrics']
  assert m['n'] == 4 and m['step'] == 4 and m['systems'] == list(cyclegan_eval.SYSTEMS)
  assert len(m['rule_correlations']) == 4
  for row in m['rule_correlations'].values():
    for system in m['systems']:
      assert np.isnan(row[system]) or -1.0 <= row[system] <= 1.0
  for system in ('model', 'untrained'):
    for value in m['cycle_l1'][system].values():
      assert 0.0 < value < 2.0
  assert m['diversity_ratio']['pictures'] > 0 and m['diversity_ratio']['mels'] > 0
  assert os.path.exists(result['metrics_json'])
  with open(result['report_md']) as f:
    report = f.read()
  assert '## Cycle consistency' in report and 'pitch -> height' in report


def test_both_generator_kinds_map_between_the_domains():
  from flax import nnx

  from pix2pitch_jax.models import cyclegan

  config = configs.load_config_file(TINY)
  pictures = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1.0, maxval=1.0)
  mels = pictures[..., :1]
  for kind in ('resnet', 'unet'):
    config.cyclegan.generator = kind
    to_mel = cyclegan.make_generator(config, cyclegan.PICTURE_TO_MEL, nnx.Rngs(params=0))
    to_picture = cyclegan.make_generator(config, cyclegan.MEL_TO_PICTURE, nnx.Rngs(params=1))
    made_mels, made_pictures = to_mel(pictures), to_picture(mels)
    assert made_mels.shape == (2, 32, 32, 1) and made_pictures.shape == (2, 32, 32, 3), kind
    assert float(jnp.abs(made_pictures).max()) <= 1.0 and float(made_mels.std()) > 0, kind
  with pytest.raises(ValueError, match='direction must be one of'):
    cyclegan.channels('sound_to_sound')


def test_demo_generator_is_sized_for_the_visualiser():
  """experiments/cyclegan_demo.py's generators halve three times (64 channels at S/8) with 3x3
  edges: about a quarter of the reference geometry's cost at 128x128, so bench/visualise.py
  reaches 30 frames/s on 2 CPU cores."""
  from flax import nnx

  from pix2pitch_jax.models import cyclegan

  config = configs.load_config_file(EXPERIMENTS / 'cyclegan_demo.py')
  generator = cyclegan.make_generator(config, cyclegan.MEL_TO_PICTURE, nnx.Rngs(params=0))
  assert len(generator.downs) == 3 and len(generator.blocks) == 6
  assert generator.blocks[0].conv1.kernel.value.shape == (3, 3, 64, 64)
  assert generator.stem.kernel.value.shape == (3, 3, 1, 8)
  graphdef, state = nnx.split(generator)
  apply = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
  cost = apply.lower(state, jax.ShapeDtypeStruct((1, 128, 128, 1), jnp.float32)).cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  assert 0.30e9 < cost['flops'] < 0.40e9  # the reference geometry at ngf 16: 1.32e9
  pictures = generator(jnp.zeros((2, 16, 16, 1)))
  assert pictures.shape == (2, 16, 16, 3)
  with pytest.raises(ValueError, match='divisible by 8 and >= 16'):
    generator(jnp.zeros((1, 12, 12, 1)))


def test_generator_geometry_is_checked_in_one_line(tiny_dataset):
  for key, value, message in [
    ('cyclegan.edge_kernel', 4, 'cyclegan.edge_kernel must be odd'),
    ('cyclegan.downsampling', 0, 'cyclegan.downsampling must be >= 1'),
    ('cyclegan.downsampling', 6, r'image_size=32 must be divisible by 2\*\*cyclegan.downsampling'),
  ]:
    config = tiny_cyclegan_config(tiny_dataset, **{key: value})
    with pytest.raises(configs.ConfigError, match=message):
      trainer.make_task(config)
