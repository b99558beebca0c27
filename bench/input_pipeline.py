r"""Host input throughput of the training pipeline, and the host cores accelerators would need.

    python bench/input_pipeline.py [--size=256] [--examples=64] [--copies=16] [--batch=32]
                                   [--batches=40] [--png] [--step]

Builds a small dataset in the on-disk format data_prep writes (64 synthetic paintings: smooth
colour fields with noise, like a scanned canvas; mel = the painting's brightness), each stored
16 times (1 024 records, ~330 MB at 256^2: grain's index shuffle costs ~21 ms / split length
per element, 330 us for 64 records but 3.5 us for a real 22k split), then times
`input_pipeline.train_dataset` as training uses it (global shuffle, host rows, batches of stored
bytes: uint8 paintings, float16 mels, global indices; augmentation is on the device, not here).

The rate is per CPU-second of this process (`time.process_time`, all its threads), so it reads as
examples/s per host core and does not depend on what else shares the machine. `--png` also times
a dataset in the first format (PNG paintings, zstd records). `--step` times the training step at
batch 1 on this machine (compile + 3 steps; what one CPU host consumes).

The demand side: at S=256 one example costs ~87 GFLOP (forward + backward of G and D, XLA's count,
bench/train_step.py), so one H100 at 35 % of 990 TFLOP/s bf16 consumes ~4 000 examples/s and a
host of 8 ~32 000/s. The last line is

    input_pipeline size=256 examples_per_s_per_core=<x> cores_for_8xH100=<n>
"""

import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

_SIZE = flags.DEFINE_integer('size', 256, 'Image size S.')
_EXAMPLES = flags.DEFINE_integer('examples', 64, 'Distinct synthetic examples.')
_COPIES = flags.DEFINE_integer('copies', 16, 'Records per distinct example (split length).')
_BATCH = flags.DEFINE_integer('batch', 32, 'Global batch size (one host).')
_BATCHES = flags.DEFINE_integer('batches', 40, 'Timed batches (after 4 warm-up batches).')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs; the best (least disturbed) is kept.')
_PNG = flags.DEFINE_bool('png', False, 'Also time the first format (PNG paintings).')
_STEP = flags.DEFINE_bool('step', False, 'Also time the training step at batch 1 here.')
_WORKERS = flags.DEFINE_integer(
  'workers', 2, 'Also time the receiving process with this many grain worker processes (0: no).'
)

FLOP_PER_EXAMPLE_256 = 87e9  # fwd + bwd of G and D at 256x256 (XLA cost analysis)
H100_BF16_FLOPS = 990e12
MFU = 0.35
GPUS_PER_HOST = 8


def synthetic_examples(n: int, size: int, seed: int = 0) -> list[dict]:
  import numpy as np
  from PIL import Image

  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    low = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    field = Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC)
    painting = np.asarray(field, np.float32) + rng.normal(0, 8, (size, size, 3))
    painting = np.clip(painting, 0, 255).astype(np.uint8)
    out.append(
      dict(
        painting=painting,
        mel=painting.mean(-1) / 127.5 - 1.0,
        era=i % 2,
        painting_id=f'p{i}',
        clip_source_id=f'c{i}',
        clip_offset_s=float(i),
      )
    )
  return out


def build_dataset(data_dir: str, examples: list[dict], size: int) -> str:
  from pix2pitch_jax.audio import spectrogram
  from pix2pitch_jax.data import records

  meta = records.DatasetMeta(spectrogram.MelParams(image_size=size), ('a', 'b'), source='bench')
  records.write_split(data_dir, 'train', examples, meta, num_shards=2)
  records.write_metadata(data_dir, meta)
  return data_dir


def build_png_dataset(data_dir: str, examples: list[dict], size: int) -> str:
  """The first format: PNG paintings, float-list mels, zstd-compressed records."""
  import io

  import numpy as np
  import tensorflow_datasets as tfds
  from array_record.python import array_record_module
  from PIL import Image

  from pix2pitch_jax.audio import spectrogram
  from pix2pitch_jax.data import records

  def features(image_size, era_names):
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

  os.makedirs(data_dir, exist_ok=True)
  spec = features(size, ('a', 'b'))
  for shard in range(2):
    writer = array_record_module.ArrayRecordWriter(
      str(records.shard_path(data_dir, 'train', shard, 2)), 'group_size:1'
    )
    for ex in examples[shard::2]:
      buf = io.BytesIO()
      Image.fromarray(ex['painting']).save(buf, format='PNG')
      mel = np.asarray(ex['mel'], np.float16)
      writer.write(
        spec.serialize_example(dict(ex, painting=buf.getvalue(), mel=mel, notes_json=''))
      )
    writer.close()
  meta = records.DatasetMeta(spectrogram.MelParams(image_size=size), ('a', 'b'), source='bench')
  original = records.make_features
  records.make_features = features  # write_metadata describes the shards with these features
  try:
    records.write_metadata(data_dir, meta)
  finally:
    records.make_features = original
  return data_dir


def bytes_per_example(data_dir: str, n: int) -> float:
  from pix2pitch_jax.data import records

  return sum(p.stat().st_size for p in records.finished_shards(data_dir)['train']) / n


def decode_rate(data_dir: str) -> float:
  """Records read and decoded per CPU-second (the training source alone, no pipeline around it)."""
  from pix2pitch_jax.data import records

  source = records.open_train_split(data_dir, 'train')
  n = len(source)
  for i in range(min(n, 8)):
    source[i]
  t0 = time.process_time()
  count = 0
  while time.process_time() - t0 < 1.0:
    for i in range(n):
      source[i]
    count += n
  return count / (time.process_time() - t0)


