"""End-to-end builds on tiny generated fixtures of every layout, with bad files among them."""

import csv
import io
import json
import os
import pathlib
import subprocess
import sys

import grain
import numpy as np
import pretty_midi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from data_prep import builder, demo_synesthesia, demos, music, paintings
from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.data import records

SR = 16_000
TINY = dict(
  image_size=32,
  sample_rate=SR,
  clip_seconds=1.0,
  n_fft=512,
  shard_size=4,
  val_fraction=0.2,
  test_fraction=0.2,
  workers=1,
  progress=False,
)


def _tone(path, seconds, freq=440.0, amp=0.5, sr=SR):
  t = np.arange(int(seconds * sr)) / sr
  sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def _image(path, colour, size=(40, 30)):
  Image.new('RGB', size, colour).save(path)


def _midi(path, seconds=2.5):
  pm = pretty_midi.PrettyMIDI()
  inst = pretty_midi.Instrument(0)
  inst.notes = [
    pretty_midi.Note(90, 60 + i, i * 0.5, i * 0.5 + 0.45) for i in range(int(seconds * 2))
  ]
  pm.instruments.append(inst)
  pm.write(str(path))


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  """Plain-folder paintings and music: 4 usable recordings per era plus one of each bad kind."""
  root = tmp_path_factory.mktemp('sources')
  pnt, mus = root / 'paintings', root / 'music'
  for era, colour in (('baroque', (120, 60, 10)), ('romanticism', (20, 60, 140))):
    (pnt / era).mkdir(parents=True)
    (mus / era).mkdir(parents=True)
    for i in range(6):
      _image(pnt / era / f'p{i}.png', colour)
    for i in range(3):
      _tone(mus / era / f'r{i}.wav', 3.0, freq=220 * (i + 1))
  _tone(mus / 'baroque' / 'r3.flac', 2.0)
  _midi(mus / 'romanticism' / 'r3.mid')
  # Bad music: zero-length, truncated, corrupt, silent, too short, and an unmapped label.
  (mus / 'baroque' / 'empty.wav').write_bytes(b'')
  _tone(mus / 'baroque' / 'cut.wav', 3.0)
  data = (mus / 'baroque' / 'cut.wav').read_bytes()
  (mus / 'baroque' / 'cut.wav').write_bytes(data[: len(data) // 2])
  (mus / 'romanticism' / 'corrupt.flac').write_bytes(b'fLaC' + os.urandom(500))
  sf.write(mus / 'romanticism' / 'silent.wav', np.zeros(SR * 2, np.float32), SR)
  _tone(mus / 'romanticism' / 'short.wav', 0.5)
  (mus / 'jazz').mkdir()
  _tone(mus / 'jazz' / 'x.wav', 2.0)
  (mus / 'baroque' / 'notes.txt').write_text('not audio')
  # Bad paintings: corrupt, empty; a style outside the thesis set; an unmapped label.
  (pnt / 'baroque' / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff' + os.urandom(100))
  (pnt / 'romanticism' / 'empty.png').write_bytes(b'')
  (pnt / 'Cubism').mkdir()
  _image(pnt / 'Cubism' / 'c.png', (0, 0, 0))
  (pnt / 'doodles').mkdir()
  _image(pnt / 'doodles' / 'd.png', (0, 0, 0))
  return pnt, mus


@pytest.fixture(scope='module')
def built(sources, tmp_path_factory):
  out = tmp_path_factory.mktemp('built')
  report = builder.build_from_sources(*sources, out, clips_per_painting=2, **TINY)
  return out, report


def _all(out, split):
  src = records.open_split(out, split)
  return [src[i] for i in range(len(src))]


def test_counts_and_no_leakage(built):
  out, report = built
  splits = {s: _all(out, s) for s in ('train', 'validation', 'test')}
  for split, examples in splits.items():
    assert len(examples) == report['counts'][split]['examples'] > 0
  # 7 + 7 paintings in two eras, of which 2 are unreadable (skipped at write time); K = 2.
  assert sum(len(v) for v in splits.values()) == 2 * (7 + 7) - 2 * 2
  for key in ('painting_id', 'clip_source_id'):
    owners = {}
    for split, examples in splits.items():
      for ex in examples:
        assert owners.setdefault(ex[key], split) == split, f'{key} {ex[key]} leaks'
  assert report['counts']['train']['by_era'].keys() == {'baroque', 'romanticism'}


def test_example_values(built):
  out, _ = built
  meta = records.read_meta(out)
  assert meta.mel_params == spectrogram.MelParams(
    sample_rate=SR, image_size=32, clip_seconds=1.0, n_fft=512
  )
  assert meta.era_names == (
    'baroque',
    'classicism',
    'romanticism',
    'impressionism',
    'expressionism',
  )
  for ex in _all(out, 'train'):
    assert ex['painting'].shape == (32, 32, 3) and ex['painting'].dtype == np.uint8
    assert ex['mel'].shape == (32, 32) and ex['mel'].dtype == np.float16  # as stored
    assert -1 <= ex['mel'].min() and ex['mel'].max() <= 1 and ex['mel'].max() > 0.5  # loud tone
    assert meta.era_names[ex['era']] == ex['painting_id'].split('/')[0]
    assert ex['clip_source_id'].split('/')[0] == ex['painting_id'].split('/')[0]
    assert ex['clip_offset_s'] in (0.0, 1.0, 2.0) and ex['notes_json'] == ''
  batch = next(
    iter(grain.MapDataset.source(records.open_split(out, 'train')).batch(2).to_iter_dataset())
  )
  assert batch['mel'].shape == (2, 32, 32)


def test_skip_report_lists_every_bad_input(built):
  out, report = built
  reasons = {s['id']: s['reason'] for s in report['skipped']}
  assert reasons['baroque/empty.wav'] == 'empty file'
  assert reasons['baroque/cut.wav'].startswith('truncated')
  assert reasons['romanticism/corrupt.flac'].startswith('undecodable')
  assert reasons['romanticism/silent.wav'].startswith('silent')
  assert reasons['romanticism/short.wav'].startswith('too short')
  assert reasons['baroque/notes.txt'] == 'not an audio or MIDI extension'
  assert reasons['jazz/x.wav'] == "no era for label 'jazz'"
  assert any(
    k.startswith('baroque/corrupt.jpg') and 'painting unreadable' in v for k, v in reasons.items()
  )
  assert any(k.startswith('romanticism/empty.png') for k in reasons)
  assert report['unmapped'] == {'paintings': {'doodles': 1}, 'recordings': {'jazz': 1}}
  assert report['outside_era_set']['paintings'] == {'modernism': 1}
  assert report['inputs']['recordings_used'] == 8  # 3 wav + flac, 3 wav + rendered MIDI
  summary = (out / 'summary.md').read_text()
  assert 'truncated' in summary and 'jazz (1)' in summary
  assert json.loads((out / 'data_prep_report.json').read_text())['shards']['planned'] > 1


def test_strict_fails_on_skip(sources, tmp_path):
  with pytest.raises(builder.BuildError, match='strict'):
    builder.build_from_sources(*sources, tmp_path, strict=True, **TINY)


def test_resume_after_interruption(sources, tmp_path):
  report = builder.build_from_sources(*sources, tmp_path, **TINY)
  shards = sorted(p for ps in records.finished_shards(tmp_path).values() for p in ps)
  before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shards}
  shards[0].unlink()  # a shard that was being written when the run died ...
  (tmp_path / f'.{shards[0].name}.tmp-999').write_bytes(b'partial')  # ... left its temp file
  again = builder.build_from_sources(*sources, tmp_path, **TINY)
  assert again['shards']['written'] == 1 and again['shards']['reused'] == len(shards) - 1
  assert not list(tmp_path.glob('.*.tmp-*'))
  for p in shards:
    assert p.read_bytes() == before[p.name][0]
    if p != shards[0]:
      assert p.stat().st_mtime_ns == before[p.name][1]
  assert again['counts'] == report['counts']
  # A complete directory is returned as is: nothing rewritten.
  mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()}
  third = builder.build_from_sources(*sources, tmp_path, **TINY)
  assert third['resumed'] is True
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()} == mtimes
  with pytest.raises(builder.BuildError, match='other inputs or options'):
    builder.build_from_sources(*sources, tmp_path, **{**TINY, 'seed': 1})


