"""Batch generation: a folder with a bad file, a split with references, determinism, the page."""

import json
import pathlib
import sys
import types

import numpy as np
import pytest
import soundfile
from PIL import Image

from pix2pitch_jax import generation, records


class PaintingMeanGenerator:
  """Stand-in for inference.LoadedGenerator (same interface): mel = mean colour of the painting."""

  def __init__(self, data_dir):
    self.config = types.SimpleNamespace(data_dir=data_dir)
    self.meta = records.read_meta(data_dir)
    self.image_size = self.meta.image_size
    self.step = 7

  def generate(self, paintings, eras=None):
    return np.asarray(paintings, np.float32).mean(axis=-1) / 127.5 - 1.0


@pytest.fixture
def workdir(tiny_dataset, tmp_path, monkeypatch):
  fake = types.ModuleType('pix2pitch_jax.inference')
  fake.load_generator = lambda workdir, checkpoint='latest': PaintingMeanGenerator(tiny_dataset)
  monkeypatch.setitem(sys.modules, 'pix2pitch_jax.inference', fake)
  import pix2pitch_jax
  monkeypatch.setattr(pix2pitch_jax, 'inference', fake, raising=False)
  return tmp_path / 'workdir'


def image_folder(root: pathlib.Path) -> pathlib.Path:
  """A photo-like wide RGB JPEG, a small greyscale sketch, an RGBA PNG, a corrupt file, a note."""
  (root / 'sketches').mkdir(parents=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(root / 'photo.jpg')
  Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), 'L').save(
      root / 'sketches' / 'sketch.png')
  Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), 'RGBA').save(
      root / 'alpha.png')
  (root / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
  (root / 'README.txt').write_text('not an image')
  return root


def test_generate_from_a_folder_skips_bad_files(workdir, tmp_path):
  images = image_folder(tmp_path / 'images')
  out = tmp_path / 'out'
  result = generation.generate(workdir, out, images_dir=images, griffin_lim_iters=4)
  assert result['count'] == 3 and result['step'] == 7
  assert sorted(pathlib.Path(p).name for p, _ in result['skipped']) == ['README.txt', 'broken.jpg']
  for stem in ('photo', 'alpha', 'sketches_sketch'):
    clip, sample_rate = soundfile.read(out / f'{stem}.wav')
    assert sample_rate == 22_050 and clip.shape == (44_100,) and np.isfinite(clip).all()
    assert Image.open(out / f'{stem}_mel.png').size == (32, 32)
    assert Image.open(out / f'{stem}_painting.png').size == (32, 32)
  page = pathlib.Path(result['index_html']).read_text()
  assert page.count('<audio') == 3 and 'broken.jpg' in page
  manifest = json.loads(pathlib.Path(result['manifest']).read_text())
  assert len(manifest['entries']) == 3 and len(manifest['skipped']) == 2


def test_generate_a_split_with_references_is_deterministic(workdir, tmp_path):
  first = generation.generate(workdir, tmp_path / 'a', split='test', max_examples=3, seed=3,
                              griffin_lim_iters=4)
  again = generation.generate(workdir, tmp_path / 'b', split='test', max_examples=3, seed=3,
                              griffin_lim_iters=4)
  other = generation.generate(workdir, tmp_path / 'c', split='test', max_examples=3, seed=4,
                              griffin_lim_iters=4)
  assert first['count'] == 3 and first['skipped'] == []
  read = lambda result, name: soundfile.read(pathlib.Path(result['out_dir']) / name)[0]
  names = sorted(p.name for p in pathlib.Path(first['out_dir']).glob('*.wav'))
  assert len(names) == 6 and sum('_reference' in n for n in names) == 3
  for name in names:
    np.testing.assert_array_equal(read(first, name), read(again, name))
  assert not np.array_equal(read(first, names[0]), read(other, names[0]))
  page = pathlib.Path(first['index_html']).read_text()
  assert page.count('<audio') == 6 and 'labelled: baroque' in page


def test_generate_argument_errors(workdir, tmp_path):
  with pytest.raises(ValueError, match='exactly one'):
    generation.generate(workdir, tmp_path / 'x')
  with pytest.raises(ValueError, match='not one of'):
    generation.generate(workdir, tmp_path / 'x', split='test', era='gothic')
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'junk.png').write_bytes(b'junk')
  with pytest.raises(ValueError, match='nothing to generate'):
    generation.generate(workdir, tmp_path / 'x', images_dir=empty)
  with pytest.raises(FileNotFoundError, match='not a directory'):
    generation.generate(workdir, tmp_path / 'x', images_dir=tmp_path / 'missing')
  assert generation.parse_checkpoint('12') == 12
  with pytest.raises(ValueError, match='step number'):
    generation.parse_checkpoint('best')