def pipeline_rate(data_dir: str, batch: int, batches: int, workers: int = 0) -> tuple[float, float]:
  """(examples per CPU-second of this process, examples per wall second) of `train_dataset` on
  one host. With workers, this process only receives the batches the workers decode."""
  from pix2pitch_jax.data import input_pipeline

  iterator = iter(
    input_pipeline.train_dataset(data_dir, global_batch_size=batch, seed=0, workers=workers)
  )
  for _ in range(4):
    next(iterator)
  cpu, wall = time.process_time(), time.perf_counter()
  for _ in range(batches):
    next(iterator)
  cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
  return batch * batches / cpu, batch * batches / wall


def step_rate(size: int) -> tuple[float, str]:
  """Examples/s of the training step at batch 1 on this machine, and the formulation used."""
  import jax
  import numpy as np

  from pix2pitch_jax.audio import spectrogram
  from pix2pitch_jax.core import configs
  from pix2pitch_jax.data import records
  from pix2pitch_jax.runtime import sharding
  from pix2pitch_jax.training import loop, pix2pix_task

  config = configs.default_config()
  config.image_size, config.batch_size = size, 1
  meta = records.DatasetMeta(spectrogram.MelParams(image_size=size), ('a', 'b'))
  mesh = sharding.make_mesh(1)
  task = pix2pix_task.Pix2PixTask(config, meta)
  state, shardings = loop.create_state(task, mesh)
  train_fn = loop.jit_train_step(task, mesh, shardings)
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
    {
      'painting': rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8),
      'mel': rng.uniform(-1, 1, (1, size, size)).astype(np.float16),
      'era': np.zeros((1,), np.int32),
      'index': np.zeros((1,), np.uint32),
    },
    mesh,
  )
  state, metrics = train_fn(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(3):
    t0 = time.perf_counter()
    state, metrics = train_fn(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return 1.0 / statistics.median(times), task.conv_impl


def main(argv):
  del argv
  import jax

  size, n = _SIZE.value, _EXAMPLES.value
  print(
    f'machine: {os.cpu_count()} cores, jax {jax.__version__} ({jax.default_backend()}); '
    f'load average {os.getloadavg()[0]:.1f}'
  )
  per_gpu = MFU * H100_BF16_FLOPS / (FLOP_PER_EXAMPLE_256 * (size / 256) ** 2)
  demand = GPUS_PER_HOST * per_gpu
  with tempfile.TemporaryDirectory() as tmp:
    examples = synthetic_examples(n, size) * _COPIES.value
    n = len(examples)
    datasets = {'raw (data_prep today)': build_dataset(f'{tmp}/raw', examples, size)}
    if _PNG.value:
      datasets['png (first format)'] = build_png_dataset(f'{tmp}/png', examples, size)
    best = {}
    for name, data_dir in datasets.items():
      decode = decode_rate(data_dir)
      runs = [pipeline_rate(data_dir, _BATCH.value, _BATCHES.value) for _ in range(_REPEATS.value)]
      per_core, wall = max(runs)
      best[name] = per_core
      print(
        f'{name}: {bytes_per_example(data_dir, n) / 1024:.0f} KiB/example on disk; '
        f'decode only {decode:.0f} examples/CPU-s; train pipeline (batch {_BATCH.value}, '
        f'workers=0) {per_core:.0f} examples/CPU-s, {wall:.0f} examples/s wall '
        f'(runs: {", ".join(f"{r[0]:.0f}" for r in runs)})'
      )
    if _WORKERS.value:
      data_dir = datasets['raw (data_prep today)']
      receive, wall = pipeline_rate(data_dir, _BATCH.value, _BATCHES.value, _WORKERS.value)
      per_core = best['raw (data_prep today)']
      with_ipc = 1 / (1 / per_core + 1 / receive)
      print(
        f'with {_WORKERS.value} worker processes: the training process spends '
        f'{1e6 / receive:.0f} us/example receiving their batches ({receive:.0f} examples per '
        f'CPU-s of it: its ceiling), {wall:.0f} examples/s wall; decode + transfer '
        f'{with_ipc:.0f} examples per core, {math.ceil(demand / with_ipc)} cores for 8 x H100'
      )
  to_device = size * size * (3 * 1 + 2) + 8
  print(
    f'host->device per example: {to_device / 1024:.0f} KiB (uint8 painting, float16 mel, era, '
    f'index) vs {size * size * 4 * 4 / 1024:.0f} KiB as float32'
  )
  if _STEP.value:
    rate, impl = step_rate(size)
    print(
      f'training step on this machine (batch 1, conv_impl {impl}, float32): {rate:.2f} examples/s '
      f'= {rate / best["raw (data_prep today)"] * 100:.2f} % of one core of input'
    )
  print(
    f'demand: one H100 at {MFU:.0%} MFU ({FLOP_PER_EXAMPLE_256 / 1e9:.0f} GFLOP/example at '
    f'256^2) ~{per_gpu:.0f} examples/s; {GPUS_PER_HOST} per host ~{demand:.0f} examples/s'
  )
  per_core = best['raw (data_prep today)']
  for name, rate in best.items():
    print(f'{name}: {math.ceil(demand / rate)} host cores for 8 x H100')
  print(
    f'input_pipeline size={size} examples_per_s_per_core={per_core:.0f} '
    f'cores_for_8xH100={math.ceil(demand / per_core)}'
  )


if __name__ == '__main__':
  app.run(main)
