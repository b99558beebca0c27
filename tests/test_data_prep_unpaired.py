"""Unpaired builds from a folder of images and a folder of audio, with bad files among them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from data_prep import unpaired
from pix2pitch_jax.data import records

SR = 16_000
SMALL = dict(image_size=32, sample_rate=SR, n_fft=512, shard_size=8, workers=1, progress=False)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  """12 images (at the root and in a sub-folder, no labels) and 5 recordings (14 s of audio),
  plus one unreadable file of each kind."""
  root = tmp_path_factory.mktemp('unpaired')
  pictures, sounds = root / 'pictures', root / 'sounds'
  (pictures / 'more').mkdir(parents=True)
  (sounds / 'piano').mkdir(parents=True)
  rng = np.random.default_rng(0)
  for i in range(12):
    folder = pictures if i < 7 else pictures / 'more'
    pixels = rng.integers(0, 256, (24 + i, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f'img{i}.{"png" if i % 2 else "jpg"}')
  (pictures / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')
  for i, seconds in enumerate((4.0, 3.0, 2.0, 2.5)):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(sounds / f'tone{i}.wav', (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)), SR)
  sf.write(
    sounds / 'piano' / 'low.flac', 0.3 * np.sin(2 * np.pi * 110 * np.arange(SR * 3) / SR), SR
  )
  (sounds / 'broken.wav').write_bytes(b'RIFF\x00\x00\x00\x00WAVEjunk')
  return pictures, sounds


def test_cli_builds_unpaired_and_reports_each_bad_file_once(sources, tmp_path):
  pictures, sounds = sources
  out = tmp_path / 'un'
  cmd = [sys.executable, '-m', 'data_prep', '--unpaired', f'--paintings={pictures}']
  cmd += [f'--music={sounds}', f'--out={out}', '--image_size=32', f'--sample_rate={SR}']
  cmd += ['--n_fft=512', '--val_fraction=0.25', '--test_fraction=0.25', '--workers=2']
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  printed = json.loads(done.stdout.strip().splitlines()[-1])
  assert printed['skipped'] == 2

  meta = records.read_meta(out)
  assert meta.extra['paired'] is False and meta.era_names == unpaired.ERA_NAMES
  assert meta.mel_params.clip_seconds == 1.0 and meta.image_size == 32
  distinct = meta.extra['unpaired']['distinct']
  assert sum(d['paintings'] for d in distinct.values()) == 12  # the broken one left out
  assert sum(d['clips'] for d in distinct.values()) == 4 + 3 + 2 + 2 + 3  # whole 1 s clips
  for split, d in distinct.items():
    data = records.read_split(out, split, fields=('painting_id', 'clip_source_id', 'mel'))
    assert len(data['painting_id']) == max(d['paintings'], d['clips'])  # shorter side cycled
    assert len(set(data['painting_id'])) == d['paintings']
    assert data['mel'].shape[1:] == (32, 32) and data['mel'].max() > 0
  report = json.loads((out / 'data_prep_report.json').read_text())
  bad = {s['id']: (s['kind'], s['reason']) for s in report['skipped']}
  assert bad.keys() == {'broken.jpg', 'broken.wav'}
  assert bad['broken.jpg'][0] == 'painting' and 'painting unreadable' in bad['broken.jpg'][1]
  assert bad['broken.wav'][0] == 'recording' and 'undecodable' in bad['broken.wav'][1]
  summary = (out / 'summary.md').read_text().splitlines()
  assert sum('broken.jpg' in line for line in summary) == 1
  assert sum('broken.wav' in line for line in summary) == 1


def test_longer_clips_and_strict(sources, tmp_path):
  pictures, sounds = sources
  report = unpaired.build_unpaired_from_sources(
    pictures,
    sounds,
    tmp_path / 'long',
    clip_seconds=2.0,
    val_fraction=0.0,
    test_fraction=0.0,
    **SMALL,
  )
  assert report['counts']['train']['examples'] == 12  # 12 images; 2 + 1 + 1 + 1 + 1 clips
  assert records.read_meta(tmp_path / 'long').mel_params.clip_seconds == 2.0
  with pytest.raises(unpaired.builder.BuildError, match='under --strict'):
    unpaired.build_unpaired_from_sources(
      pictures, sounds, tmp_path / 'strict', strict=True, **SMALL
    )


def test_cli_refuses_pairing_flags_with_unpaired(sources, tmp_path):
  pictures, sounds = sources
  cmd = [sys.executable, '-m', 'data_prep', '--unpaired', f'--paintings={pictures}']
  cmd += [f'--music={sounds}', f'--out={tmp_path}', '--clips_per_painting=2']
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert done.returncode != 0
  assert (
    done.stderr.strip()
    .splitlines()[-1]
    .endswith('--unpaired uses no eras and no pairing: drop --clips_per_painting')
  )