def test_wikiart_csv_parquet_maestro_musicnet(tmp_path):
  styles = ['Baroque', 'Rococo', 'Ukiyo_e']
  wiki = tmp_path / 'wikiart'
  for style in styles:
    (wiki / style).mkdir(parents=True)
    for i in range(3):
      _image(wiki / style / f'a_{i}.jpg', (i * 60, 90, 30))
  scan = paintings.scan_paintings(wiki, 'auto', styles)
  assert scan.format == 'wikiart' and len(scan.items) == 9
  (tmp_path / 'style_train.csv').write_text(
    'Baroque/a_0.jpg,0\nRococo/a_1.jpg,1\nBaroque/gone.jpg,0\nBaroque/a_1.jpg,77\n'
  )
  scan = paintings.scan_paintings(wiki, 'auto', styles)
  assert [(i.painting_id, i.label) for i in scan.items] == [
    ('Baroque/a_0.jpg', 'Baroque'),
    ('Rococo/a_1.jpg', 'Rococo'),
  ]
  assert scan.ignored['listed in csv but missing'] == ['Baroque/gone.jpg']
  assert len(scan.ignored['bad csv row']) == 1

  pq_root = tmp_path / 'hf'
  (pq_root / 'data').mkdir(parents=True)
  cells = []
  for i in range(8):
    buf = io.BytesIO()
    Image.new('RGB', (20, 20), (200, i * 20, 0)).save(buf, 'PNG')
    cells.append({'bytes': buf.getvalue(), 'path': f'{i}.jpg'})
  cells[3] = {'bytes': b'broken', 'path': 'bad.jpg'}
  table = pa.table({'image': cells, 'style': [4, 22, 4, 22, 4, 22, 4, 22]})
  pq.write_table(table, pq_root / 'data' / 'train-00000-of-00001.parquet', row_group_size=3)
  scan = paintings.scan_paintings(pq_root, 'auto', eras_styles())
  assert scan.format == 'parquet' and [i.label for i in scan.items][:2] == ['Baroque', 'Rococo']
  np.testing.assert_array_equal(scan.items[7].ref.load(8, 'crop')[0, 0], [200, 140, 0])

  maestro = tmp_path / 'maestro'
  (maestro / '2018').mkdir(parents=True)
  with open(maestro / 'maestro-v3.0.0.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(
      [
        'canonical_composer',
        'canonical_title',
        'split',
        'year',
        'midi_filename',
        'audio_filename',
        'duration',
      ]
    )
    for i, composer in enumerate(
      [
        'Johann Sebastian Bach',
        'Wolfgang Amadeus Mozart',
        'Johann Sebastian Bach / Ferruccio Busoni',
        'Muzio Clementi',
        'Domenico Scarlatti',
        'Joseph Haydn',
      ]
    ):
      w.writerow([composer, 't', 'train', 2018, f'2018/{i}.midi', f'2018/{i}.wav', 3])
      _tone(maestro / '2018' / f'{i}.wav', 3.0, 300 + 50 * i)
    w.writerow(['Frédéric Chopin', 't', 'test', 2018, '2018/x.midi', '2018/x.wav', 3])
  mscan = music.scan_music(maestro, 'auto')
  assert mscan.format == 'maestro' and len(mscan.recordings) == 6
  assert mscan.ignored['listed in csv but missing'] == ['2018/x.wav']
  report = builder.build_from_sources(
    pq_root, maestro, tmp_path / 'out', era_set='baroque,classicism', **TINY
  )
  assert report['formats'] == {'paintings': 'parquet', 'music': 'maestro'}
  assert sum(c['examples'] for c in report['counts'].values()) == 7
  assert any('painting unreadable' in s['reason'] for s in report['skipped'])

  net = tmp_path / 'musicnet'
  (net / 'train_data').mkdir(parents=True)
  (net / 'test_data').mkdir()
  (net / 'musicnet_metadata.csv').write_text(
    'id,composer,composition,movement,ensemble,source,'
    'transcriber,catalog_name,seconds\n'
    '1727,Schubert,x,y,z,s,t,c,3\n'
    '2303,Bach,x,y,z,s,t,c,3\n9999,Ravel,x,y,z,s,t,c,3\n'
  )
  _tone(net / 'train_data' / '1727.wav', 1.5)
  _tone(net / 'test_data' / '2303.wav', 1.5)
  mscan = music.scan_music(net, 'auto')
  assert [(r.source_id, r.label) for r in mscan.recordings] == [
    ('test_data/2303.wav', 'Bach'),
    ('train_data/1727.wav', 'Schubert'),
  ]
  assert mscan.ignored['listed in csv but missing'] == ['train_data/9999.wav']


