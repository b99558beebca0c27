r"""Benchmark one pix2pix training step (D then G update) at the paper's size.

    python bench/train_step.py [--size=256] [--batch=1,8] [--steps=5] [--dtype=float32]
                               [--conv_impl=auto]

For each batch size prints compile time, median step time, examples/s, the model FLOPs per step
(convolutions and matmuls counted from the jaxpr of the step with native convolutions: the same
on every backend and for every `--conv_impl`; XLA's cost analysis of the compiled program beside
it, which on GPU misses the cuDNN/cuBLAS calls), achieved FLOP/s, memory, and a last line

    train_step size=S batch=B step_s=<median> examples_per_s=<x> mfu=<y|n/a>

MFU is reported on GPU/TPU against the device's peak dense bf16 FLOP/s (table below); n/a on
CPU. Uses synthetic data and all local devices (the batch is sharded over them).
"""

import math
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
  'Strided-conv formulation (models/pix2pix.py); auto: gemm on CPU, phases on GPU, native on TPU.',
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


def _jaxpr_flops(jaxpr) -> float:
  """FLOPs of the convolutions and matmuls of a jaxpr (2 per multiply-add), nested jaxprs included.

  Counted from the program as written, so the figure is the same on every backend: XLA's compiled
  cost analysis on GPU does not count the cuDNN/cuBLAS calls that do the work. Elementwise work
  (norms, activations, the optimiser) is left out; at 256^2 it is under 1 % of the step.
  """
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      out, rhs = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
      out_channels = rhs[eqn.params['dimension_numbers'].rhs_spec[0]]
      # A transposed (input-dilated) convolution multiplies only the input's real pixels, not the
      # zeros the dilation puts between them.
      dilation = math.prod(eqn.params['lhs_dilation'])
      total += 2.0 * math.prod(out) * math.prod(rhs) / out_channels / dilation
    elif name == 'dot_general':
      (contracting, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contracting)
    repeats = eqn.params.get('length', 1) if name == 'scan' else 1
    for sub in _sub_jaxprs(eqn.params):
      total += repeats * _jaxpr_flops(sub)
  return total


def _sub_jaxprs(params: dict):
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if hasattr(item, 'eqns'):  # Jaxpr
        yield item
      elif hasattr(item, 'jaxpr') and hasattr(item.jaxpr, 'eqns'):  # ClosedJaxpr
        yield item.jaxpr


def _compiled_flops(compiled) -> float | None:
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


def _train_step(size: int, batch: int, conv_impl: str):
  """(the jitted pix2pix step, its initial state, one synthetic batch on the devices)."""
  import numpy as np

  from pix2pitch_jax.audio import spectrogram
  from pix2pitch_jax.core import configs
  from pix2pitch_jax.data import records
  from pix2pitch_jax.runtime import sharding
  from pix2pitch_jax.training import loop, pix2pix_task

  config = configs.default_config()
  config.image_size, config.batch_size, config.dtype = size, batch, _DTYPE.value
  config.model.ngf, config.model.ndf, config.model.conv_impl = _NGF.value, _NDF.value, conv_impl
  meta = records.DatasetMeta(spectrogram.MelParams(image_size=size), ('a', 'b'))
  mesh = sharding.make_mesh()
  sharding.check_global_batch(batch, mesh)
  task = pix2pix_task.Pix2PixTask(config, meta)
  state, shardings = loop.create_state(task, mesh)
  rng = np.random.default_rng(0)
  # As the input pipeline ships it: stored bytes + global indices (augmented in the step).
  batch_np = {
    'painting': rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
    'mel': rng.uniform(-1, 1, (batch, size, size)).astype(np.float16),
    'era': np.zeros((batch,), np.int32),
    'index': np.arange(batch, dtype=np.uint32),
  }
  data = sharding.shard_batch(batch_np, mesh)
  return task, loop.jit_train_step(task, mesh, shardings), state, data


def model_flops(size: int, batch: int) -> float:
  """The step's FLOPs as the model defines them: counted on the `native` formulation (strided and
  transposed convolutions), whatever formulation is timed, so MFU compares across formulations."""
  _, train_fn, state, data = _train_step(size, batch, 'native')
  return _jaxpr_flops(train_fn.trace(state, data).jaxpr.jaxpr)


