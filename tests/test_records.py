"""The shared on-disk format: write, read back through TFDS and grain, metadata round trip."""

import grain
import numpy as np
import pytest

from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.data import records


def test_roundtrip_values_and_types(tiny_dataset):
  src = records.open_split(tiny_dataset, 'train')
  assert len(src) == 16
  ex = src[0]
  assert ex['painting'].dtype == np.uint8 and ex['painting'].shape == (32, 32, 3)
  assert ex['mel'].dtype == np.float16 and ex['mel'].shape == (32, 32)  # as stored
  # float16 storage: the mel is the painting's mean brightness within half a step.
  expected = ex['painting'].mean(-1) / 127.5 - 1.0
  np.testing.assert_allclose(ex['mel'], expected, atol=1e-3)
  assert isinstance(ex['painting_id'], str) and ex['era'] in (0, 1)


def test_split_sizes_and_meta(tiny_dataset):
  assert records.available_splits(tiny_dataset) == ['test', 'train', 'validation']
  meta = records.read_meta(tiny_dataset)
  assert meta.era_names == ('baroque', 'romanticism')
  assert meta.mel_params == spectrogram.MelParams(image_size=32, clip_seconds=2.0, n_fft=512)
  assert len(records.open_split(tiny_dataset, 'test')) == 4


def test_grain_reads_source(tiny_dataset):
  ds = grain.MapDataset.source(records.open_split(tiny_dataset, 'train')).batch(4)
  batch = next(iter(ds.to_iter_dataset()))
  assert batch['painting'].shape == (4, 32, 32, 3)


def test_unknown_split_and_missing_dir(tiny_dataset, tmp_path):
  with pytest.raises(ValueError, match='not in'):
    records.open_split(tiny_dataset, 'nope')
  with pytest.raises(FileNotFoundError, match='data_prep.build'):
    records.read_meta(tmp_path)


def test_interrupted_shard_is_not_counted(tiny_dataset, tmp_path):
  (tmp_path / '.pix2pitch-train.array_record-00000-of-00001.tmp-1').write_bytes(b'partial')
  assert records.finished_shards(tmp_path) == {}


def test_train_fields_source_equals_the_full_decode(tiny_dataset):
  fast = records.open_train_split(tiny_dataset, 'train')
  full = records.open_split(tiny_dataset, 'train')
  assert isinstance(fast, records.TrainFieldsSource) and len(fast) == len(full) == 16
  for i in range(len(full)):
    a, b = fast[i], full[i]
    assert set(a) == {'painting', 'mel', 'era'} and a['era'] == b['era']
    for key in ('painting', 'mel'):
      assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
      np.testing.assert_array_equal(a[key], b[key])
