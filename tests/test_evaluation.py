"""The evaluation job on a tiny workdir: every metric present, model vs baselines, outputs."""

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest

from pix2pitch_jax import vocoders
from pix2pitch_jax.audio import soundfont
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import job as evaluation_job
from pix2pitch_jax.evaluation import metrics
from pix2pitch_jax.models import era_classifier as era_model
from pix2pitch_jax.training import summaries

TINY_CLASSIFIER = era_model.ClassifierConfig(
  features=(8, 16), embedding_dim=16, num_steps=30, batch_size=8
)
EAR_INSTALLED = all(importlib.util.find_spec(m) for m in ('basic_pitch', 'onnxruntime'))


def test_evaluate_writes_every_metric_with_baselines(stub_workdir):
  result = evaluation_job.evaluate(
    stub_workdir, split='test', griffin_lim_iters=4, classifier_config=TINY_CLASSIFIER
  )
  m = result['metrics']
  assert m['step'] == 4 and m['num_examples'] == 4
  for system in evaluation_job.SYSTEMS:
    for key in evaluation_job.IMAGE_METRICS + (
      'griffin_lim_consistency',
      'era_accuracy',
      'era_accuracy_real',
      'frechet_distance',
      'kernel_inception_distance',
      'kernel_inception_distance_ci95',
      'l1_db_ci95',
      'l1_db_n',
      'era_accuracy_ci95',
      'era_confusion',
      'diversity',
      'diversity_ratio',
      'chroma_distance',
      'spectral_centroid_hz/difference',
    ):
      assert key in m[system], (system, key)
    assert set(m[system]['per_era']) == {'baroque', 'romanticism'}
  # The copying generator reproduces the reference (up to its float16 storage): near-perfect
  # scores, better than the baselines.
  assert m['model']['l1_db'] < 0.05 and m['model']['ssim'] > 0.999
  assert m['model']['l1_db'] < m['retrieval']['l1_db']
  assert m['model']['l1_db'] < m['era_mean']['l1_db']
  assert m['model']['frechet_distance'] < 1e-3
  assert abs(m['model']['kernel_inception_distance']) < 1e-3
  assert m['model']['l1_db_n'] == 4 and m['model']['per_era']['baroque']['era_accuracy_n'] == 2
  assert m['model']['diversity_ratio'] == pytest.approx(1.0, abs=1e-3)
  # The era mean is one mel per era: no diversity within an era.
  assert m['era_mean']['diversity'] == pytest.approx(0.0, abs=1e-6)
  assert 0.0 <= m['real']['era_accuracy'] <= 1.0
  # The tiny set carries no notes: neither ear scores anything, and nothing says it did.
  note_keys = evaluation_job.NOTE_METRICS + evaluation_job.AUDIO_NOTE_METRICS
  assert not set(note_keys) & set(m['model']) and not set(note_keys) & set(m['real'])

  on_disk = json.loads(pathlib.Path(result['metrics_json']).read_text())
  assert on_disk['model']['l1_db'] == pytest.approx(m['model']['l1_db'])
  report = pathlib.Path(result['report_md']).read_text()
  assert '| l1_db |' in report and '## Per era' in report and '| baroque |' in report
  assert '## Era classifier confusion' in report and '### kernel_inception_distance' in report
  assert pathlib.Path(result['metrics_json']).name == 'metrics_4.json'
  tags = {
    v.tag
    for e in summaries.read_events(stub_workdir / 'tensorboard' / 'eval')
    for v in e.summary.value
  }
  assert {'model/l1_db', 'real/mel', 'model/mel', 'real/audio_1', 'era_mean/audio_0'} <= tags
  assert {'model/kernel_inception_distance', 'model/l1_db_ci95_low'} <= tags
  assert (stub_workdir / 'era_classifier' / workdir_lib.ERA_CLASSIFIER_INFO).exists()


HAND_MADE_ERAS = ('a', 'b', 'c')


