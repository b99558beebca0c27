r"""Roofline on paper for the strided-conv formulations (`model.conv_impl`), from XLA's cost model.

    python bench/conv_roofline.py [--batch=32] [--size=256] [--impls=gemm,phases,...] [--no-layers]

No accelerator is needed: every program is only lowered and compiled (never run), and
`compiled.cost_analysis()` gives its FLOPs and bytes accessed. Printed for the pix2pix U-Net
(ngf=64) and PatchGAN (ndf=64), forward + backward:

* per strided layer: y = conv(x, k) with dx and dk from a given dy (the outermost U-Net layer
  needs no dx: its input is data);
* per network: the generator (training mode: batch statistics, dropout) w.r.t. its parameters,
  the discriminator w.r.t. its parameters and the mel input (what the G update needs).

Which bytes. XLA:CPU is the only compiler here, and it computes bfloat16 convolutions by
converting to float32 (its bf16 byte counts describe the CPU, not an accelerator). So the bytes
used for the roofline are those of the float32 program compiled by XLA:CPU (after its fusion
passes), halved for bfloat16: on GPU/TPU every tensor of the mixed-precision step is 2 bytes.
The unfused bytes of the bf16 program before optimisation (`lowered.cost_analysis()`: every HLO
op reads its operands and writes its result) are printed as an upper bound. FLOPs are the same
in both and independent of the backend.

The roofline: a program bound by compute takes flops / peak; one bound by memory takes
bytes / bandwidth. Arithmetic intensity (FLOP/byte) above the ridge point (peak / bandwidth)
means compute-bound. The last lines give the whole-network figures per formulation; the table in
docs/training.md ("Kernels per platform") comes from this script.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

_BATCH = flags.DEFINE_integer('batch', 32, 'Global batch size.')
_SIZE = flags.DEFINE_integer('size', 256, 'Image size S.')
_NGF = flags.DEFINE_integer('ngf', 64, 'Generator width.')
_NDF = flags.DEFINE_integer('ndf', 64, 'Discriminator width.')
_IMPLS = flags.DEFINE_list(
  'impls', ['gemm', 'phases', 'depth_to_space', 'native'], 'Formulations to compare.'
)
_LAYERS = flags.DEFINE_bool('layers', True, 'Also print the per-layer table.')

# Peak dense bf16 FLOP/s and HBM bandwidth (bytes/s), public data-sheet figures.
DEVICES = {
  'H100 SXM': (990e12, 3.35e12),
  'TPU v5e': (197e12, 819e9),
}


@dataclasses.dataclass
class Cost:
  flops: float  # XLA's count for the program (the same in f32 and bf16)
  bytes_f32: float  # XLA:CPU, compiled float32 program
  bytes_unfused_bf16: float  # bf16 program before optimisation

  @property
  def bytes_bf16(self) -> float:
    """Estimated accelerator traffic of the bf16 program: the compiled f32 bytes halved."""
    return self.bytes_f32 / 2

  @property
  def intensity(self) -> float:
    return self.flops / self.bytes_bf16

  def __add__(self, other: Cost) -> Cost:
    return Cost(
      self.flops + other.flops,
      self.bytes_f32 + other.bytes_f32,
      self.bytes_unfused_bf16 + other.bytes_unfused_bf16,
    )


def _first(cost):
  if isinstance(cost, (list, tuple)):  # older jax: one dict per program
    cost = cost[0]
  return cost


def cost_of(make_fn, make_args) -> Cost:
  """FLOPs and bytes of `make_fn(dtype)` on `make_args(dtype)` (ShapeDtypeStructs).

  One compilation (float32, for the fused bytes and the FLOPs) and one lowering (bf16, unfused).
  """
  import jax
  import jax.numpy as jnp

  unfused = _first(jax.jit(make_fn(jnp.bfloat16)).lower(*make_args(jnp.bfloat16)).cost_analysis())
  compiled = jax.jit(make_fn(jnp.float32)).lower(*make_args(jnp.float32)).compile()
  f32 = _first(compiled.cost_analysis())
  return Cost(float(f32['flops']), float(f32['bytes accessed']), float(unfused['bytes accessed']))


# ----------------------------------------------------------------------------- layers


@dataclasses.dataclass(frozen=True)
class Layer:
  name: str
  kind: str  # 'down' | 'up'
  size: int  # input spatial size
  cin: int
  cout: int
  need_dx: bool = True


def unet_layers(size: int, ngf: int) -> list[Layer]:
  from pix2pitch_jax.models import pix2pix

  chans = pix2pix.unet_channels(size, ngf)
  n = len(chans)
  layers = [
    Layer(f'G down{i}', 'down', size >> i, 3 if i == 0 else chans[i - 1], chans[i], need_dx=i > 0)
    for i in range(n)
  ]
  for j in range(n):
    cin = chans[n - 1] if j == 0 else 2 * chans[n - 1 - j]
    cout = 1 if j == n - 1 else chans[n - 2 - j]
    layers.append(Layer(f'G up{j}', 'up', 1 << j, cin, cout))
  return layers


def patchgan_layers(size: int, ndf: int, n_layers: int = 3) -> list[Layer]:
  chans = [ndf * min(2**i, 8) for i in range(n_layers)]
  return [
    Layer(f'D down{i}', 'down', size >> i, 4 if i == 0 else chans[i - 1], chans[i])
    for i in range(n_layers)
  ]


def layer_cost(layer: Layer, impl: str, batch: int) -> Cost:
  import jax

  from pix2pitch_jax.models import pix2pix

  op = pix2pix.conv_4x4_s2 if layer.kind == 'down' else pix2pix.conv_transpose_4x4_s2
  out = layer.size // 2 if layer.kind == 'down' else layer.size * 2

  def make_fn(dtype):
    del dtype

    def fwd_bwd(x, k, dy):
      y, vjp = jax.vjp(lambda x, k: op(x, k, impl), x, k)
      dx, dk = vjp(dy)
      return (y, dx, dk) if layer.need_dx else (y, dk)

    return fwd_bwd

  def make_args(dtype):
    s = jax.ShapeDtypeStruct
    return (
      s((batch, layer.size, layer.size, layer.cin), dtype),
      s((4, 4, layer.cin, layer.cout), dtype),
      s((batch, out, out, layer.cout), dtype),
    )

  return cost_of(make_fn, make_args)


# ----------------------------------------------------------------------------- networks


def network_costs(impl: str, batch: int, size: int, ngf: int, ndf: int) -> tuple[Cost, Cost]:
  """(generator, discriminator) forward + backward in training mode."""
  import jax
  from flax import nnx

  from pix2pitch_jax.models import pix2pix

  def build_g(dtype):
    return nnx.eval_shape(
      lambda: pix2pix.UNetGenerator(size, ngf=ngf, conv_impl=impl, dtype=dtype, rngs=nnx.Rngs(0))
    )

  def build_d(dtype):
    return nnx.eval_shape(
      lambda: pix2pix.PatchDiscriminator(ndf=ndf, conv_impl=impl, dtype=dtype, rngs=nnx.Rngs(0))
    )

  def split(module):
    graphdef, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)  # type: ignore[misc]
    return graphdef, params, stats

  def g_fn(dtype):
    graphdef = split(build_g(dtype))[0]

    def fwd_bwd(params, stats, paintings, dy, key):
      def apply(params):
        return nnx.merge(graphdef, params, stats, copy=True)(paintings, dropout_key=key)

      y, vjp = jax.vjp(apply, params)
      return y, vjp(dy)[0]

    return fwd_bwd

  def g_args(dtype):
    _, params, stats = split(build_g(dtype))
    s = jax.ShapeDtypeStruct
    return (
      params,
      stats,
      s((batch, size, size, 3), 'float32'),
      s((batch, size, size, 1), 'float32'),
      jax.eval_shape(lambda: jax.random.key(0)),
    )

  def d_fn(dtype):
    graphdef = split(build_d(dtype))[0]

    def fwd_bwd(params, stats, paintings, mels, dy):
      def apply(params, mels):
        return nnx.merge(graphdef, params, stats, copy=True)(paintings, mels)

      y, vjp = jax.vjp(apply, params, mels)
      return y, *vjp(dy)

    return fwd_bwd

  def d_args(dtype):
    _, params, stats = split(build_d(dtype))
    out = size // 8 - 2  # three halvings, then two k4/p1 stride-1 convs
    s = jax.ShapeDtypeStruct
    return (
      params,
      stats,
      s((batch, size, size, 3), 'float32'),
      s((batch, size, size, 1), 'float32'),
      s((batch, out, out, 1), 'float32'),
    )

  return cost_of(g_fn, g_args), cost_of(d_fn, d_args)


# ----------------------------------------------------------------------------- report


def bound(cost: Cost, device: str) -> tuple[str, float]:
  """('compute' | 'memory', lower bound on the time in ms) on `device` in bf16."""
  peak, bandwidth = DEVICES[device]
  t_compute, t_memory = cost.flops / peak, cost.bytes_bf16 / bandwidth
  return ('compute' if t_compute >= t_memory else 'memory'), 1e3 * max(t_compute, t_memory)


def row(name: str, impl: str, cost: Cost) -> str:
  cells = [
    f'{name:10s}',
    f'{impl:14s}',
    f'{cost.flops / 1e9:9.2f}',
    f'{cost.bytes_bf16 / 1e6:9.1f}',
    f'{cost.bytes_unfused_bf16 / 1e6:9.1f}',
    f'{cost.intensity:7.0f}',
  ]
  for device in DEVICES:
    kind, ms = bound(cost, device)
    cells.append(f'{kind:>7s} {ms:7.3f}')
  return '  '.join(cells)


HEADER = (
  f'{"layer":10s}  {"conv_impl":14s}  {"GFLOP":>9s}  {"MB bf16":>9s}  {"MB unfused":>9s}  '
  f'{"FLOP/B":>7s}  ' + '  '.join(f'{d + " bound, ms":>15s}' for d in DEVICES)
)


def main(argv):
  del argv
  import jax

  batch, size = _BATCH.value, _SIZE.value
  print(
    f'pix2pix {size}x{size}, batch {batch}, forward + backward, bf16 compute; '
    f'jax {jax.__version__}, costs from XLA:{jax.default_backend().upper()} (compiled, not run)'
  )
  for device, (peak, bandwidth) in DEVICES.items():
    print(
      f'{device}: {peak / 1e12:.0f} TFLOP/s bf16, {bandwidth / 1e9:.0f} GB/s: ridge point '
      f'{peak / bandwidth:.0f} FLOP/byte'
    )
  start = time.perf_counter()
  if _LAYERS.value:
    layers = unet_layers(size, _NGF.value) + patchgan_layers(size, _NDF.value)
    print('\nper strided layer (x: input, k: 4x4 kernel; y, dx, dk)')
    print(HEADER)
    for layer in layers:
      for impl in _IMPLS.value:
        print(row(layer.name, impl, layer_cost(layer, impl, batch)), flush=True)
  print('\nper network (training mode, forward + backward)')
  print(HEADER)
  totals = {}
  for impl in _IMPLS.value:
    g, d = network_costs(impl, batch, size, _NGF.value, _NDF.value)
    print(row('G', impl, g), flush=True)
    print(row('D', impl, d), flush=True)
    totals[impl] = g + d
  print(f'\n(analysis took {time.perf_counter() - start:.0f} s)')
  for impl, cost in totals.items():
    h100, v5e = bound(cost, 'H100 SXM'), bound(cost, 'TPU v5e')
    print(
      f'conv_roofline impl={impl} batch={batch} gflop={cost.flops / 1e9:.1f} '
      f'mb_bf16={cost.bytes_bf16 / 1e6:.0f} flop_per_byte={cost.intensity:.0f} '
      f'h100={h100[0]} v5e={v5e[0]}'
    )


if __name__ == '__main__':
  app.run(main)
