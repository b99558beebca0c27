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


def test_generate_again_skips_finished_inputs(stub_workdir, tmp_path):
  out = tmp_path / 'out'
  kw = dict(split='test', griffin_lim_iters=4, seed=1)
  half = generation_job.generate(stub_workdir, out, max_examples=2, **kw)
  assert half['count'] == half['generated_now'] == 2
  mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob('*.wav')}
  full = generation_job.generate(stub_workdir, out, **kw)
  assert full['count'] == 4 and full['generated_now'] == 2
  for name, mtime in mtimes.items():
    assert (out / name).stat().st_mtime_ns == mtime, f'{name} was written again'
  assert generation_job.generate(stub_workdir, out, **kw)['generated_now'] == 0
  # Other settings start over, and the records of the old ones go.
  assert generation_job.generate(stub_workdir, out, **dict(kw, seed=2))['generated_now'] == 4
  assert len(list((out / generation_job.RECORDS_DIR).iterdir())) == 1
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['seed'] == 2 and len(manifest['entries']) == 4


def test_a_run_stopped_mid_item_resumes_from_the_finished_ones(stub_workdir, tmp_path, monkeypatch):
  out = tmp_path / 'out'
  kw = dict(split='test', griffin_lim_iters=4, batch_size=1)
  monkeypatch.setattr(generation_job, 'CHUNK_BATCHES', 1)  # one input per record
  write = generation_job._write_atomic
  written = []

  def dies_on_the_eighth_file(path, data):
    # Input 0: 5 files and its record; input 1: stopped between its 2nd file's write and rename.
    written.append(path.name)
    if len(written) == 8:
      path.with_name(f'.{path.name}.tmp-0').write_bytes(data[:10])
      raise KeyboardInterrupt
    write(path, data)

  monkeypatch.setattr(generation_job, '_write_atomic', dies_on_the_eighth_file)
  with pytest.raises(KeyboardInterrupt):
    generation_job.generate(stub_workdir, out, **kw)
  monkeypatch.setattr(generation_job, '_write_atomic', write)
  assert not (out / 'te1_mel.png').exists() and (out / 'te1_painting.png').exists()
  mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob('te0*')}
  assert len(mtimes) == 5
  result = generation_job.generate(stub_workdir, out, **kw)
  assert result['count'] == 4 and result['generated_now'] == 3
  assert {p.name: p.stat().st_mtime_ns for p in out.glob('te0*')} == mtimes
  assert Image.open(out / 'te1_mel.png').size == (32, 32)


def test_compare_workdir_puts_the_second_models_music_beside_the_first(
  stub_compare_workdirs, tmp_path
):
  pix2pix_run, cyclegan_run = stub_compare_workdirs
  out = tmp_path / 'out'
  result = generation_job.generate(
    pix2pix_run, out, split='test', griffin_lim_iters=4, compare_workdir=cyclegan_run
  )
  assert result['count'] == 4
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['model'] == 'pix2pix pix2pix_run @ 4'
  assert manifest['compare'] == {
    'workdir': str(cyclegan_run),
    'model': 'cyclegan cyclegan_run @ 7',
    'step': 7,
    'weights': 'raw',
  }
  for entry in manifest['entries']:
    stem = entry['title']
    assert entry['model'] == 'pix2pix pix2pix_run @ 4'
    assert entry['comparisons'] == [
      {
        'spectrogram': f'{stem}_compare_mel.png',
        'audio': f'{stem}_compare.wav',
        'model': 'cyclegan cyclegan_run @ 7',
        'workdir': str(cyclegan_run),
        'vocoder': 'griffin_lim',
      }
    ]
    # The second model's mel is the first's negated: its colours are the magma map's other end.
    mel = np.asarray(Image.open(out / f'{stem}_mel.png'), np.float32)
    compared = np.asarray(Image.open(out / f'{stem}_compare_mel.png'), np.float32)
    assert mel.shape == compared.shape == (32, 32, 3) and np.abs(mel - compared).mean() > 20
    clip, rate = soundfile.read(out / f'{stem}_compare.wav')
    assert rate == 22_050 and clip.shape == (44_100,) and np.isfinite(clip).all()
    assert not np.allclose(clip, soundfile.read(out / f'{stem}.wav')[0])
  page = (out / 'index.html').read_text()
  assert page.count('<figure>') == 3 * 4  # painting | pix2pix mel | cyclegan mel
  assert page.count('<audio') == 3 * 4  # both models and the reference
  assert page.count('data-model="cyclegan cyclegan_run @ 7"') == 4
  assert 'pix2pix pix2pix_run @ 4 &middot; Griffin-Lim' in page