def hand_made_rows(seed=0):
  """What `_score_all` reads for 12 examples of 3 eras (9, 2 and 1 examples), every system and
  'real', drawn at random: 8-d embeddings, 8x8 mels, note scores for all but 3 examples."""
  rng = np.random.default_rng(seed)
  eras = np.array([0] * 9 + [1] * 2 + [2])
  n = len(eras)
  rows = {'eras/era': eras}
  for group in ('real',) + evaluation_job.SYSTEMS:
    arrays = {
      'mels': rng.uniform(-1, 1, (n, 8, 8)),
      'embedding': rng.normal(size=(n, 8)),
      # Mostly right, so the confusion matrix has a diagonal.
      'predicted_era': np.where(rng.uniform(size=n) < 0.7, eras, rng.integers(0, 3, n)),
      'chroma': rng.dirichlet(np.ones(12), n),
      'has_notes': np.arange(n) % 4 != 3,
    }
    for key in evaluation_job.SPECTROGRAM_METRICS + metrics.DESCRIPTORS:
      arrays[key] = rng.uniform(0.1, 1.0, n)
    for key in evaluation_job.NOTE_METRICS:
      arrays[key] = np.where(arrays['has_notes'], rng.uniform(size=n), np.nan)
    rows |= {f'{group}/{k}': v for k, v in arrays.items()}
  return rows


def hand_made_result(rows):
  return {
    'step': 7,
    'split': 'test',
    'num_examples': len(rows['eras/era']),
    'era_names': list(HAND_MADE_ERAS),
    'griffin_lim_iters': 4,
    'mel_params': {'sample_rate': 8000},
    **evaluation_job._score_all(rows, HAND_MADE_ERAS),
  }


def test_job_intervals_are_the_bootstrap_intervals_of_the_examples():
  rows = hand_made_rows()
  result = hand_made_result(rows)
  interval = lambda values: list(
    metrics.bootstrap_interval(
      values,
      confidence=0.95,
      num_resamples=evaluation_job.BOOTSTRAP_RESAMPLES,
      seed=evaluation_job.BOOTSTRAP_SEED,
    )
  )
  model, notes = result['model'], rows['model/has_notes']
  assert model['l1_db_ci95'] == interval(rows['model/l1_db']) and model['l1_db_n'] == 12
  assert model['onset_f1_ci95'] == interval(rows['model/onset_f1'][notes])
  assert model['onset_f1_n'] == 9
  correct = rows['model/predicted_era'] == rows['eras/era']
  era_a = model['per_era']['a']
  assert era_a['era_accuracy_ci95'] == interval(correct[:9]) and era_a['era_accuracy_n'] == 9
  assert era_a['era_accuracy'] == pytest.approx(correct[:9].mean())
  low, high = model['kernel_inception_distance_ci95']
  assert low <= model['kernel_inception_distance'] <= high
  assert model['kernel_inception_distance'] == pytest.approx(
    metrics.kernel_inception_distance(rows['real/embedding'], rows['model/embedding'])
  )
  difference = rows['model/spectral_flatness'] - rows['real/spectral_flatness']
  assert model['spectral_flatness/difference'] == pytest.approx(difference.mean())
  assert model['spectral_flatness/difference_ci95'] == interval(difference)
  assert result['real']['era_accuracy_ci95'] == interval(
    rows['real/predicted_era'] == rows['eras/era']
  )


def test_kid_of_a_one_example_era_is_nan_and_the_json_round_trips(tmp_path):
  result = hand_made_result(hand_made_rows())
  one = result['model']['per_era']['c']
  assert one['kernel_inception_distance_n'] == 1 and np.isnan(one['kernel_inception_distance'])
  assert np.isnan(one['kernel_inception_distance_ci95']).all()
  assert np.isfinite(one['frechet_distance'])
  assert np.isfinite(result['model']['per_era']['b']['kernel_inception_distance'])  # 2 examples
  written = evaluation_job.write_outputs(workdir_lib.Workdir(tmp_path), result)
  on_disk = json.loads(pathlib.Path(written['metrics_json']).read_text())
  one = on_disk['model']['per_era']['c']
  assert one['kernel_inception_distance'] is None
  assert one['kernel_inception_distance_ci95'] == [None, None]
  assert on_disk['model']['l1_db_ci95'] == result['model']['l1_db_ci95']
  assert on_disk['retrieval']['era_confusion'] == result['retrieval']['era_confusion']
  assert on_disk['intervals']['num_resamples'] == evaluation_job.BOOTSTRAP_RESAMPLES
  tags = {
    v.tag for e in summaries.read_events(tmp_path / 'tensorboard' / 'eval') for v in e.summary.value
  }
  assert {
    'model/kernel_inception_distance',
    'model/l1_db_ci95_low',
    'real/era_accuracy_ci95_high',
  } <= tags
  assert 'model/l1_db_n' not in tags


