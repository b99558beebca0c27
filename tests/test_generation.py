"""Batch generation: a folder with a bad file, a split with references, determinism, the page."""

import json
import pathlib

import numpy as np
import pytest
import soundfile
from PIL import Image

from pix2pitch_jax.core import cli
from pix2pitch_jax.generation import job as generation_job


def image_folder(root: pathlib.Path) -> pathlib.Path:
  """A photo-like wide RGB JPEG, a small greyscale sketch, an RGBA PNG, a corrupt file, a note."""
  (root / 'sketches').mkdir(parents=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(root / 'photo.jpg')
  Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), 'L').save(
    root / 'sketches' / 'sketch.png'
  )
  Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), 'RGBA').save(
    root / 'alpha.png'
  )
  (root / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
  (root / 'README.txt').write_text('not an image')
  return root


def test_generate_from_a_folder_skips_bad_files(stub_workdir, tmp_path):
  workdir = stub_workdir
  images = image_folder(tmp_path / 'images')
  out = tmp_path / 'out'
  result = generation_job.generate(workdir, out, images_dir=images, griffin_lim_iters=4)
  assert result['count'] == 3 and result['step'] == 4
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


def test_generate_a_split_with_references_is_deterministic(stub_workdir, tmp_path):
  workdir = stub_workdir
  first = generation_job.generate(
    workdir, tmp_path / 'a', split='test', max_examples=3, seed=3, griffin_lim_iters=4
  )
  again = generation_job.generate(
    workdir, tmp_path / 'b', split='test', max_examples=3, seed=3, griffin_lim_iters=4
  )
  other = generation_job.generate(
    workdir, tmp_path / 'c', split='test', max_examples=3, seed=4, griffin_lim_iters=4
  )
  assert first['count'] == 3 and first['skipped'] == []
  read = lambda result, name: soundfile.read(pathlib.Path(result['out_dir']) / name)[0]
  names = sorted(p.name for p in pathlib.Path(first['out_dir']).glob('*.wav'))
  assert len(names) == 6 and sum('_reference' in n for n in names) == 3
  for name in names:
    np.testing.assert_array_equal(read(first, name), read(again, name))
  assert not np.array_equal(read(first, names[0]), read(other, names[0]))
  page = pathlib.Path(first['index_html']).read_text()
  assert page.count('<audio') == 6 and 'labelled: baroque' in page


def test_generate_argument_errors(stub_workdir, tmp_path):
  workdir = stub_workdir
  with pytest.raises(ValueError, match='exactly one'):
    generation_job.generate(workdir, tmp_path / 'x')
  with pytest.raises(ValueError, match='not one of'):
    generation_job.generate(workdir, tmp_path / 'x', split='test', era='gothic')
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'junk.png').write_bytes(b'junk')
  with pytest.raises(ValueError, match='nothing to generate'):
    generation_job.generate(workdir, tmp_path / 'x', images_dir=empty)
  with pytest.raises(FileNotFoundError, match='not a directory'):
    generation_job.generate(workdir, tmp_path / 'x', images_dir=tmp_path / 'missing')
  assert cli.parse_checkpoint('12') == 12
  with pytest.raises(ValueError, match='step number'):
    cli.parse_checkpoint('best')