def test_compare_workdir_with_other_mel_parameters_is_one_line(
  stub_compare_workdirs, monkeypatch, tmp_path
):
  import dataclasses

  from pix2pitch_jax import inference
  from pix2pitch_jax.core import cli as cli_lib

  pix2pix_run, cyclegan_run = stub_compare_workdirs
  load = inference.load_generator

  def other_clip_length(workdir, checkpoint='latest', weights='ema'):
    generator = load(workdir, checkpoint, weights)
    if workdir == str(cyclegan_run):
      params = dataclasses.replace(generator.meta.mel_params, clip_seconds=1.0)
      generator.meta = dataclasses.replace(generator.meta, mel_params=params)
    return generator

  monkeypatch.setattr(inference, 'load_generator', other_clip_length)
  with pytest.raises(cli_lib.UserInputError, match='makes mels with other parameters'):
    generation_job.generate(pix2pix_run, tmp_path / 'x', split='test', compare_workdir=cyclegan_run)


def test_sound_to_picture_gallery_shows_each_clip_and_its_picture(stub_cyclegan_workdir, tmp_path):
  from pix2pitch_jax.data import records
  from pix2pitch_jax.generation import sound_gallery

  from conftest import rule_picture

  out = tmp_path / 'pictures'
  result = sound_gallery.draw(stub_cyclegan_workdir, out, split='test', griffin_lim_iters=4)
  assert result['count'] == 4 and result['step'] == 9 and result['clip_audio'] == 'griffin_lim'
  manifest = json.loads((out / 'manifest.json').read_text())
  test = records.read_split(manifest['data_dir'], 'test')
  assert manifest['direction'] == 'sound_to_picture' and manifest['split'] == 'test'
  assert manifest['model'] == 'cyclegan cyclegan_run @ 9' and manifest['griffin_lim_iters'] == 4
  stems = [e['title'] for e in manifest['entries']]
  assert stems == ['te0', 'te1', 'te2', 'te3']
  for i, entry in enumerate(manifest['entries']):
    assert entry['direction'] == 'sound_to_picture' and entry['era_label'] in (
      'baroque',
      'romanticism',
    )
    picture = np.asarray(Image.open(out / entry['painting']))
    np.testing.assert_array_equal(picture, rule_picture(test['mel'][i]))
    assert Image.open(out / entry['spectrogram']).size == (32, 32)
    clip, rate = soundfile.read(out / entry['audio'])
    assert rate == 22_050 and clip.shape == (44_100,) and np.abs(clip).max() > 0
  page = (out / 'index.html').read_text()
  assert page.count('data-direction="sound_to_picture"') == 4 and page.count('<audio') == 4
  assert page.count('the clip&#x27;s mel') == 4 and 'generated picture' in page


def test_sound_to_picture_needs_a_cyclegan_run(tmp_path):
  from pix2pitch_jax.core import cli as cli_lib
  from pix2pitch_jax.generation import sound_gallery

  (tmp_path / 'config.json').write_text(json.dumps({'family': 'pix2pix', 'model': {}}))
  with pytest.raises(cli_lib.UserInputError, match='holds a pix2pix run; sound -> picture needs'):
    sound_gallery.draw(tmp_path, tmp_path / 'out')
