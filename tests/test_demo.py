"""The whole demo pipeline at toy size: every stage's interface, the outputs, and resume."""

import json
import pathlib

import numpy as np
import pytest

from pix2pitch_jax.data import images
from pix2pitch_jax.demo import pipeline as demo_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
# experiments/tiny.py (32x32, ngf = ndf = 8, 4 steps) on a 24-painting synesthesia corpus.
TOY = dict(
  config_path=str(REPO / 'experiments' / 'tiny.py'),
  build_options={'num_paintings': 24, 'shard_size': 8, 'progress': False},
  gallery_size=3,
)


def test_outside_style_images_cover_odd_modes(tmp_path):
  out = demo_pipeline.write_outside_style_images(tmp_path)
  files = sorted(p.name for p in out.iterdir())
  assert files == ['palette_noise.png', 'pen_sketch.png', 'photo_landscape.jpg', 'poster_rgba.png']
  for path in out.iterdir():
    image = images.load_painting(path, 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image.std() > 0  # not blank after mode conversion


@pytest.mark.slow
def test_demo_end_to_end_and_rerun_reuses_everything(tmp_path):
  summary = demo_pipeline.run_demo('synesthesia', tmp_path, **TOY)
  assert summary['train']['step'] == 4
  metrics = json.loads(pathlib.Path(summary['metrics_json']).read_text())
  for system in ('model', 'retrieval', 'era_mean'):
    assert 0 <= metrics[system]['onset_f1'] <= 1
  assert 'onset_f1' in summary['headline']['model']
  html = pathlib.Path(summary['gallery_test']).read_text()
  assert html.count('<audio') >= 3
  outside = json.loads(
    (pathlib.Path(summary['gallery_outside']).parent / 'manifest.json').read_text()
  )
  assert len(outside['entries']) == 4 and outside['skipped'] == []
  stamps = {
    p: p.stat().st_mtime_ns
    for p in (pathlib.Path(summary['metrics_json']), pathlib.Path(summary['gallery_test']))
  }

  again = demo_pipeline.run_demo('synesthesia', tmp_path, **TOY)  # a second run redoes nothing
  assert again['metrics_json'] == summary['metrics_json']
  assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
  assert json.loads((tmp_path / 'demo_summary.json').read_text())['headline'] == summary['headline']


@pytest.mark.slow
def test_squiggles_demo_trains_evaluates_and_renders_a_video(tmp_path):
  from pix2pitch_jax.generation import visualiser

  toy = dict(
    config_path=str(REPO / 'experiments' / 'cyclegan_tiny.py'),  # 32x32, 4 steps
    build_options={'num_paintings': 48, 'shard_size': 16, 'progress': False},
    gallery_size=3,  # test notes in the video's song
  )
  summary = demo_pipeline.run_demo('squiggles', tmp_path, **toy)
  assert summary['train']['step'] == 4
  rules = summary['rule_correlations']
  assert list(rules) == [
    'pitch -> height',
    'loudness -> size',
    'timbre -> colour',
    'brightness -> spikiness',
  ]
  assert rules['pitch -> height']['real'] > 0.9  # the test split is paired by the rule
  assert all(-1 <= row['shuffled'] <= 1 for row in rules.values() if row['shuffled'] is not None)
  video = pathlib.Path(summary['video'])
  assert video.name == 'squiggles_test_step4.mp4'
  assert abs(visualiser.probe_duration(video) - 3.0) < 0.1  # three 1 s notes
  stamp = video.stat().st_mtime_ns
  again = demo_pipeline.run_demo('squiggles', tmp_path, **toy)  # a second run redoes nothing
  assert again['rule_correlations'] == summary['rule_correlations']
  assert video.stat().st_mtime_ns == stamp


def test_bad_demo_name_and_missing_config(tmp_path):
  with pytest.raises(ValueError, match='unknown demo'):
    demo_pipeline.run_demo('cubism', tmp_path)
  with pytest.raises(FileNotFoundError, match='not found'):
    demo_pipeline.run_demo('eras', tmp_path, config_path=str(tmp_path / 'nope.py'))


def test_each_demo_has_its_recipe():
  from pix2pitch_jax.core import configs
  from pix2pitch_jax.demo import config as demo_config

  synesthesia, eras = demo_config.get_config(), demo_config.get_config('eras')
  # A known answer: L1 alone, longer (WORKSPACE_NOTES.md, "Fidelity"); real music: pix2pix.
  assert synesthesia.model.lambda_GAN == 0 and synesthesia.num_train_steps == 3000
  assert eras.model.lambda_GAN == 1 and eras.num_train_steps == 1000
  # Unpaired: CycleGAN, its generator sized for the visualiser; experiments/ holds the same.
  squiggles = demo_config.get_config('squiggles')
  assert squiggles.family == 'cyclegan' and squiggles.image_size == 64
  assert (squiggles.model.ngf, squiggles.cyclegan.downsampling) == (8, 3)
  by_path = configs.load_config_file(REPO / 'experiments' / 'cyclegan_demo.py')
  assert by_path.to_dict() == squiggles.to_dict()
  assert demo_config.get_config('synesthesia').to_dict() == synesthesia.to_dict()
  with pytest.raises(configs.ConfigError, match="unknown demo 'jazz'"):
    demo_config.get_config('jazz')


def test_the_summary_prints_era_accuracy_per_era_with_intervals():
  block = lambda acc, low, high: {
    'era_accuracy': acc,
    'era_accuracy_ci95': [low, high],
    'era_accuracy_n': 6,
  }
  metrics = {
    'era_names': ['romanticism', 'baroque'],
    'model': {'per_era': {'baroque': block(0.5, 0.17, 0.83), 'romanticism': block(1.0, 1.0, 1.0)}},
    'real': {'per_era': {'baroque': block(0.83, 0.5, 1.0), 'romanticism': block(0.67, 0.33, 1.0)}},
  }
  per_era = demo_pipeline._era_accuracy_per_era(metrics)
  assert list(per_era) == ['romanticism', 'baroque']  # the dataset's order
  assert per_era['baroque'] == {'model': [0.5, 0.17, 0.83], 'real': [0.83, 0.5, 1.0], 'n': 6}
  lines = demo_pipeline._accuracy_lines(per_era)
  assert 'baroque' in lines[3] and 'model 0.50 [0.17, 0.83]' in lines[3]
  assert 'real 0.83 [0.50, 1.00]' in lines[3] and lines[3].endswith('n=6')
  assert demo_pipeline._accuracy_lines({}) == []
