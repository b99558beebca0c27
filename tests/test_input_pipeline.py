"""The training input: stored bytes + global indices from the host, augmentation on the device.

The same global batches (after augmentation) whatever the number of hosts; the device resize and
crop equal pix2pix's PIL bicubic one; datasets in the first (PNG) format still read.
"""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from pix2pitch_jax.data import augment, input_pipeline, records

from conftest import TINY_ERAS, make_tiny_examples, write_tiny_dataset

GLOBAL_BATCH = 4


def _batches(data_dir, n, *, process_index=0, process_count=1, seed=0):
  it = iter(
    input_pipeline.train_dataset(
      data_dir,
      global_batch_size=GLOBAL_BATCH,
      seed=seed,
      process_index=process_index,
      process_count=process_count,
    )
  )
  return [next(it) for _ in range(n)]


_augment = jax.jit(
  lambda index, painting, mel: augment.augment(
    jax.random.key(7), index, *augment.to_float(painting, mel), jitter=True, flip=True
  )
)


def test_batches_carry_stored_bytes_and_global_indices(tiny_dataset):
  batches = _batches(tiny_dataset, 5)  # 16 examples: the 5th batch is in the second epoch
  b = batches[0]
  assert b['painting'].dtype == np.uint8 and b['painting'].shape == (4, 32, 32, 3)
  assert b['mel'].dtype == np.float16 and b['mel'].shape == (4, 32, 32)
  assert b['era'].dtype == np.int32 and b['index'].dtype == np.uint32
  for step, batch in enumerate(batches):
    np.testing.assert_array_equal(batch['index'], np.arange(4 * step, 4 * step + 4))
  # One epoch is a permutation of the split; the stored mel is the painting's mean brightness.
  ids = np.concatenate([np.asarray(b['painting']).reshape(4, -1)[:, :8] for b in batches[:4]])
  assert len({row.tobytes() for row in ids}) == 16
  expected = b['painting'].mean(-1) / 127.5 - 1.0
  np.testing.assert_allclose(b['mel'].astype(np.float32), expected, atol=1e-3)


def test_device_augmentation_gives_the_same_batches_on_one_and_two_hosts(tiny_dataset):
  """The hosts' rows assemble into the one-host global batch exactly (stored bytes and global
  indices), and augmenting each host's rows alone gives the one-host augmented batch: the
  randomness follows the index, not the host. (In training the devices run one program on the
  global batch, so there it is bit for bit; here a 2-row and a 4-row program may round the
  bicubic weights' products differently, hence atol 1e-6.)"""
  one = _batches(tiny_dataset, 3)
  hosts = [_batches(tiny_dataset, 3, process_index=p, process_count=2) for p in (0, 1)]
  for step in range(3):
    rows = [h[step] for h in hosts]
    assert [len(r['index']) for r in rows] == [2, 2]
    for key in ('painting', 'mel', 'era', 'index'):
      np.testing.assert_array_equal(np.concatenate([r[key] for r in rows]), one[step][key])
    want = _augment(one[step]['index'], one[step]['painting'], one[step]['mel'])
    got = [_augment(r['index'], r['painting'], r['mel']) for r in rows]
    for i, name in enumerate(('painting', 'mel')):
      np.testing.assert_allclose(
        np.concatenate([g[i] for g in got]), np.asarray(want[i]), atol=1e-6, err_msg=name
      )