def test_report_shows_intervals_n_and_confusion_matrices():
  rows = hand_made_rows()
  result = hand_made_result(rows)
  report = evaluation_job.render_report(result)
  fmt = evaluation_job._fmt
  with_interval = lambda block, key: (
    f'{fmt(block[key])} [{fmt(block[key + "_ci95"][0])}, {fmt(block[key + "_ci95"][1])}]'
  )
  model, real = result['model'], result['real']
  assert f'| l1_db | ↓ | 12 | {with_interval(model, "l1_db")} |' in report
  assert f'| onset_f1 | ↑ | 9 | {with_interval(model, "onset_f1")} |' in report
  assert (
    f'| kernel_inception_distance | ↓ | 12 | {with_interval(model, "kernel_inception_distance")} |'
    in report
  )
  assert '95% percentile bootstrap over the examples (1000 resamples, seed 0)' in report
  assert 'Fréchet distance is biased at small n' in report
  # Per era: n and intervals of the era accuracy and the F1s (the real mels' too).
  era_accuracy = report.split('### era_accuracy')[1].split('###')[0]
  a_model, a_real = model['per_era']['a'], real['per_era']['a']
  assert f'| a | 9 | {with_interval(a_model, "era_accuracy")} | ' in era_accuracy
  assert with_interval(a_real, 'era_accuracy') in era_accuracy
  onset = report.split('### onset_pitch_f1')[1].split('##')[0]
  assert f'| a | 7 | {with_interval(a_model, "onset_pitch_f1")} |' in onset
  assert with_interval(real['per_era']['b'], 'onset_pitch_f1') in onset
  # Confusion matrices: rows are the true era.
  for group in ('real',) + evaluation_job.SYSTEMS:
    table = (
      report.split('## Era classifier confusion')[1].split(f'### {group}\n')[1].split('###')[0]
    )
    counts = metrics.confusion_matrix(rows['eras/era'], rows[f'{group}/predicted_era'], 3)
    assert '| true \\ predicted | a | b | c |' in table
    for name, row in zip(HAND_MADE_ERAS, counts):
      assert f'| {name} | ' + ' | '.join(map(str, row)) + ' |' in table
    assert result[group]['era_confusion'] == {
      'era_names': list(HAND_MADE_ERAS),
      'counts': counts.tolist(),
    }


class _WithNotes:
  """A split whose examples all carry one note list (a stand-in for the synesthesia demo's)."""

  NOTES_JSON = '[[0.5, 0.5, 81, 80, 73]]'

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    return {**self.source[i], 'notes_json': self.NOTES_JSON}


@pytest.mark.parametrize('ear', ['installed', 'missing'])
def test_evaluate_scores_notes_with_both_ears(stub_workdir, monkeypatch, caplog, ear):
  """On a split with notes, both ears score every system and the real mels; without the ear's
  extra, one warning and its metrics are left out. (The tiny mels are noise: the scores are
  whatever they are, the test is about where they go.)"""
  if ear == 'installed' and not EAR_INSTALLED:
    pytest.skip('the `ear` extra (basic-pitch, onnxruntime) is not installed')
  if ear == 'missing':

    def unavailable():
      raise evaluation_job.independent_ear.EarUnavailable('the `ear` extra is not installed')

    monkeypatch.setattr(evaluation_job.independent_ear, 'check_available', unavailable)
  open_split = records.open_split

  def open_split_with_notes(data_dir, split):
    source = open_split(data_dir, split)
    return _WithNotes(source) if split == 'test' else source

  monkeypatch.setattr(records, 'open_split', open_split_with_notes)
  result = evaluation_job.evaluate(
    stub_workdir,
    split='test',
    max_examples=2,
    griffin_lim_iters=2,
    classifier_config=TINY_CLASSIFIER,
  )
  m = result['metrics']
  report = pathlib.Path(result['report_md']).read_text()
  listened = ear == 'installed'
  audio_keys = set(evaluation_job.AUDIO_NOTE_METRICS)
  for block in evaluation_job.SYSTEMS + ('real',):
    assert set(evaluation_job.NOTE_METRICS) <= set(m[block]), block
    assert audio_keys & set(m[block]) == (audio_keys if listened else set()), block
    assert all(0.0 <= m[block][k] <= 1.0 for k in audio_keys & set(m[block])), block
  assert '| onset_f1 |' in report
  assert ('| audio_onset_pitch_f1 |' in report) == listened
  assert ('basic-pitch (Spotify' in report) == listened
  warnings = [r for r in caplog.records if 'Audio note metrics left out' in r.getMessage()]
  assert len(warnings) == (0 if listened else 1)


