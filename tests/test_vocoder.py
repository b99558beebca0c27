"""The neural vocoder: audio in the records, the 'vocoder' training family (learning, kill -9 and
resume bit-identical), inference, and generation and evaluation with --vocoder=neural."""

import json
import os
import signal

import jax
import numpy as np
import pytest
import soundfile
from test_train_resume import _start, _wait_for

from pix2pitch_jax import inference, inference_vocoder, vocoders
from pix2pitch_jax.audio import spectrogram, stft_distance
from pix2pitch_jax.core import configs
from pix2pitch_jax.data import input_pipeline, records
from pix2pitch_jax.generation import job as generation_job
from pix2pitch_jax.runtime import checkpointing, sharding
from pix2pitch_jax.training import loop, trainer, vocoder_task

from conftest import EXPERIMENTS, TINY_ERAS, TinyRuleGenerator

# The tiny dataset's audio parameters (conftest.write_tiny_dataset), so a generator stub of that
# dataset and this vocoder agree.
PARAMS = spectrogram.MelParams(image_size=32, clip_seconds=2.0, n_fft=512)
# One worker runs this module, so its trained vocoder is built once (`make test`: --dist loadgroup).
pytestmark = pytest.mark.xdist_group('vocoder')


def _tones(rng: np.random.Generator) -> np.ndarray:
  """Two or three decaying harmonic notes: something with pitch, onsets and silence."""
  t = np.arange(PARAMS.clip_samples) / PARAMS.sample_rate
  y = np.zeros_like(t)
  for _ in range(int(rng.integers(2, 4))):
    f0, start = 110.0 * 2 ** (rng.integers(0, 24) / 12), rng.uniform(0, 1.5)
    env = np.where(t >= start, np.exp(-3.0 * (t - start)), 0.0)
    y += sum(env * np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
  return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def write_audio_dataset(data_dir, sizes=(('train', 16), ('validation', 4), ('test', 4))):
  meta = records.DatasetMeta(PARAMS, TINY_ERAS, source='tests:tones', stores_audio=True)
  for k, (split, n) in enumerate(sizes):
    rng = np.random.default_rng(k)
    examples = []
    for i in range(n):
      audio = _tones(rng)
      examples.append(
        dict(
          painting=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
          mel=spectrogram.audio_to_mel_image(audio, PARAMS),
          audio=audio,
          era=i % 2,
          painting_id=f'{split}{i}',
          clip_source_id=f'{split}src{i}',
          clip_offset_s=0.0,
        )
      )
    records.write_split(data_dir, split, examples, meta, num_shards=2 if n >= 8 else 1)
  records.write_metadata(data_dir, meta)
  return str(data_dir)


@pytest.fixture(scope='module')
def audio_dataset(tmp_path_factory):
  return write_audio_dataset(tmp_path_factory.mktemp('audio_dataset'))


def vocoder_config(data_dir, **overrides):
  config = configs.load_config_file(EXPERIMENTS / 'vocoder_tiny.py')
  config.data_dir = data_dir
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.fixture(scope='module')
def trained_vocoder(audio_dataset, tmp_path_factory):
  """A tiny vocoder trained 24 steps (the resume test's uninterrupted reference run)."""
  workdir = str(tmp_path_factory.mktemp('vocoder'))
  config = vocoder_config(audio_dataset, num_train_steps=24, checkpoint_every_steps=6)
  config.optimizer.decay_start_step = 12
  summary = trainer.train_and_evaluate(config, workdir)
  return workdir, summary


def test_audio_round_trips_through_the_records(audio_dataset, tiny_dataset):
  assert records.stores_audio(audio_dataset) and not records.stores_audio(tiny_dataset)
  fast = records.TrainFieldsSource(audio_dataset, 'validation', ('mel', 'audio'))
  full = records.open_split(audio_dataset, 'validation')
  rng = np.random.default_rng(1)  # the validation split's generator in write_audio_dataset
  for i in range(len(fast)):
    expected = records.audio_to_pcm(_tones(rng))
    rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # the painting drawn after it
    np.testing.assert_array_equal(fast[i]['audio'], expected)
    np.testing.assert_array_equal(np.asarray(full[i]['audio']), expected)
  batch = next(input_pipeline.eval_batches(audio_dataset, 'test', global_batch_size=4, keys=FIELDS))
  assert batch['audio'].shape == (4, PARAMS.clip_samples) and batch['audio'].dtype == np.float32
  assert np.abs(batch['audio']).max() <= 1.0
  # Datasets without audio still read, and the vocoder family says what is missing.
  assert set(records.TrainFieldsSource(tiny_dataset, 'train')[0]) == {'painting', 'mel', 'era'}
  with pytest.raises(configs.ConfigError, match='stores none: rebuild it with data_prep'):
    trainer.make_task(vocoder_config(tiny_dataset))


FIELDS = ('mel', 'audio')


def test_stft_distance_is_zero_for_equal_clips_and_grows_with_noise():
  rng = np.random.default_rng(0)
  clean = np.stack([_tones(rng) for _ in range(2)])
  noise = rng.normal(size=clean.shape).astype(np.float32)
  distance = lambda y: np.asarray(stft_distance.multi_resolution_stft_distance(clean, y))
  assert np.allclose(distance(clean), 0.0, atol=1e-5)
  a, b = distance(clean + 0.01 * noise), distance(clean + 0.1 * noise)
  assert (a > 0.05).all() and (b > a).all()


@pytest.mark.slow
def test_tiny_vocoder_learns_and_inference_writes_audio(trained_vocoder, audio_dataset):
  workdir, summary = trained_vocoder
  assert summary['step'] == 24 and np.isfinite(summary['val_mrstft'])
  logged = [
    json.loads(line)
    for line in (open(os.path.join(workdir, 'metrics.jsonl')).read().splitlines())
    if '"mrstft"' in line
  ]
  first, last = logged[0]['mrstft'], logged[-1]['mrstft']
  assert last < 0.8 * first, (first, last)

  vocoder = inference_vocoder.load_vocoder(workdir)
  assert vocoder.step == 24 and vocoder.weights == 'ema'
  mels = records.read_split(audio_dataset, 'test')['mel']
  clips = vocoder.mels_to_audio(mels, batch_size=3)
  assert clips.shape == (4, PARAMS.clip_samples) and np.isfinite(clips).all()
  assert np.abs(clips).max() > 1e-3  # not silence
  # Deterministic and independent of the batch a mel lands in.
  np.testing.assert_allclose(vocoder.mels_to_audio(mels[2:3]), clips[2:3], atol=1e-5)
  with pytest.raises(ValueError, match='trained on other mels'):
    vocoder.check_compatible(
      spectrogram.MelParams(sample_rate=16_000, image_size=32, clip_seconds=2.0, n_fft=512)
    )


def _restore(data_dir, workdir, config):
  task = vocoder_task.VocoderTask(config, records.read_meta(data_dir))
  target, _ = loop.abstract_state(task, sharding.make_mesh())
  return checkpointing.Checkpointer(workdir, read_only=True).restore(target)


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_identical(trained_vocoder, audio_dataset, tmp_path):
  reference, _ = trained_vocoder
  workdir = str(tmp_path / 'killed')
  flags = [
    '--config=experiments/vocoder_tiny.py',
    f'--workdir={workdir}',
    f'--config.data_dir={audio_dataset}',
    '--config.num_train_steps=24',
    '--config.checkpoint_every_steps=6',
    '--config.optimizer.decay_start_step=12',
  ]
  proc = _start(flags)
  if not _wait_for(lambda: os.path.isdir(os.path.join(workdir, 'checkpoints', '6')), proc):
    pytest.fail(f'run ended before its first checkpoint:\n{proc.stdout.read()[-3000:]}')
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = checkpointing.Checkpointer(workdir, read_only=True).latest_step()
  assert killed_at is not None and killed_at < 24, 'the run was not interrupted'

  proc = _start(flags)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  assert f'Resumed from checkpoint step {killed_at}' in out

  config = vocoder_config(audio_dataset, num_train_steps=24)
  config.optimizer.decay_start_step = 12
  (step_a, a), (step_b, b) = (
    _restore(audio_dataset, reference, config),
    _restore(audio_dataset, workdir, config),
  )
  assert step_a == step_b == 24
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
def test_generate_with_the_neural_vocoder_writes_wavs(
  trained_vocoder, audio_dataset, tmp_path, monkeypatch
):
  vocoder_workdir, _ = trained_vocoder
  monkeypatch.setattr(
    inference,
    'load_generator',
    lambda workdir, checkpoint='latest', weights='ema': TinyRuleGenerator(audio_dataset),
  )
  generator_workdir = tmp_path / 'run'
  with pytest.raises(vocoders.VocoderUnavailable, match='^no trained vocoder: '):
    generation_job.generate(
      generator_workdir, tmp_path / 'x', split='test', vocoder_names=['neural']
    )
  with pytest.raises(inference_vocoder.VocoderNotFoundError, match='no trained vocoder'):
    generation_job.generate(
      generator_workdir,
      tmp_path / 'y',
      split='test',
      vocoder_names=['neural'],
      vocoder_workdir=tmp_path / 'empty',
    )

  out = tmp_path / 'out'
  result = generation_job.generate(
    generator_workdir,
    out,
    split='test',
    vocoder_names=['neural', 'griffin_lim'],
    vocoder_workdir=vocoder_workdir,
    griffin_lim_iters=4,
  )
  assert result['count'] == 4
  manifest = json.loads((out / 'manifest.json').read_text())
  about = manifest['vocoders']['neural']
  assert about['kind'] == 'neural' and about['step'] == 24
  for entry in manifest['entries']:
    # The first vocoder is the main player.
    assert entry['audio'] == entry['renderings'][0]['audio'] and entry['audio'].endswith(
      '_neural.wav'
    )
    names = [r['audio'] for r in entry['renderings']] + [entry['reference_audio']]
    assert len(names) == 3
    for name in names:
      clip, rate = soundfile.read(out / name)
      assert rate == PARAMS.sample_rate and clip.shape == (PARAMS.clip_samples,)
      assert np.isfinite(clip).all() and np.abs(clip).max() > 1e-3


@pytest.mark.slow
def test_evaluate_scores_the_neural_vocoder(trained_vocoder, audio_dataset, tmp_path, monkeypatch):
  from pix2pitch_jax.evaluation import job as evaluation_job
  from pix2pitch_jax.evaluation import metrics
  from pix2pitch_jax.models import era_classifier as era_model

  vocoder_workdir, _ = trained_vocoder
  monkeypatch.setattr(
    inference,
    'load_generator',
    lambda workdir, checkpoint='latest', weights='ema': TinyRuleGenerator(audio_dataset),
  )
  with pytest.raises(vocoders.VocoderUnavailable, match='^no trained vocoder: '):
    evaluation_job.evaluate(tmp_path / 'bare', split='test', vocoder_names=['neural'])
  result = evaluation_job.evaluate(
    tmp_path / 'run',
    split='test',
    griffin_lim_iters=2,
    classifier_config=era_model.ClassifierConfig(
      features=(8,), embedding_dim=8, num_steps=4, batch_size=8
    ),
    vocoder_names=['neural', 'griffin_lim'],
    vocoder_workdir=vocoder_workdir,
  )
  scored = result['metrics']['vocoders']
  assert scored['neural']['about'] == {
    'kind': 'neural',
    'method': 'neural vocoder (Vocos-style, trained on the dataset)',
    'workdir': str(vocoder_workdir),
    'step': 24,
    'weights': 'ema',
  }
  for name in ('neural', 'griffin_lim'):
    block = scored[name]['model']
    assert block['mel_consistency_n'] == 4 and np.isfinite(block['mel_consistency'])
    assert 0.0 <= block['chroma_distance'] <= 1.0
  # The real mels' block is the vocoder's own audio of them, scored against their mels.
  mels = records.read_split(audio_dataset, 'test', fields=('mel',))['mel']
  clips = inference_vocoder.load_vocoder(vocoder_workdir).mels_to_audio(mels)
  expected = np.mean(metrics.griffin_lim_consistency(mels, clips, PARAMS))
  assert scored['neural']['real']['mel_consistency'] == pytest.approx(float(expected), rel=1e-4)
  assert scored['neural']['real']['mel_consistency'] != pytest.approx(
    scored['griffin_lim']['real']['mel_consistency'], rel=1e-3
  )