def test_augmentation_is_keyed_on_the_index_and_flips_only_the_painting():
  rng = np.random.default_rng(0)
  painting = jnp.asarray(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))
  mel = jnp.asarray(rng.uniform(-1, 1, (1, 32, 32)).astype(np.float16))
  p0, m0 = augment.to_float(painting, mel)
  outs = [_augment(jnp.array([i], jnp.uint32), painting, mel) for i in range(16)]
  np.testing.assert_array_equal(outs[3][0], _augment(jnp.array([3], jnp.uint32), painting, mel)[0])
  assert len({np.asarray(m).tobytes() for _, m in outs}) > 8  # crops differ between indices
  for _, m in outs:
    assert m.shape == (1, 32, 32, 1) and float(jnp.abs(m).max()) <= 1.0
  # Flip alone: the mel is untouched, the painting is itself or its mirror, both occur.
  flipped = []
  for i in range(16):
    p, m = augment.augment(jax.random.key(7), jnp.array([i]), p0, m0, jitter=False, flip=True)
    np.testing.assert_array_equal(m, m0)
    assert bool((p == p0).all()) or bool((p == p0[:, :, ::-1]).all())
    flipped.append(not bool((p == p0).all()))
  assert 0 < sum(flipped) < 16


@pytest.mark.parametrize('offset', [(0, 0), (2, 3), (4, 4)])
def test_resize_and_crop_is_pix2pix_bicubic_jitter(offset):
  """Equal to PIL's bicubic resize to 286/256*S then the crop at `offset` (the host version)."""
  image = np.random.default_rng(1).uniform(-1, 1, (32, 32, 4)).astype(np.float32)
  load = augment.load_size(32)
  assert load == 36
  resized = np.stack(
    [
      np.asarray(Image.fromarray(image[..., c]).resize((load, load), Image.Resampling.BICUBIC))
      for c in range(4)
    ],
    axis=-1,
  )
  top, left = offset
  want = np.clip(resized[top : top + 32, left : left + 32], -1, 1)
  got = augment.resize_and_crop(jnp.asarray(image), jnp.array(offset))
  np.testing.assert_allclose(got, want, atol=1e-5)


def _png(image):
  buf = io.BytesIO()
  Image.fromarray(image, mode='RGB').save(buf, format='PNG')
  return buf.getvalue()


def _first_format_features(image_size, era_names):
  """The features of the first dataset format: PNG paintings, mels as a float list."""
  import tensorflow_datasets as tfds

  return tfds.features.FeaturesDict(
    {
      'painting': tfds.features.Image(shape=(image_size, image_size, 3), encoding_format='png'),
      'mel': tfds.features.Tensor(shape=(image_size, image_size), dtype=np.float16),
      'era': tfds.features.ClassLabel(names=list(era_names)),
      'painting_id': tfds.features.Text(),
      'clip_source_id': tfds.features.Text(),
      'clip_offset_s': tfds.features.Scalar(dtype=np.float32),
      'notes_json': tfds.features.Text(),
    }
  )


def test_datasets_in_the_first_png_format_still_read(tmp_path, monkeypatch):
  """PNG paintings in zstd records (the first format) read as the same arrays as the raw format."""
  from array_record.python import array_record_module

  examples = make_tiny_examples(8, 32, 0, 'tr')
  new = write_tiny_dataset(tmp_path / 'raw', sizes=(('train', 8),))
  old = tmp_path / 'png'
  old.mkdir()
  features = _first_format_features(32, TINY_ERAS)
  for shard in range(2):  # write_tiny_dataset's sharding: examples[shard::2]
    writer = array_record_module.ArrayRecordWriter(
      str(records.shard_path(old, 'train', shard, 2)), 'group_size:1'
    )
    for ex in examples[shard::2]:
      png = dict(ex, painting=_png(ex['painting']), mel=ex['mel'].astype(np.float16), notes_json='')
      writer.write(features.serialize_example(png))
    writer.close()
  monkeypatch.setattr(records, 'make_features', _first_format_features)
  records.write_metadata(old, records.read_meta(new))
  monkeypatch.undo()

  source = records.open_split(old, 'train')
  assert source.png_paintings and not records.open_split(new, 'train').png_paintings
  for a, b in zip(_batches(str(old), 3), _batches(new, 3)):
    for key in ('painting', 'mel', 'era', 'index'):
      assert a[key].dtype == b[key].dtype
      np.testing.assert_array_equal(a[key], b[key])