def eras_styles():
  from data_prep import eras

  return eras.load_tables().artgan_styles


def test_synesthesia_rule_known_stroke():
  stroke = demo_synesthesia.Stroke(x0=8, length=16, band=10, level=2, colour=(30, 70, 190))
  score = demo_synesthesia.SynesthesiaScore(0, 1, 64, 4.0)
  object.__setattr__(score, 'strokes', (stroke,))  # pin the cached strokes to a known one
  assert score.notes() == [[0.5, 1.0, 96, 112, 73]]  # x 8/64*4 s, highest pitch = C7, thick, blue
  img = score.load(64)
  rows = np.where(np.abs(img[:, 16].astype(int) - (30, 70, 190)).sum(-1) < 40)[0]
  assert 0 < rows.min() and rows.max() < 10  # C7 is drawn near the top
  assert (np.abs(img[rows[0], 8:24].astype(int) - (30, 70, 190)).sum(-1) < 40).all()
  params = spectrogram.MelParams(
    sample_rate=22050,
    image_size=64,
    clip_seconds=4.0,
    n_fft=2048,
    fmin=demo_synesthesia.FMIN_HZ,
    fmax=demo_synesthesia.FMAX_HZ,
  )
  mel = spectrogram.audio_to_mel_image(score.waveform(params), params)
  frames = np.where(mel.max(axis=0) > -0.2)[0]
  assert abs(frames.min() - 8) <= 1 and abs(frames.max() - 24) <= 2  # onset and duration
  # The rule's point: the stroke lies on the row where its fundamental lies in the mel image.
  mel_row = int(mel[:, 16].argmax())
  assert abs(mel_row - rows.mean()) <= 1.5


