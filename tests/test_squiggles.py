"""The squiggles demo corpus (train unpaired, held-out splits paired by the hidden rule) and the
measurements the sound <-> picture evaluation correlates."""

import json

import numpy as np
import pytest

from data_prep import demo_squiggles, demos
from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import squiggle_features as features

MEL = spectrogram.MelParams(sample_rate=22_050, image_size=64, clip_seconds=1.0, n_fft=1024)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  out = tmp_path_factory.mktemp('squiggles')
  report = demos.build_demo(
    'squiggles',
    out,
    num_paintings=120,
    val_fraction=0.25,
    test_fraction=0.25,
    workers=1,
    progress=False,
  )
  return out, report


def test_corpus_splits_and_metadata(corpus):
  out, report = corpus
  assert {s: c['examples'] for s, c in report['counts'].items()} == dict(
    train=60, validation=30, test=30
  )
  assert report['skipped'] == []
  meta = records.read_meta(out)
  assert meta.image_size == 64 and meta.mel_params.clip_seconds == 1.0
  assert meta.mel_params.n_fft == 1024 and meta.era_names == demo_squiggles.TIMBRES
  assert meta.extra['paired'] is False
  assert meta.extra['paired_splits'] == ['validation', 'test']
  assert meta.extra['unpaired']['distinct']['train'] == dict(paintings=60, clips=60)
  # A second call on the complete directory rewrites nothing.
  again = demos.build_demo(
    'squiggles', out, num_paintings=120, val_fraction=0.25, test_fraction=0.25, progress=False
  )
  assert again['resumed'] is True


def test_train_is_unpaired_and_held_out_splits_follow_the_rule(corpus):
  out, _ = corpus
  hidden = features.load_hidden_params(out)
  assert hidden == json.loads((out / demo_squiggles.PARAMS_FILE).read_text())
  keys = ('pitch', 'velocity', 'timbre', 'brightness')
  for split in ('train', 'test'):
    data = records.read_split(
      out, split, fields=('painting_id', 'clip_source_id', 'notes_json', 'era')
    )
    same = 0
    for pid, cid, notes, era in zip(
      data['painting_id'], data['clip_source_id'], data['notes_json'], data['era']
    ):
      clip, picture = hidden['clips'][cid], hidden['pictures'][pid]
      [[onset, duration, pitch, velocity, program]] = json.loads(notes)
      assert (pitch, velocity, era) == (clip['pitch'], clip['velocity'], clip['timbre'])
      assert program == demo_squiggles.PROGRAMS[clip['timbre']]
      same += all(clip[k] == picture[k] for k in keys)
    if split == 'train':
      assert same == 0  # each picture follows parameters of its own
      assert len(set(data['painting_id'])) == len(set(data['clip_source_id'])) == 60
    else:
      assert same == 30


def test_measured_rule_is_high_on_test_and_near_zero_shuffled(corpus):
  out, _ = corpus
  data = records.read_split(out, 'test')
  mel = features.mel_features(data['mel'], records.read_meta(out).mel_params)
  pictures = features.picture_features(data['painting'])
  paired = features.rule_correlations(mel, pictures)
  assert min(paired.values()) > 0.85, paired  # the ceiling a model can reach
  # Shuffled copies: one of 30 pairs is noisy (sd ~0.18), the mean over 100 is not.
  rng = np.random.default_rng(0)
  shuffled = [
    features.rule_correlations(mel, {k: v[rng.permutation(30)] for k, v in pictures.items()})
    for _ in range(100)
  ]
  mean = {name: np.mean([s[name] for s in shuffled]) for name in paired}
  assert max(abs(v) for v in mean.values()) < 0.05, mean


def test_picture_features_on_drawn_shapes():
  rng = np.random.default_rng(0)
  base = dict(height=0.5, area=0.08, hue=0.6, spike_depth=0.0)
  blob = demo_squiggles.draw(base, 64, rng)
  star = demo_squiggles.draw(dict(base, spike_depth=0.5), 64, rng)
  high = demo_squiggles.draw(dict(base, height=0.7), 64, rng)
  red = demo_squiggles.draw(dict(base, hue=0.02), 64, rng)
  big = demo_squiggles.draw(dict(base, area=0.15), 64, rng)
  f = features.picture_features(np.stack([blob, star, high, red, big]))
  assert f['spikiness'][0] < 1.4 < 1.8 < f['spikiness'][1]
  assert f['height'][0] == pytest.approx(0.5, abs=0.05)
  assert f['height'][2] == pytest.approx(0.7, abs=0.05)
  assert f['hue'][0] == pytest.approx(0.6, abs=0.03) and f['hue'][3] == pytest.approx(
    0.02, abs=0.03
  )
  assert f['ink_area'][0] == pytest.approx(0.08, rel=0.2)
  assert f['ink_area'][4] == pytest.approx(0.15, rel=0.2)
  empty = np.full((64, 64, 3), 240, np.uint8)
  assert np.isnan(features.picture_features(empty)['height'][0])


def test_mel_features_follow_the_note():
  def note(**kw):
    p = demo_squiggles.NoteParams(
      **{**dict(pitch=60, velocity=100, timbre=2, brightness=0.5), **kw}
    )
    return spectrogram.audio_to_mel_image(demo_squiggles.NoteClip(p).waveform(MEL), MEL)

  f = features.mel_features(
    np.stack(
      [
        note(),
        note(pitch=72),
        note(velocity=40),
        note(brightness=1.0),
        note(timbre=0),
        note(timbre=3),
      ]
    ),
    MEL,
  )
  assert f['pitch_hz'][0] == pytest.approx(261.6, rel=0.1)
  assert f['pitch_hz'][1] == pytest.approx(523.3, rel=0.1)
  assert f['loudness_db'][0] - f['loudness_db'][2] == pytest.approx(
    40 * np.log10(100 / 40), abs=1.5
  )
  assert f['brightness'][3] > f['brightness'][0] + 0.5
  assert f['temporal_centroid_s'][4] < f['temporal_centroid_s'][0] < f['temporal_centroid_s'][5]
  silent = np.full((64, 64), -1.0)
  assert np.isnan(features.mel_features(silent, MEL)['pitch_hz'][0])
