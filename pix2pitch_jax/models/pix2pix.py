"""The pix2pix networks in Flax NNX: a U-Net generator and a PatchGAN discriminator.

Architecture follows the reference pix2pix (Isola et al. 2017; pytorch-CycleGAN-and-pix2pix
`unet_256` / `basic` D) and the Pix2Pitch thesis:

* Generator: log2(S) encoder steps of 4x4 stride-2 convs with ngf * (1, 2, 4, 8, 8, ...) channels,
  LeakyReLU(0.2), no norm on the first and on the 1x1 bottleneck (a BatchNorm over one pixel of
  batch 1 would zero it); a mirrored decoder of 4x4 stride-2 transposed convs with skip
  connections, ReLU, dropout 0.5 in the three innermost decoder blocks and a tanh output.
* Discriminator: 70x70 PatchGAN on (painting || mel) with C64(no norm)-C128-C256-C512(stride 1)-1.

Weights are N(0, 0.02). Parameters live in float32; `dtype` sets the compute dtype (bfloat16 for
mixed precision); normalisation statistics and the outputs are float32.

Normalisation. `norm='batch'` is nnx.BatchNorm with *no* `axis_name`: under a global `jax.jit`
the batch is one sharded array, so the statistics are computed over the whole global batch —
synchronised BatchNorm, independent of how many devices hold it. This is what makes 1-device and
8-device runs agree. (pix2pix on several GPUs in PyTorch uses per-GPU statistics instead.)

Strided convolutions (`conv_impl`). XLA:CPU differentiates strided (transposed) convs very
slowly: the input gradient of a strided conv is a strided transposed conv and vice
versa. The 4x4 stride-2 layers therefore keep the reference 4x4 kernel as their parameter (same
names and shapes as nnx.Conv / nnx.ConvTranspose) but can compute the identical function with
stride-1 convs only:

* `'gemm'`: what PyTorch does on CPU. Down = im2col (the 16 strided views of the
  padded input) + one matrix multiply; up = one matrix multiply to all 16 taps + col2im (each
  output phase sums four shifted tap images), per tap for inputs of a few pixels so the big inner
  kernels are read in their stored layout. Taps that only ever meet padding (1-pixel sides) are
  skipped. Same MACs as the strided ops; the gradients are matmuls and shifted slices, which
  XLA:CPU runs at GEMM speed (YNNPACK), where its conv gradients at small spatial size or a
  single output channel (the outermost up conv) are 2-20x slower. Fastest on CPU (measured
  per layer and per step, docs/training.md).
* `'phases'`: down = space-to-depth + one 2x2 conv; up = four 2x2 convs, one per
  output phase, interleaved by depth-to-space. Same MACs as the strided ops.
* `'depth_to_space'`: down as above; up = one 3x3 conv producing all four phases (9/4 the MACs,
  one big GEMM) + depth-to-space.
* `'native'`: `lax.conv_general_dilated` with stride 2 and `lax.conv_transpose` (what cuDNN
  prefers; the reference the others are tested against).

All four give the same outputs for the same parameters up to float rounding
(tests/test_models.py); only speed differs. `'auto'` (the default) picks one for the backend the
model is built on (`choose_conv_impl`): 'gemm' on CPU, 'phases' on NVIDIA GPUs, 'native' on TPU
(as measured; docs/training.md, "Kernels per platform"). Parameters are the same whatever the
choice, so a checkpoint trained with one formulation runs with any other.

Rematerialisation (`remat=True`). Each U-Net block (conv, norm, dropout) and each PatchGAN layer
runs under `nnx.remat` (`jax.checkpoint`): the backward pass keeps only the blocks' inputs and
recomputes what is inside them, trading about one extra forward pass for activation memory. The
function computed is the same (tests/test_train.py: same losses as without).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Norm = Literal['batch', 'instance', 'none']
ConvImpl = Literal['gemm', 'phases', 'depth_to_space', 'native']
NORMS = ('batch', 'instance', 'none')
CONV_IMPLS = ('gemm', 'phases', 'depth_to_space', 'native')
AUTO = 'auto'  # resolved per backend by `resolve_conv_impl`
CONV_IMPL_CHOICES = (AUTO, *CONV_IMPLS)

_INIT = nnx.initializers.normal(0.02)  # pix2pix init_type='normal', gain 0.02
# pix2pix initialises norm scales N(1, 0.02) and biases 0.
_SCALE_INIT = lambda key, shape, dtype=jnp.float32: (
  1.0 + 0.02 * jax.random.normal(key, shape, dtype)
)
NUM_DROPOUT_BLOCKS = 3  # dropout in the three innermost decoder blocks (pix2pix)
# PyTorch's padding=1 for a 4x4 kernel, as explicit (low, high) pairs.
_PAD1 = ((1, 1), (1, 1))


def choose_conv_impl(platform: str) -> ConvImpl:
  """The formulation that suits a backend ('cpu', 'gpu', 'cuda', 'rocm', 'tpu', ...).

  Measured, not guessed (docs/training.md, "Kernels per platform"): XLA:CPU runs im2col + GEMM
  fastest; on an NVIDIA GPU (H200, bf16, 256^2) the four-phase formulation beat cuDNN's strided
  and transposed convolutions by 1.3-1.4x at batch 32 and 128, as its 2x2 stride-1 convolutions
  map onto cuDNN's best kernels. TPU and ROCm were not measured: native convolutions, which read
  each input once where im2col writes and reads a 4x copy of it.
  """
  if platform == 'cpu':
    return 'gemm'
  if platform in ('gpu', 'cuda'):
    return 'phases'
  return 'native'


def resolve_conv_impl(impl: str, platform: str | None = None) -> ConvImpl:
  """`impl`, with 'auto' replaced by `choose_conv_impl` for `platform` (default: JAX's backend)."""
  if impl == AUTO:
    return choose_conv_impl(platform or jax.default_backend())
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl must be one of {CONV_IMPL_CHOICES}, got {impl!r}')
  return impl  # type: ignore[return-value]


class Norm2d(nnx.Module):
  """BatchNorm (synchronised over the global batch), InstanceNorm, or identity."""

  def __init__(self, features: int, kind: Norm, *, rngs: nnx.Rngs):
    self.kind = kind
    self.layer: nnx.BatchNorm | nnx.InstanceNorm | None
    if kind == 'batch':
      # momentum 0.9 == PyTorch's 0.1; use_running_average is flipped by `eval_view`.
      self.layer = nnx.BatchNorm(
        features,
        momentum=0.9,
        epsilon=1e-5,
        use_running_average=False,
        scale_init=_SCALE_INIT,
        rngs=rngs,
      )
    elif kind == 'instance':
      # PyTorch's InstanceNorm2d default (affine=False) as in pix2pix --norm instance.
      self.layer = nnx.InstanceNorm(
        features, epsilon=1e-5, use_scale=False, use_bias=False, rngs=rngs
      )
    elif kind == 'none':
      self.layer = None
    else:
      raise ValueError(f'norm must be one of {NORMS}, got {kind!r}')

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.layer is None:
      return x
    # Statistics in float32 even under bfloat16 compute.
    return self.layer(x.astype(jnp.float32)).astype(x.dtype)


def _conv(
  in_features: int,
  out_features: int,
  *,
  stride: int,
  use_bias: bool,
  impl: ConvImpl,
  dtype,
  rngs: nnx.Rngs,
) -> nnx.Module:
  if stride == 2:
    return DownConv(in_features, out_features, use_bias=use_bias, impl=impl, dtype=dtype, rngs=rngs)
  return nnx.Conv(
    in_features,
    out_features,
    kernel_size=(4, 4),
    strides=(stride, stride),
    padding=_PAD1,
    use_bias=use_bias,
    kernel_init=_INIT,
    dtype=dtype,
    rngs=rngs,
  )


def space_to_depth(x: jax.Array, block: int = 2) -> jax.Array:
  """(B,H*b,W*b,C) -> (B,H,W,b*b*C) with channels ordered (by,bx,c); inverse of depth_to_space."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // block, w // block, block * block * c)


def conv_4x4_s2(x: jax.Array, kernel: jax.Array, impl: ConvImpl) -> jax.Array:
  """4x4 stride-2 conv with padding 1 (PyTorch `Conv2d(4, 2, 1)`), halving H and W.

  Non-native: space-to-depth + a 2x2 stride-1 conv, whose gradient is a stride-1 conv and a
  reshape. With x_pad the padded input, y[o] = sum_k x_pad[2o+k] w[k]
  = sum_{a,b in {0,1}} s2d(x_pad)[o+a, b] w[2a+b].
  """
  if impl == 'native':
    return jax.lax.conv_general_dilated(
      x, kernel, (2, 2), _PAD1, dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {impl!r}')
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f'conv_4x4_s2 needs even height and width, got {x.shape[1:3]}')
  if impl == 'gemm':
    return _conv_4x4_s2_gemm(x, kernel)
  s = space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
  cin, cout = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5)  # (ay,ax,by,bx,I,O)
  return _conv2d(s, k.reshape(2, 2, 4 * cin, cout), 'VALID')


def _conv_4x4_s2_gemm(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """im2col + one matrix multiply (what PyTorch does on CPU): the 16 strided views of the padded
  input, stacked in the kernel's (ky, kx, c) order, times the kernel reshaped (16*I, O) for free.
  Its gradients are a matmul and strided pads/adds, no strided convolution. At output size 1 the
  outer taps only ever see padding (zeros) and are dropped: the result and gradients (zero for
  those taps) are exactly the same."""
  b, h2, w2, cin = x.shape
  h, w = h2 // 2, w2 // 2
  ty = slice(1, 3) if h == 1 else slice(0, 4)
  tx = slice(1, 3) if w == 1 else slice(0, 4)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate(
    [xp[:, i : i + 2 * h : 2, j : j + 2 * w : 2] for i in range(4)[ty] for j in range(4)[tx]],
    axis=-1,
  )
  k = kernel[ty, tx]
  return _matmul_last(cols, k.reshape(-1, k.shape[-1]))


def _matmul_last(x: jax.Array, w: jax.Array) -> jax.Array:
  """(..., K) @ (K, N) as one 2-D GEMM (the reshapes are free in row-major layout)."""
  return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])


class _Conv4x4(nnx.Module):
  """A 4x4 stride-2 (transposed) conv with nnx.Conv's parameter names and shapes (kernel
  (4,4,I,O), bias (O,)), computed by one of the exactly equivalent `CONV_IMPLS`."""

  _op: Callable[[jax.Array, jax.Array, ConvImpl], jax.Array]

  def __init__(
    self,
    in_features: int,
    out_features: int,
    *,
    use_bias: bool,
    impl: ConvImpl = 'gemm',
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    if impl not in CONV_IMPLS:
      raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {impl!r}')
    self.kernel = nnx.Param(_INIT(rngs.params(), (4, 4, in_features, out_features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None
    self.impl = impl
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self._op(x.astype(self.dtype), self.kernel[...].astype(self.dtype), self.impl)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


class DownConv(_Conv4x4):
  """4x4 stride-2 conv (pix2pix encoder step and PatchGAN C-k layers), see `conv_4x4_s2`."""

  _op = staticmethod(conv_4x4_s2)


# Which of the 4 taps of a 4x4 / stride-2 transposed conv (padding 2 on the dilated input, i.e.
# PyTorch's padding=1 up to a kernel flip) reaches output phase p from input offset d = -1, 0, +1;
# 4 means "no tap" (a zero row appended to the kernel). Derivation: out[2m] = x[m-1] w0 + x[m] w2,
# out[2m+1] = x[m] w1 + x[m+1] w3.
_PHASE_TAPS = np.array([[0, 2, 4], [4, 1, 3]])


def _phase_kernel(kernel: jax.Array) -> jax.Array:
  """4x4 transposed-conv kernel (4,4,I,O) -> 3x3 conv kernel (3,3,I,4*O), channels (py,px,o)."""
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  k = padded[_PHASE_TAPS[:, None, :, None], _PHASE_TAPS[None, :, None, :]]  # (py,px,ty,tx,I,O)
  k = jnp.transpose(k, (2, 3, 4, 0, 1, 5))  # (ty,tx,I,py,px,O)
  return k.reshape(3, 3, kernel.shape[2], 4 * kernel.shape[3])


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
  """(B,H,W,b*b*C) with channels ordered (by,bx,c) -> (B,H*b,W*b,C)."""
  b, h, w, c = x.shape
  c //= block * block
  x = x.reshape(b, h, w, block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * block, w * block, c)


def _conv2d(x, kernel, padding):
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


# Up to this many input pixels (batch * H * W) the gemm transposed conv multiplies per tap.
_BATCHED_TAPS_MAX_PIXELS = 64


def _conv_transpose_4x4_s2_gemm(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """One matrix multiply to all 16 taps + col2im (what PyTorch does on CPU): each input pixel's
  contribution through every tap, (B,H,W,I) @ (I, 4*4*O), then each output phase sums the four
  taps that reach it from shifted input pixels (_PHASE_TAPS). Exactly the transposed conv's MACs;
  the gradients are two matmuls and shifted slices. At input size 1 only the two inner taps per
  axis reach the output (the others fall on the cropped border) and the rest are skipped."""
  b, h, w, _ = x.shape
  cout = kernel.shape[3]

  # Taps per axis actually used, and for each output phase the (input offset d, tap) pairs.
  def plan(n):
    taps = (1, 2) if n == 1 else (0, 1, 2, 3)
    pairs = {0: [(-1, 0), (0, 2)], 1: [(0, 1), (1, 3)]}
    return taps, {p: [(d, taps.index(t)) for d, t in pairs[p] if t in taps] for p in (0, 1)}

  ty, py_pairs = plan(h)
  tx, px_pairs = plan(w)
  k = kernel[ty[0] : ty[-1] + 1, tx[0] : tx[-1] + 1]  # (ty,tx,I,O), a plain slice
  cin, ntaps = k.shape[2], len(ty) * len(tx)
  if b * h * w <= _BATCHED_TAPS_MAX_PIXELS:
    # Few pixels, big kernel: one batched matmul over the taps reads the kernel in its stored
    # (tap, I, O) layout, where the 2-D GEMM below would first transpose it (and its gradient).
    xt = jnp.broadcast_to(x.reshape(1, b * h * w, cin), (ntaps, b * h * w, cin))
    cols = jax.lax.dot_general(xt, k.reshape(ntaps, cin, cout), (((2,), (1,)), ((0,), (0,))))
    cols = cols.reshape(len(ty), len(tx), b, h, w, cout)
    tap = lambda iy, ix: cols[iy, ix]
  else:
    cols = _matmul_last(x, jnp.transpose(k, (2, 0, 1, 3)).reshape(cin, ntaps * cout))
    cols = cols.reshape(b, h, w, len(ty), len(tx), cout)
    tap = lambda iy, ix: cols[:, :, :, iy, ix]
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  phases = []
  for py in (0, 1):
    for px in (0, 1):
      terms = [
        jnp.pad(tap(iy, ix), pad)[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        for dy, iy in py_pairs[py]
        for dx, ix in px_pairs[px]
      ]
      phases.append(sum(terms[1:], terms[0]))
  return depth_to_space(jnp.concatenate(phases, axis=-1))  # channels (py, px, o)


def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array, impl: ConvImpl) -> jax.Array:
  """4x4 stride-2 transposed conv doubling H and W (PyTorch `ConvTranspose2d(4, 2, 1)` geometry)."""
  if impl == 'native':
    return jax.lax.conv_transpose(
      x, kernel, (2, 2), ((2, 2), (2, 2)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
  if impl == 'gemm':
    return _conv_transpose_4x4_s2_gemm(x, kernel)
  if impl == 'depth_to_space':
    # One stride-1 GEMM-friendly conv computing all four output phases; 9/4 the MACs of the
    # transposed conv but its gradient is a plain conv, which XLA:CPU handles well.
    return depth_to_space(_conv2d(x, _phase_kernel(kernel), ((1, 1), (1, 1))))
  if impl == 'phases':
    # Four 2x2 convs, one per output phase: exactly the transposed conv's MACs.
    phases = []
    for py in (0, 1):
      for px in (0, 1):
        ky, kx = _PHASE_TAPS[py][py : py + 2], _PHASE_TAPS[px][px : px + 2]
        k = kernel[ky[:, None], kx[None, :]]
        pad = ((1 - py, py), (1 - px, px))
        phases.append(_conv2d(x, k, pad))
    return depth_to_space(jnp.concatenate(phases, axis=-1))  # channels (py, px, o)
  raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {impl!r}')


class UpConv(_Conv4x4):
  """4x4 stride-2 transposed conv (pix2pix decoder step), see `conv_transpose_4x4_s2`."""

  _op = staticmethod(conv_transpose_4x4_s2)


def unet_channels(image_size: int, ngf: int) -> list[int]:
  """Encoder output channels: ngf * (1, 2, 4, 8, 8, ...), log2(image_size) of them."""
  num_downs = int(math.log2(image_size))
  if 2**num_downs != image_size or num_downs < 3:
    raise ValueError(f'image_size must be a power of two >= 8, got {image_size}')
  return [ngf * min(2**i, 8) for i in range(num_downs)]


class UNetGenerator(nnx.Module):
  """pix2pix U-Net: RGB (B,S,S,3) in [-1,1] -> mel (B,S,S,1) in [-1,1].

  With `num_eras > 0` a learned era embedding is added to the 1x1 bottleneck, so the decoder
  can render the same painting in another era's sound.
  """

  def __init__(
    self,
    image_size: int,
    *,
    ngf: int = 64,
    in_features: int = 3,
    out_features: int = 1,
    norm: Norm = 'batch',
    use_dropout: bool = True,
    num_eras: int = 0,
    conv_impl: str = AUTO,
    remat: bool = False,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    conv_impl = resolve_conv_impl(conv_impl)
    chans = unet_channels(image_size, ngf)
    self.remat = remat
    n = len(chans)
    use_bias = norm != 'batch'  # BN has its own shift (pix2pix: use_bias = norm is instance)
    self.dtype = dtype
    self.down_convs = nnx.List(
      [
        _conv(
          in_features if i == 0 else chans[i - 1],
          chans[i],
          stride=2,
          use_bias=use_bias,
          impl=conv_impl,
          dtype=dtype,
          rngs=rngs,
        )
        for i in range(n)
      ]
    )
    # No norm on the outermost and on the 1x1 bottleneck (as in the reference U-Net).
    self.down_norms = nnx.List(
      [Norm2d(chans[i], 'none' if i in (0, n - 1) else norm, rngs=rngs) for i in range(n)]
    )
    # Decoder block j (0 = innermost) maps to encoder level i = n-1-j; its input is the
    # bottleneck (j == 0) or the previous decoder output concatenated with the skip.
    self.up_convs = nnx.List(
      [
        UpConv(
          chans[n - 1] if j == 0 else 2 * chans[n - 1 - j],
          out_features if j == n - 1 else chans[n - 2 - j],
          use_bias=use_bias or j == n - 1,
          impl=conv_impl,
          dtype=dtype,
          rngs=rngs,
        )
        for j in range(n)
      ]
    )
    self.up_norms = nnx.List([Norm2d(chans[n - 2 - j], norm, rngs=rngs) for j in range(n - 1)])
    self.num_dropout = min(NUM_DROPOUT_BLOCKS, n - 1) if use_dropout else 0
    self.dropout = nnx.Dropout(0.5, deterministic=False)
    self.era_embed = (
      nnx.Embed(num_eras, chans[-1], embedding_init=_INIT, rngs=rngs) if num_eras else None
    )

  def __call__(
    self,
    paintings: jax.Array,
    eras: jax.Array | None = None,
    *,
    dropout_key: jax.Array | None = None,
  ) -> jax.Array:
    """`dropout_key` is required in training mode when dropout is on (see `eval_view`)."""
    encode, decode = _maybe_remat(_encode, self.remat), _maybe_remat(_decode, self.remat)
    x = paintings.astype(self.dtype)
    skips = []
    for i, (conv, norm) in enumerate(zip(self.down_convs, self.down_norms)):
      if i > 0:
        x = nnx.leaky_relu(x, 0.2)
      x = encode(conv, norm, x)
      skips.append(x)
    if self.era_embed is not None:
      if eras is None:
        raise ValueError('this generator is era-conditioned: pass eras')
      x = x + self.era_embed(eras)[:, None, None, :].astype(x.dtype)
    n = len(self.up_convs)
    keys = (
      jax.random.split(dropout_key, self.num_dropout)
      if dropout_key is not None and self.num_dropout
      else [None] * self.num_dropout
    )
    for j, up in enumerate(self.up_convs):
      if j > 0:
        x = jnp.concatenate([x, skips[n - 1 - j]], axis=-1)
      up_norm = self.up_norms[j] if j < n - 1 else None  # the output layer has no norm
      dropout = self.dropout if j < self.num_dropout else None
      x = decode(up, up_norm, dropout, x, keys[j] if dropout is not None else None)
    return jnp.tanh(x.astype(jnp.float32))


def _encode(conv: nnx.Module, norm: nnx.Module, x: jax.Array) -> jax.Array:
  """One U-Net encoder block after its activation: conv, norm."""
  return norm(conv(x))


def _decode(
  up: nnx.Module,
  norm: nnx.Module | None,
  dropout: nnx.Dropout | None,
  x: jax.Array,
  key: jax.Array | None,
) -> jax.Array:
  """One U-Net decoder block: ReLU, transposed conv, norm and dropout where the block has them."""
  x = up(nnx.relu(x))
  if norm is not None:
    x = norm(x)
  if dropout is not None:
    x = dropout(x, rngs=key)
  return x


def _patch_layer(conv: nnx.Module, norm: nnx.Module, x: jax.Array) -> jax.Array:
  return nnx.leaky_relu(norm(conv(x)), 0.2)


def _maybe_remat(fn: Callable, remat: bool) -> Callable:
  """`fn` under `nnx.remat` (BatchNorm statistic updates still flow out), or as is."""
  return nnx.remat(fn) if remat else fn


def min_patchgan_size(n_layers: int) -> int:
  """Smallest input giving a 1x1 logit map: n stride-2 halvings, then two k4/p1 convs (-1 each)."""
  return 3 * 2**n_layers


class PatchDiscriminator(nnx.Module):
  """PatchGAN: (painting || mel) (B,S,S,4) -> logits (B,S',S',1), 70x70 receptive field at n=3.
  With `in_features` = C and no `mels`, a PatchGAN on single (B,S,S,C) images."""

  def __init__(
    self,
    *,
    in_features: int = 4,
    ndf: int = 64,
    n_layers: int = 3,
    norm: Norm = 'batch',
    conv_impl: str = AUTO,
    remat: bool = False,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.remat = remat
    conv_impl = resolve_conv_impl(conv_impl)
    if n_layers < 1:
      raise ValueError(f'n_layers_D must be >= 1, got {n_layers}')
    use_bias = norm != 'batch'
    chans = [ndf * min(2**i, 8) for i in range(n_layers + 1)]
    strides = [2] * n_layers + [1]
    self.dtype = dtype
    self.convs = nnx.List(
      [
        _conv(
          in_features if i == 0 else chans[i - 1],
          chans[i],
          stride=strides[i],
          use_bias=(i == 0) or use_bias,
          impl=conv_impl,
          dtype=dtype,
          rngs=rngs,
        )
        for i in range(n_layers + 1)
      ]
    )
    self.norms = nnx.List(
      [Norm2d(chans[i], 'none' if i == 0 else norm, rngs=rngs) for i in range(n_layers + 1)]
    )
    self.head = _conv(chans[-1], 1, stride=1, use_bias=True, impl=conv_impl, dtype=dtype, rngs=rngs)

  def __call__(self, paintings: jax.Array, mels: jax.Array | None = None) -> jax.Array:
    """Logits for (painting || mel) pairs (pix2pix), or for one image alone when `mels` is None
    (CycleGAN's per-domain discriminators, built with `in_features` of that domain)."""
    if min_patchgan_size(len(self.convs) - 1) > paintings.shape[1]:
      raise ValueError(
        f'PatchGAN with n_layers={len(self.convs) - 1} needs inputs of at least '
        f'{min_patchgan_size(len(self.convs) - 1)} pixels, got {paintings.shape[1]}'
      )
    layer = _maybe_remat(_patch_layer, self.remat)
    x = paintings.astype(self.dtype)
    if mels is not None:
      x = jnp.concatenate([x, mels.astype(self.dtype)], axis=-1)
    for conv, norm in zip(self.convs, self.norms):
      x = layer(conv, norm, x)
    return self.head(x).astype(jnp.float32)


def eval_view(module: nnx.Module) -> nnx.Module:
  """The same module (shared arrays) with running BN statistics and dropout off."""
  return nnx.view(module, deterministic=True, use_running_average=True, raise_if_not_found=False)


def make_generator(model_config, image_size: int, num_eras: int, dtype, rngs: nnx.Rngs):
  """Generator from the `config.model` fields."""
  return UNetGenerator(
    image_size,
    ngf=model_config.ngf,
    norm=model_config.norm,
    use_dropout=model_config.use_dropout,
    num_eras=num_eras if model_config.era_conditioning else 0,
    conv_impl=model_config.conv_impl,
    remat=model_config.get('remat', False),  # absent from configs written before it existed
    dtype=dtype,
    rngs=rngs,
  )


def make_discriminator(model_config, dtype, rngs: nnx.Rngs):
  """Discriminator from the `config.model` fields."""
  return PatchDiscriminator(
    ndf=model_config.ndf,
    n_layers=model_config.n_layers_D,
    norm=model_config.norm,
    conv_impl=model_config.conv_impl,
    remat=model_config.get('remat', False),  # absent from configs written before it existed
    dtype=dtype,
    rngs=rngs,
  )


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def split_variables(module: nnx.Module) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """(graphdef, {'params', 'batch_stats'} as pure dicts): the layout checkpoints store."""
  # flax annotates split(node, *filters) as variadic; two filters give exactly three parts.
  graphdef, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)  # type: ignore[misc]
  return graphdef, {'params': params.to_pure_dict(), 'batch_stats': stats.to_pure_dict()}


def generator_from_config(config, num_eras: int, rngs: nnx.Rngs) -> UNetGenerator:
  """The generator a training config describes (`config.model`, image_size, dtype)."""
  return make_generator(config.model, config.image_size, num_eras, DTYPES[config.dtype], rngs)


def discriminator_from_config(config, rngs: nnx.Rngs) -> PatchDiscriminator:
  """The discriminator a training config describes."""
  return make_discriminator(config.model, DTYPES[config.dtype], rngs)


def abstract_generator(config, num_eras: int) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """Graph and ShapeDtypeStruct variables of the generator, with no arrays allocated."""
  module = nnx.eval_shape(
    lambda: generator_from_config(config, num_eras, nnx.Rngs(params=jax.random.key(0)))
  )
  return split_variables(module)