class _HalfVolumeGriffinLim(vocoders.GriffinLim):
  """Stands in for a trained neural vocoder: Griffin-Lim's clips at half their amplitude."""

  @property
  def about(self):
    return {'kind': 'neural', 'method': 'stand-in', 'workdir': 'nowhere', 'step': 7}

  def render(self, mels, indices):
    return vocoders.Rendering(0.5 * super().render(mels, indices).clips)


def test_evaluate_scores_the_audio_of_each_vocoder(stub_workdir, monkeypatch):
  """Griffin-Lim and a second vocoder (and the MIDI route where FluidSynth is installed) each get
  the audio-side metrics of every system, with what the vocoder is; Griffin-Lim's match the
  metrics of the systems, which use the same clips."""
  monkeypatch.setitem(vocoders._REGISTRY, 'neural', _HalfVolumeGriffinLim)
  names = ('griffin_lim', 'neural') + (('midi',) if shutil.which('fluidsynth') else ())
  result = evaluation_job.evaluate(
    stub_workdir,
    split='test',
    griffin_lim_iters=2,
    classifier_config=TINY_CLASSIFIER,
    vocoder_names=names,
  )
  m = result['metrics']
  assert m['vocoder_names'] == list(names) and set(m['vocoders']) == set(names)
  for name in names:
    for system in evaluation_job.SYSTEMS:
      block = m['vocoders'][name][system]
      assert set(evaluation_job.VOCODER_METRICS) <= set(block), (name, system)
      assert block['mel_consistency_n'] == 4 and len(block['mel_consistency_ci95']) == 2
    assert m['vocoders'][name]['real']['mel_consistency'] >= 0.0
  gl, half = m['vocoders']['griffin_lim'], m['vocoders']['neural']
  assert gl['about'] == {
    'kind': 'griffin_lim',
    'method': 'Griffin-Lim (fast, momentum 0.99)',
    'iterations': 2,
  }
  assert half['about'] == {'kind': 'neural', 'method': 'stand-in', 'workdir': 'nowhere', 'step': 7}
  for system in evaluation_job.SYSTEMS:
    # Griffin-Lim's block is the systems' own audio metrics, on the same clips.
    assert gl[system]['mel_consistency'] == pytest.approx(m[system]['griffin_lim_consistency'])
    assert gl[system]['chroma_distance'] == pytest.approx(m[system]['chroma_distance'])
    # Half the amplitude: the audio's mel is 6 dB off the mel it came from, while the chroma and
    # the spectral centroid, which ignore the level, do not move.
    assert half[system]['mel_consistency'] > gl[system]['mel_consistency'] + 0.1
    assert half[system]['chroma_distance'] == pytest.approx(gl[system]['chroma_distance'], abs=1e-6)
    key = 'spectral_centroid_hz/difference'
    assert half[system][key] == pytest.approx(gl[system][key], rel=1e-4, abs=1e-3)
  if 'midi' in names:
    assert m['vocoders']['midi']['about']['soundfont'] == soundfont.find_soundfont().name
  on_disk = json.loads(pathlib.Path(result['metrics_json']).read_text())
  assert on_disk['vocoders']['neural']['model']['mel_consistency'] == pytest.approx(
    half['model']['mel_consistency']
  )
  report = pathlib.Path(result['report_md']).read_text()
  assert '## Audio by vocoder' in report and '### neural' in report
  assert 'stand-in; workdir nowhere; step 7' in report and '| mel_consistency |' in report
  tags = {
    v.tag
    for e in summaries.read_events(stub_workdir / 'tensorboard' / 'eval')
    for v in e.summary.value
  }
  assert {
    'vocoder_neural/model/mel_consistency',
    'vocoder_griffin_lim/real/mel_consistency',
  } <= tags


def test_a_missing_vocoder_stops_evaluation_in_one_line_first(stub_workdir):
  with pytest.raises(vocoders.VocoderUnavailable, match='^no trained vocoder: '):
    evaluation_job.evaluate(stub_workdir, split='test', vocoder_names=['griffin_lim', 'neural'])
  with pytest.raises(vocoders.VocoderUnavailable, match="unknown vocoder 'hifigan'"):
    evaluation_job.evaluate(stub_workdir, split='test', vocoder_names=['hifigan'])
  assert not (stub_workdir / 'era_classifier').exists()  # nothing scored or trained before


