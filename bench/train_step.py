r"""Benchmark one pix2pix training step (D then G update) at the paper's size.

    python bench/train_step.py [--size=256] [--batch=1,8] [--steps=5] [--dtype=float32]
                               [--conv_impl=auto]

For each batch size prints compile time, median step time, examples/s, XLA's FLOP count per
step (cost analysis of the compiled program), achieved FLOP/s, memory, and a last line

    train_step size=S batch=B step_s=<median> examples_per_s=<x> mfu=<y|n/a>

MFU is reported on GPU/TPU against the device's peak dense bf16 FLOP/s (table below); n/a on
CPU. Uses synthetic data and all local devices (the batch is sharded over them).
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

_SIZE = flags.DEFINE_integer('size', 256, 'Image size S (power of two).')
_BATCH = flags.DEFINE_list('batch', ['1', '8'], 'Global batch sizes to time.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps per batch size (after one warm-up).')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype.')
_CONV_IMPL = flags.DEFINE_enum(
  'conv_impl',
  'auto',
  ['auto', 'gemm', 'phases', 'depth_to_space', 'native'],
  'Strided-conv formulation (models/pix2pix.py); auto: gemm on CPU, native on GPU/TPU.',
)
_NGF = flags.DEFINE_integer('ngf', 64, 'Generator width.')
_NDF = flags.DEFINE_integer('ndf', 64, 'Discriminator width.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also time the PyTorch pix2pix step if torch imports.')

# Peak dense bf16 FLOP/s per chip, by substring of jax's device_kind.
PEAK_BF16_FLOPS = {
  'H200': 989e12,
  'H100': 989e12,
  'A100': 312e12,
  'L40S': 362e12,
  'L4': 121e12,
  'A10': 125e12,
  'V100': 125e12,
  'TPU v6': 918e12,
  'TPU v5p': 459e12,
  'TPU v5': 197e12,
  'TPU v4': 275e12,
}


def peak_flops(device) -> float | None:
  if device.platform == 'cpu':
    return None
  for name, flops in PEAK_BF16_FLOPS.items():
    if name.lower() in device.device_kind.lower():
      return flops
  return None


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per program
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def _memory_mb(compiled, device) -> str:
  parts = []
  mem = compiled.memory_analysis()
  if mem is not None:
    total = (
      mem.argument_size_in_bytes
      + mem.output_size_in_bytes
      + mem.temp_size_in_bytes
      - mem.alias_size_in_bytes
    )
    parts.append(
      f'compiled peak ~{total / 2**20:.0f} MiB (temp {mem.temp_size_in_bytes / 2**20:.0f})'
    )
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if stats and 'peak_bytes_in_use' in stats:
    parts.append(f'device peak {stats["peak_bytes_in_use"] / 2**20:.0f} MiB')
  return ', '.join(parts) or 'n/a'


def bench_one(size: int, batch: int) -> str:
  import jax
  import numpy as np

  from pix2pitch_jax.audio import spectrogram
  from pix2pitch_jax.core import configs
  from pix2pitch_jax.data import records
  from pix2pitch_jax.runtime import sharding
  from pix2pitch_jax.training import loop, pix2pix_task

  config = configs.default_config()
  config.image_size, config.batch_size, config.dtype = size, batch, _DTYPE.value
  config.model.ngf, config.model.ndf, config.model.conv_impl = (
    _NGF.value,
    _NDF.value,
    _CONV_IMPL.value,
  )
  meta = records.DatasetMeta(spectrogram.MelParams(image_size=size), ('a', 'b'))
  mesh = sharding.make_mesh()
  sharding.check_global_batch(batch, mesh)
  task = pix2pix_task.Pix2PixTask(config, meta)
  state, shardings = loop.create_state(task, mesh)
  train_fn = loop.jit_train_step(task, mesh, shardings)
  rng = np.random.default_rng(0)
  # As the input pipeline ships it: stored bytes + global indices (augmented in the step).
  batch_np = {
    'painting': rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
    'mel': rng.uniform(-1, 1, (batch, size, size)).astype(np.float16),
    'era': np.zeros((batch,), np.int32),
    'index': np.arange(batch, dtype=np.uint32),
  }
  data = sharding.shard_batch(batch_np, mesh)

  t0 = time.perf_counter()
  compiled = train_fn.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, data)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(_STEPS.value):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  flops = _flops(compiled)
  device = jax.devices()[0]
  peak = peak_flops(device)
  achieved = flops / step_s if flops else None
  mfu = f'{achieved / (peak * jax.device_count()):.3f}' if achieved and peak else 'n/a'
  print(
    f'--- size={size} batch={batch} dtype={_DTYPE.value} conv_impl={_CONV_IMPL.value}'
    f'->{task.conv_impl} '
    f'devices={jax.device_count()}x{device.device_kind}'
  )
  print(
    f'compile_s={compile_s:.2f}  step_s median={step_s:.4f} '
    f'(min {min(times):.4f}, max {max(times):.4f}, n={len(times)})'
  )
  print(
    f'examples_per_s={batch / step_s:.2f}  flops_per_step='
    f'{flops / 1e9 if flops else float("nan"):.1f} GFLOP  achieved='
    f'{achieved / 1e9 if achieved else float("nan"):.1f} GFLOP/s'
  )
  print(f'memory: {_memory_mb(compiled, device)}')
  print(
    f'losses after {len(times) + 1} steps: G_L1={float(metrics["G_L1"]):.4f} '
    f'D_real={float(metrics["D_real"]):.4f}'
  )
  return (
    f'train_step size={size} batch={batch} step_s={step_s:.4f} '
    f'examples_per_s={batch / step_s:.2f} mfu={mfu}'
  )


def _torch_pix2pix(size: int, ngf: int, ndf: int):
  """pytorch-CycleGAN-and-pix2pix `unet_<size>` + `basic` D, BatchNorm, dropout (same recipe)."""
  import math

  import torch
  from torch import nn

  def block(outer, inner, sub=None, outermost=False, innermost=False, dropout=False, inp=None):
    inp = inp or outer
    down = [nn.LeakyReLU(0.2, True), nn.Conv2d(inp, inner, 4, 2, 1, bias=False)]
    if outermost:
      up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
      return nn.Sequential(down[1], sub, *up)
    if innermost:
      up = [
        nn.ReLU(True),
        nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False),
        nn.BatchNorm2d(outer),
      ]
      return Skip(nn.Sequential(*down, *up))
    up = [
      nn.ReLU(True),
      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False),
      nn.BatchNorm2d(outer),
    ]
    return Skip(
      nn.Sequential(*down, nn.BatchNorm2d(inner), sub, *up, *([nn.Dropout(0.5)] if dropout else []))
    )

  class Skip(nn.Module):
    def __init__(self, body):
      super().__init__()
      self.body = body

    def forward(self, x):
      return torch.cat([x, self.body(x)], 1)

  num_downs = int(math.log2(size))
  unet = block(ngf * 8, ngf * 8, innermost=True)
  for _ in range(num_downs - 5):
    unet = block(ngf * 8, ngf * 8, unet, dropout=True)
  for mult in (4, 2, 1):
    unet = block(ngf * mult, ngf * mult * 2, unet)
  generator = block(1, ngf, unet, outermost=True, inp=3)
  layers, ch = [nn.Conv2d(4, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)], ndf
  for n, stride in ((1, 2), (2, 2), (3, 1)):
    nxt = ndf * min(2**n, 8)
    layers += [
      nn.Conv2d(ch, nxt, 4, stride, 1, bias=False),
      nn.BatchNorm2d(nxt),
      nn.LeakyReLU(0.2, True),
    ]
    ch = nxt
  discriminator = nn.Sequential(*layers, nn.Conv2d(ch, 1, 4, 1, 1))
  return generator, discriminator


def torch_step_seconds(size: int, batch: int, steps: int) -> float | None:
  """Median seconds of pix2pix's optimize_parameters (D then G) in PyTorch on CPU, or None."""
  try:
    import torch
  except ImportError:
    return None
  g, d = _torch_pix2pix(size, _NGF.value, _NDF.value)
  opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
  bce, l1 = torch.nn.BCEWithLogitsLoss(), torch.nn.L1Loss()
  a, b = torch.rand(batch, 3, size, size) * 2 - 1, torch.rand(batch, 1, size, size) * 2 - 1
  times = []
  for _ in range(steps + 1):
    t0 = time.perf_counter()
    fake = g(a)
    opt_d.zero_grad()
    pred_fake, pred_real = d(torch.cat([a, fake.detach()], 1)), d(torch.cat([a, b], 1))
    loss_d = 0.5 * (
      bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real))
    )
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    pred = d(torch.cat([a, fake], 1))
    loss_g = bce(pred, torch.ones_like(pred)) + 100 * l1(fake, b)
    loss_g.backward()
    opt_g.step()
    times.append(time.perf_counter() - t0)
  return statistics.median(times[1:])


def main(argv):
  del argv
  lines = []
  for b in _BATCH.value:
    lines.append(bench_one(_SIZE.value, int(b)))
    torch_s = torch_step_seconds(_SIZE.value, int(b), _STEPS.value) if _TORCH.value else None
    if torch_s is not None:
      import torch

      print(
        f'pytorch {torch.__version__} same recipe (CPU, {torch.get_num_threads()} threads): '
        f'step_s median={torch_s:.4f}  examples_per_s={int(b) / torch_s:.2f}'
      )
  for line in lines[:-1]:
    print(line)
  print(lines[-1])


if __name__ == '__main__':
  app.run(main)