def test_synesthesia_pitch_rows_follow_the_mel_scale():
  rows = demo_synesthesia.pitch_rows(128)
  assert all(a > b for a, b in zip(rows, rows[1:]))  # higher pitch = higher on the canvas
  assert rows[0] > 100 and rows[-1] < 20  # the scale spans most of the canvas
  assert min(a - b for a, b in zip(rows, rows[1:])) > 5  # neighbouring pitches do not touch


def test_synesthesia_notes_are_separable():
  for seed in range(200):
    score = demo_synesthesia.SynesthesiaScore(seed, seed % 3, 128, 4.0)
    notes = score.notes()
    assert 3 <= len(notes) <= 10
    for a in notes:
      assert 0 <= a[0] and a[0] + a[1] <= 4.0 + 1e-9 and 1 <= a[3] <= 127
      for b in notes:
        if a is not b and a[2] == b[2] and a[0] <= b[0]:
          assert b[0] - (a[0] + a[1]) >= 0.12 - 1e-9


def test_synesthesia_demo_parallel_matches_serial(tmp_path):
  kw = dict(image_size=32, num_paintings=24, progress=False, shard_size=8)
  one = demos.build_demo('synesthesia', tmp_path / 'one', workers=1, **kw)
  two = demos.build_demo('synesthesia', tmp_path / 'two', workers=2, **kw)
  assert one['counts'] == two['counts']
  for split in ('train', 'test'):
    a, b = _all(tmp_path / 'one', split), _all(tmp_path / 'two', split)
    assert [x['painting_id'] for x in a] == [x['painting_id'] for x in b]
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x['painting'], y['painting'])
      np.testing.assert_array_equal(x['mel'], y['mel'])
  ex = records.open_split(tmp_path / 'one', 'train')[0]
  notes = json.loads(ex['notes_json'])
  assert notes and all(len(n) == 5 for n in notes)
  assert records.read_meta(tmp_path / 'one').era_names == demo_synesthesia.ERA_NAMES


def test_cli_bad_flag_is_one_line(tmp_path):
  cmd = [
    sys.executable,
    '-m',
    'data_prep.build',
    '--demo=synesthesia',
    f'--out={tmp_path}',
    '--image_size=0',
  ]
  result = subprocess.run(
    cmd, capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[1]
  )
  assert result.returncode != 0
  assert 'image_size must be positive' in result.stderr and 'Traceback' not in result.stderr
  cmd[-1] = '--image_size=48'
  result = subprocess.run(
    cmd, capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[1]
  )
  assert result.returncode != 0 and 'power of two' in result.stderr
  assert 'Traceback' not in result.stderr