def test_retrieval_finds_the_same_painting(tiny_dataset):
  summary = evaluation_job.summarize_training_split(tiny_dataset, num_eras=2)
  train = evaluation_job.load_eval_set(tiny_dataset, 'train', max_examples=5)
  np.testing.assert_allclose(
    evaluation_job.retrieval_mels(summary, train.paintings), train.mels, atol=1e-3
  )
  assert summary.era_means.shape == (2, 32, 32)
  np.testing.assert_allclose(
    evaluation_job.era_mean_mels(summary, np.array([1, 0]))[1], summary.era_means[0]
  )


def test_note_metrics_on_real_transcribable_mels():
  from pix2pitch_jax.audio import spectrogram

  params = spectrogram.MelParams(image_size=128, clip_seconds=4.0, n_fft=2048)
  t = np.arange(params.clip_samples) / params.sample_rate
  y = np.where((t > 1.0) & (t < 1.6), 0.3 * np.sin(2 * np.pi * 440.0 * t), 0.0)
  mel = spectrogram.audio_to_mel_image(y.astype(np.float32), params)
  scores = evaluation_job.note_metrics(
    ['[[1.0, 0.6, 69, 80, 73]]', ''], np.stack([mel, mel]), params
  )
  assert scores['onset_f1'].tolist() == [1.0] and scores['rows'].tolist() == [0]
  assert evaluation_job.note_metrics(['', ''], np.stack([mel, mel]), params) is None


@pytest.mark.skipif(not EAR_INSTALLED, reason='the `ear` extra (basic-pitch) is not installed')
def test_audio_note_metrics_on_a_clip_with_one_note():
  sample_rate = 22_050
  t = np.arange(4 * sample_rate) / sample_rate
  clip = np.where((t > 1.0) & (t < 1.6), 0.3 * np.sin(2 * np.pi * 440.0 * t), 0.0)
  scores = evaluation_job.audio_note_metrics(
    ['[[1.0, 0.6, 69, 80, 73]]', ''], np.stack([clip, clip]), sample_rate, clip_seconds=4.0
  )
  assert scores['audio_onset_pitch_f1'].tolist() == [1.0] and scores['rows'].tolist() == [0]
  assert set(scores) == set(evaluation_job.AUDIO_NOTE_METRICS) | {'rows'}
  assert (
    evaluation_job.audio_note_metrics(['', ''], np.stack([clip, clip]), sample_rate, 4.0) is None
  )


def test_json_has_no_nan_or_infinity():
  safe = evaluation_job._json_safe({'a': float('inf'), 'b': [float('nan'), 1.0]})
  assert json.loads(json.dumps(safe, allow_nan=False)) == {'a': 'inf', 'b': [None, 1.0]}


def train_tiny_workdir(data_dir, workdir):
  """The demo config shrunk to the tiny dataset: 4 training steps of an ngf=8 pix2pix."""
  import importlib.util

  import jax

  from pix2pitch_jax.training import trainer

  spec = importlib.util.spec_from_file_location('demo_config', 'experiments/demo.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data_dir, config.image_size, config.num_train_steps = str(data_dir), 32, 4
  config.model.ngf = config.model.ndf = 8
  config.batch_size = jax.device_count()  # one example per device
  trainer.train_and_evaluate(config, str(workdir))
  return workdir


@pytest.mark.slow
def test_evaluate_a_real_checkpoint(tiny_dataset, tmp_path):
  workdir = train_tiny_workdir(tiny_dataset, tmp_path / 'trained')
  result = evaluation_job.evaluate(
    workdir,
    checkpoint=4,
    split='test',
    max_examples=3,
    griffin_lim_iters=2,
    classifier_config=TINY_CLASSIFIER,
  )
  m = result['metrics']
  assert m['step'] == 4 and m['num_examples'] == 3
  for system in evaluation_job.SYSTEMS:
    assert np.isfinite([m[system][k] for k in evaluation_job.IMAGE_METRICS[:5]]).all()
  assert (workdir / 'eval' / 'metrics_4.json').exists()
  assert (workdir / 'eval' / 'report_4.md').exists()
