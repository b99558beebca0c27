"""grain input pipeline: records -> shuffled per-host batches of stored bytes; resumable.

The global example stream is defined independently of how many processes read it: one global
shuffle (same seed everywhere), repeated forever, cut into global batches; process p of n then
reads rows [p*B/n, (p+1)*B/n) of every global batch. Each row carries its global position
(`index`), on which the device-side augmentation is keyed. So the global batch at step t is the
same on 1 host or 64, a resumed run sees exactly the batches an uninterrupted one would, and each
host decodes only its own rows. Nothing about the input is checkpointed: the stream is indexable,
so a run resumed at step t starts at global batch t (`start_step`), whatever the host or device
count.

Training batches carry what the records store, as small as it is: uint8 paintings, float16 mels
(2 bytes a value) and each row's position in the global stream (`index`). Conversion to float32
and pix2pix's jitter and flip run on the device inside the jitted step (`data/augment.py`),
keyed on that index, so no host core resizes images and a batch crosses to the device in ~1/3 of
the float32 bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
from absl import logging

from pix2pitch_jax.data import batching, records

TRAIN_KEYS = ('painting', 'mel', 'era')
AUTO_WORKERS = -1
# Worker processes per local accelerator with `input.workers=-1`: a worker process feeds ~3 800
# examples/s of the raw format (bench/input_pipeline.py); an H100 at 35 % MFU eats ~4 000.
WORKERS_PER_ACCELERATOR = 2


def to_model_inputs(example: dict[str, Any]) -> dict[str, Any]:
  """Decoded record -> float32 painting (S,S,3) and mel (S,S,1) in [-1, 1], int32 era (eval);
  and float32 audio (clip_samples,) in [-1, 1] when the record has it."""
  painting = np.asarray(example['painting'], np.float32) / 127.5 - 1.0
  mel = np.asarray(example['mel'], np.float32)[..., None]
  out: dict[str, Any] = {'painting': painting, 'mel': mel, 'era': np.int32(example['era'])}
  if 'audio' in example:
    out['audio'] = records.pcm_to_audio(example['audio'])
  return out


_STORED_DTYPES = {
  'painting': np.uint8,
  'mel': records.MEL_DTYPE,
  'era': np.int32,
  'audio': records.AUDIO_DTYPE,
}


def train_row(index: int, example: dict[str, Any]) -> dict[str, Any]:
  """Decoded record at global stream position `index` -> the arrays a training batch carries:
  painting uint8 (S,S,3), mel float16 (S,S), era int32 (those of them the source reads; audio
  int16 (clip_samples,) when asked for), index uint32 (position modulo 2**32; it only keys the
  augmentation, see data/augment.py)."""
  row: dict[str, Any] = {
    k: np.asarray(v, _STORED_DTYPES[k]) for k, v in example.items() if k in _STORED_DTYPES
  }
  row['index'] = np.uint32(index % 2**32)
  return row


def resolve_workers(workers: int) -> int:
  """`input.workers`, with -1 (auto) resolved: no worker processes when JAX runs on the CPU (the
  training step wants every core), else `WORKERS_PER_ACCELERATOR` per local device, at most half
  of this host's cores."""
  if workers != AUTO_WORKERS:
    return workers
  if jax.default_backend() == 'cpu':
    return 0
  cores = os.cpu_count() or 1
  return max(1, min(WORKERS_PER_ACCELERATOR * jax.local_device_count(), cores // 2))


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


def stream_options(config, start_step: int) -> dict[str, Any]:
  """The `train_dataset` arguments every model family takes from its config (all but the data
  dir, the seed and the fields)."""
  return dict(
    global_batch_size=config.batch_size,
    shuffle_buffer=config.input.shuffle_buffer,
    workers=config.input.workers,
    start_step=start_step,
  )


def train_dataset(
  data_dir: str,
  *,
  global_batch_size: int,
  seed: int,
  shuffle_buffer: int = 0,
  workers: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
  start_step: int = 0,
  fields: tuple[str, ...] = TRAIN_KEYS,
) -> grain.IterDataset:
  """Infinite iterable of this host's batches, as stored: painting uint8 (b,S,S,3), mel float16
  (b,S,S), era int32 (b,), index uint32 (b,) (each row's position in the global stream).

  The first batch is the one for step `start_step + 1` (global batch `start_step`): a resumed
  run picks up where the checkpoint's step left off. `workers` > 0 decodes in that many
  processes; -1 picks a number for the backend (`resolve_workers`). `fields`: the record fields
  a batch carries (the vocoder reads mel and audio).
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  workers = resolve_workers(workers)
  source = records.open_train_split(data_dir, 'train', fields)
  if len(source) < global_batch_size:
    raise ValueError(
      f'batch_size={global_batch_size} exceeds the {len(source)} training examples in {data_dir}'
    )
  if source.png_paintings:
    logging.warning(
      '%s stores PNG paintings (the first dataset format): they read correctly but cost ~5x the '
      'host CPU per example; rebuild it with data_prep for the raw format.',
      data_dir,
    )
  ds = grain.MapDataset.source(source)
  ds = _shuffled(ds, seed, shuffle_buffer).repeat()  # reshuffled every epoch
  ds = ds.map_with_index(train_row)  # before HostRows: the index is the global position
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
  keys: tuple[str, ...] = TRAIN_KEYS,
) -> Iterator[dict[str, np.ndarray]]:
  """This host's rows of fixed-order, unaugmented global batches over a split.

  The last global batch is padded (`data.batching`); `mask` (b,) is 1.0 on real rows so metrics
  average exactly over the split (or its first `max_examples`). `keys`: the fields of
  `to_model_inputs` a batch carries.
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
    batch = {k: batching.pad_rows(np.stack([r[k] for r in rows]), local) for k in keys}
    batch[batching.MASK] = (np.arange(local) < len(real)).astype(np.float32)
    yield batch


# The mel side of an unpaired stream shuffles with seed + this, so its order is independent of
# the picture side's (seed itself).
MEL_SHUFFLE_SEED_OFFSET = 0x6D656C


class UnpairedBatches:
  """Unpaired batches for CycleGAN: pictures and mels drawn by two independent global shuffles of
  the same records, so a record's own pairing means nothing and any paired dataset can be used
  unpaired. Each side is a `train_dataset` stream (multi-host rows, resumable at `start_step`);
  a batch holds painting uint8 (b,S,S,3), painting_index uint32 (b,), mel float16 (b,S,S) and
  mel_index uint32 (b,) (each side's position in its own global stream)."""

  def __init__(self, data_dir: str, *, seed: int, **kwargs: Any):
    self._pictures = iter(train_dataset(data_dir, seed=seed, **kwargs))
    self._mels = iter(train_dataset(data_dir, seed=seed + MEL_SHUFFLE_SEED_OFFSET, **kwargs))

  def __iter__(self) -> UnpairedBatches:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    pictures, mels = next(self._pictures), next(self._mels)
    return {
      'painting': pictures['painting'],
      'painting_index': pictures['index'],
      'mel': mels['mel'],
      'mel_index': mels['index'],
    }

  def close(self) -> None:
    for it in (self._pictures, self._mels):
      if hasattr(it, 'close'):
        it.close()
