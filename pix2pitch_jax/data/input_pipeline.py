"""grain input pipeline: records -> shuffled, augmented, per-host batches; resumable.

The global example stream is defined independently of how many processes read it: one global
shuffle (same seed everywhere), repeated forever, augmented with randomness keyed on the
example's global position, cut into global batches; process p of n then reads rows
[p*B/n, (p+1)*B/n) of every global batch. So the global batch at step t is the same on 1 host or
64, a resumed run sees exactly the batches an uninterrupted one would, and each host decodes only
its own rows. Nothing about the input is checkpointed: the stream is indexable, so a run resumed
at step t starts at global batch t (`start_step`), whatever the host or device count.

Augmentation is pix2pix's `resize_and_crop` + flip: painting and mel are resized to ~1.117*S
(286/256) and cropped at the same random offset; only the painting is flipped left-right, since
the mel's columns are time and must not run backwards.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
from PIL import Image

from pix2pitch_jax.data import batching, records

LOAD_SCALE = 286 / 256  # pix2pix --load_size 286 for --crop_size 256
TRAIN_KEYS = ('painting', 'mel', 'era')


def to_model_inputs(example: dict[str, Any]) -> dict[str, np.ndarray | np.int32]:
  """Decoded record -> float32 painting (S,S,3) and mel (S,S,1) in [-1, 1], int32 era."""
  painting = np.asarray(example['painting'], np.float32) / 127.5 - 1.0
  mel = np.asarray(example['mel'], np.float32)[..., None]
  return {'painting': painting, 'mel': mel, 'era': np.int32(example['era'])}


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bicubic resize of a float (H,W,C) image, channel by channel (PIL mode 'F')."""
  channels = [
    np.asarray(Image.fromarray(image[..., c]).resize((size, size), Image.Resampling.BICUBIC))
    for c in range(image.shape[-1])
  ]
  return np.stack(channels, axis=-1)


def augment(
  example: dict[str, np.ndarray], rng: np.random.Generator, *, jitter: bool, flip: bool
) -> dict[str, np.ndarray]:
  """pix2pix jitter (resize to ~1.117*S, shared random crop) and painting-only flip."""
  painting, mel = example['painting'], example['mel']
  size = painting.shape[0]
  if jitter:
    load = int(round(size * LOAD_SCALE))
    top, left = rng.integers(0, load - size + 1, size=2)
    crop = lambda x: _resize(x, load)[top : top + size, left : left + size]
    painting, mel = crop(painting), np.clip(crop(mel), -1.0, 1.0)
    painting = np.clip(painting, -1.0, 1.0)
  if flip and rng.random() < 0.5:
    painting = painting[:, ::-1]
  return dict(
    example,
    painting=np.ascontiguousarray(painting, np.float32),
    mel=np.ascontiguousarray(mel, np.float32),
  )


class HostRows(grain.MapDataset):
  """This process's rows of every global batch of `parent` (see the module docstring)."""

  def __init__(
    self, parent: grain.MapDataset, global_batch_size: int, process_index: int, process_count: int
  ):
    super().__init__(parent)
    if global_batch_size % process_count:
      raise ValueError(
        f'batch_size={global_batch_size} is not divisible by the {process_count} processes'
      )
    self._global = global_batch_size
    self._local = global_batch_size // process_count
    self._offset = process_index * self._local

  def __len__(self) -> int:
    return len(self._parent) // self._global * self._local

  def _global_index(self, index: int) -> int:
    batch, row = divmod(index, self._local)
    return batch * self._global + self._offset + row

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._global_index(index)]

  def __str__(self) -> str:
    return f'HostRows(global={self._global}, local={self._local}, offset={self._offset})'


def _shuffled(ds: grain.MapDataset, seed: int, shuffle_buffer: int) -> grain.MapDataset:
  """Exact global shuffle (shuffle_buffer 0 or >= size) or a windowed index shuffle."""
  if shuffle_buffer <= 0 or shuffle_buffer >= len(ds):
    return ds.shuffle(seed=seed)
  from grain._src.python.dataset.transformations import shuffle as shuffle_lib

  return shuffle_lib.WindowShuffleMapDataset(ds, window_size=shuffle_buffer, seed=seed)


def train_dataset(
  data_dir: str,
  *,
  global_batch_size: int,
  seed: int,
  jitter: bool = True,
  flip: bool = True,
  shuffle_buffer: int = 0,
  workers: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
  start_step: int = 0,
) -> grain.IterDataset:
  """Infinite iterable of this host's batches: painting (b,S,S,3), mel (b,S,S,1), era (b,).

  The first batch is the one for step `start_step + 1` (global batch `start_step`): a resumed
  run picks up where the checkpoint's step left off.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  source = records.open_split(data_dir, 'train')
  if len(source) < global_batch_size:
    raise ValueError(
      f'batch_size={global_batch_size} exceeds the {len(source)} training examples in {data_dir}'
    )
  ds = grain.MapDataset.source(source)
  ds = _shuffled(ds, seed, shuffle_buffer).repeat()  # reshuffled every epoch
  ds = ds.map(to_model_inputs)
  # A partial, not a lambda: worker processes unpickle the pipeline.
  ds = ds.random_map(functools.partial(augment, jitter=jitter, flip=flip), seed=seed + 1)
  ds = HostRows(ds, global_batch_size, process_index, process_count)
  ds = ds.batch(global_batch_size // process_count, drop_remainder=True)
  # Every index above keys on the global position (shuffle epoch, augmentation seed), so slicing
  # here skips batches without changing any of those that follow.
  ds = ds[start_step:]
  iter_ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=max(1, workers), prefetch_buffer_size=2)
  )
  if workers > 0:
    iter_ds = iter_ds.mp_prefetch(
      grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2)
    )
  return iter_ds


def eval_batches(
  data_dir: str,
  split: str,
  *,
  global_batch_size: int,
  max_examples: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """This host's rows of fixed-order, unaugmented global batches over a split.

  The last global batch is padded (`data.batching`); `mask` (b,) is 1.0 on real rows so metrics
  average exactly over the split (or its first `max_examples`).
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  source = records.open_split(data_dir, split)
  n = len(source) if max_examples <= 0 else min(max_examples, len(source))
  local = global_batch_size // process_count
  for batch_start in range(0, n, global_batch_size):
    start = batch_start + process_index * local
    real = range(start, min(start + local, n))
    # A host whose rows all fall past the end still sends a (fully masked) batch: every host
    # must take part in each sharded step.
    rows = [to_model_inputs(source[i]) for i in (real or [n - 1])]
    batch = {k: batching.pad_rows(np.stack([r[k] for r in rows]), local) for k in TRAIN_KEYS}
    batch[batching.MASK] = (np.arange(local) < len(real)).astype(np.float32)
    yield batch