def bench_one(size: int, batch: int) -> tuple[str, float]:
  """Time the step at `batch`: (the summary line, the median step seconds)."""
  import jax

  task, train_fn, state, data = _train_step(size, batch, _CONV_IMPL.value)

  t0 = time.perf_counter()
  traced = train_fn.trace(state, data)
  compiled = traced.lower().compile()
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
  flops = model_flops(size, batch)
  xla_flops = _compiled_flops(compiled)
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
    f'examples_per_s={batch / step_s:.2f}  model flops_per_step={flops / 1e9:.1f} GFLOP '
    f'(XLA cost analysis of the compiled step: '
    f'{xla_flops / 1e9 if xla_flops else float("nan"):.1f})  achieved='
    f'{achieved / 1e9 if achieved else float("nan"):.1f} GFLOP/s'
  )
  print(f'memory: {_memory_mb(compiled, device)}')
  print(
    f'losses after {len(times) + 1} steps: G_L1={float(metrics["G_L1"]):.4f} '
    f'D_real={float(metrics["D_real"]):.4f}'
  )
  line = (
    f'train_step size={size} batch={batch} step_s={step_s:.4f} '
    f'examples_per_s={batch / step_s:.2f} mfu={mfu}'
  )
  return line, step_s


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


def _torch_device() -> str:
  """PyTorch runs where JAX runs: on the GPU when JAX's backend is one and torch sees CUDA."""
  import jax
  import torch

  return 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu'


def torch_step_seconds(size: int, batch: int, steps: int) -> float | None:
  """Median seconds of pix2pix's optimize_parameters (D then G) in PyTorch (on the GPU under
  bf16 autocast when JAX runs there in bf16; on the CPU otherwise), or None."""
  try:
    import torch
  except ImportError:
    return None
  device = _torch_device()
  torch.backends.cudnn.benchmark = True  # PyTorch's best convolution algorithms, as ours are
  g, d = (m.to(device) for m in _torch_pix2pix(size, _NGF.value, _NDF.value))
  opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
  bce, l1 = torch.nn.BCEWithLogitsLoss(), torch.nn.L1Loss()
  a = torch.rand(batch, 3, size, size, device=device) * 2 - 1
  b = torch.rand(batch, 1, size, size, device=device) * 2 - 1
  autocast = torch.autocast(
    device, dtype=torch.bfloat16, enabled=device == 'cuda' and _DTYPE.value == 'bfloat16'
  )
  times = []
  for _ in range(steps + 3):  # three warm-ups: cudnn.benchmark tries algorithms first
    t0 = time.perf_counter()
    with autocast:
      fake = g(a)
      opt_d.zero_grad()
      pred_fake, pred_real = d(torch.cat([a, fake.detach()], 1)), d(torch.cat([a, b], 1))
      loss_d = 0.5 * (
        bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real))
      )
    loss_d.backward()
    opt_d.step()
    with autocast:
      opt_g.zero_grad()
      pred = d(torch.cat([a, fake], 1))
      loss_g = bce(pred, torch.ones_like(pred)) + 100 * l1(fake, b)
    loss_g.backward()
    opt_g.step()
    if device == 'cuda':
      torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
  return statistics.median(times[3:])


def main(argv):
  del argv
  lines = []
  for b in _BATCH.value:
    line, step_s = bench_one(_SIZE.value, int(b))
    lines.append(line)
    torch_s = torch_step_seconds(_SIZE.value, int(b), _STEPS.value) if _TORCH.value else None
    if torch_s is not None:
      import torch

      where = 'GPU' if _torch_device() == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
      print(
        f'pytorch {torch.__version__} same recipe ({where}): '
        f'step_s median={torch_s:.4f}  examples_per_s={int(b) / torch_s:.2f}  '
        f'ratio ours/pytorch={step_s / torch_s:.2f}'
      )
  for line in lines[:-1]:
    print(line)
  print(lines[-1])


if __name__ == '__main__':
  app.run(main)
