"""The CycleGAN networks in Flax NNX: sound <-> picture, one generator and one PatchGAN per way.

Domains: *pictures* (RGB, S x S x 3, in [-1, 1]) and *mels* (the dataset's log-mel images,
S x S x 1, in [-1, 1]). Two generators, picture -> mel and mel -> picture, and one discriminator
per domain, as in CycleGAN (Zhu et al. 2017; pytorch-CycleGAN-and-pix2pix defaults):

* ResNet generator (`resnet_blocks`, 9 in the reference `resnet_9blocks`): c7s1-ngf, two
  down-sampling steps to 4 ngf channels, the residual blocks (two reflect-padded 3x3 convs each),
  two up-sampling steps, c7s1-out and a tanh. `downsampling` (more halvings: the blocks at a lower
  resolution with more channels) and `edge_kernel` (c3s1 instead of c7s1) make a cheaper generator;
  the demo's is sized so for the visualiser's real time. Instance norm, ReLU, no dropout. One
  change: the down- and up-sampling steps are pix2pix's 4x4 stride-2 (transposed) convolutions
  (`pix2pix.DownConv` / `pix2pix.UpConv`) instead of the reference's 3x3 ones, so the formulations
  that are fast on XLA:CPU (`conv_impl`) serve both families; the geometry (halving, doubling) is
  the same.
* Or the pix2pix U-Net (`generator='unet'`), with the in/out channels of the direction and no
  dropout (CycleGAN's `--netG unet_256 --no_dropout`).
* Discriminators: pix2pix's 70x70 PatchGAN (`pix2pix.PatchDiscriminator`) on one domain's images
  alone (3 or 1 input channels).

Parameters live in float32; `dtype` sets the compute dtype. Weights N(0, 0.02).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from pix2pitch_jax.models import pix2pix

GENERATORS = ('resnet', 'unet')
PICTURE_CHANNELS = 3
MEL_CHANNELS = 1
# The state items (and checkpoint items) of the two generators, by direction.
PICTURE_TO_MEL = 'picture_to_mel'
MEL_TO_PICTURE = 'mel_to_picture'
DIRECTIONS = (PICTURE_TO_MEL, MEL_TO_PICTURE)
# The checkpoint items of both generators ({direction: {'params', 'batch_stats'}}), and of their
# moving average when the run kept one.
GENERATORS_ITEM = 'generators'
GENERATORS_EMA_ITEM = 'generators_ema'
_INIT = nnx.initializers.normal(0.02)
DEFAULT_DOWNSAMPLING = 2  # the reference's ResNet generator halves twice: 4 ngf channels at S/4
DEFAULT_EDGE_KERNEL = 7  # the reference's c7s1 stem and head


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Reflection padding of H and W (PyTorch's ReflectionPad2d), which keeps borders free of the
  dark frame zero padding draws at the edges of generated images."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def _conv(in_features, out_features, kernel, *, use_bias, dtype, rngs) -> nnx.Conv:
  return nnx.Conv(
    in_features,
    out_features,
    kernel_size=(kernel, kernel),
    padding='VALID',  # after an explicit reflection pad
    use_bias=use_bias,
    kernel_init=_INIT,
    dtype=dtype,
    rngs=rngs,
  )


class ResnetBlock(nnx.Module):
  """x + norm(conv3(pad(relu(norm(conv3(pad(x))))))), the reference's block without dropout."""

  def __init__(self, features: int, *, norm: pix2pix.Norm, use_bias: bool, dtype, rngs: nnx.Rngs):
    self.conv1 = _conv(features, features, 3, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.norm1 = pix2pix.Norm2d(features, norm, rngs=rngs)
    self.conv2 = _conv(features, features, 3, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.norm2 = pix2pix.Norm2d(features, norm, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(reflect_pad(x, 1))))
    return x + self.norm2(self.conv2(reflect_pad(y, 1)))


def _run_block(block: ResnetBlock, x: jax.Array) -> jax.Array:
  return block(x)


class ResnetGenerator(nnx.Module):
  """CycleGAN's ResNet generator: (B,S,S,in_features) -> (B,S,S,out_features) in [-1, 1]."""

  def __init__(
    self,
    *,
    in_features: int,
    out_features: int,
    ngf: int = 64,
    num_blocks: int = 9,
    downsampling: int = DEFAULT_DOWNSAMPLING,
    edge_kernel: int = DEFAULT_EDGE_KERNEL,
    norm: pix2pix.Norm = 'instance',
    conv_impl: str = pix2pix.AUTO,
    remat: bool = False,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    if num_blocks < 0:
      raise ValueError(f'resnet_blocks must be >= 0, got {num_blocks}')
    if downsampling < 1:
      raise ValueError(f'downsampling must be >= 1, got {downsampling}')
    if edge_kernel < 1 or edge_kernel % 2 == 0:
      raise ValueError(f'edge_kernel must be odd and >= 1, got {edge_kernel}')
    impl = pix2pix.resolve_conv_impl(conv_impl)
    use_bias = norm != 'batch'  # the reference: a bias only where the norm has no shift
    self.dtype, self.remat = dtype, remat
    self.downsampling, self.edge_pad = downsampling, edge_kernel // 2
    self.stem = _conv(in_features, ngf, edge_kernel, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.stem_norm = pix2pix.Norm2d(ngf, norm, rngs=rngs)
    chans = [ngf * 2**i for i in range(downsampling + 1)]
    self.downs = nnx.List(
      [
        pix2pix.DownConv(
          chans[i], chans[i + 1], use_bias=use_bias, impl=impl, dtype=dtype, rngs=rngs
        )
        for i in range(downsampling)
      ]
    )
    self.down_norms = nnx.List(
      [pix2pix.Norm2d(chans[i + 1], norm, rngs=rngs) for i in range(downsampling)]
    )
    self.blocks = nnx.List(
      [
        ResnetBlock(chans[-1], norm=norm, use_bias=use_bias, dtype=dtype, rngs=rngs)
        for _ in range(num_blocks)
      ]
    )
    self.ups = nnx.List(
      [
        pix2pix.UpConv(chans[i + 1], chans[i], use_bias=use_bias, impl=impl, dtype=dtype, rngs=rngs)
        for i in reversed(range(downsampling))
      ]
    )
    self.up_norms = nnx.List(
      [pix2pix.Norm2d(chans[i], norm, rngs=rngs) for i in reversed(range(downsampling))]
    )
    self.head = _conv(ngf, out_features, edge_kernel, use_bias=True, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    size = x.shape[1]
    factor = 2**self.downsampling
    if size % factor or size < 2 * factor:
      raise ValueError(
        f'the ResNet generator needs a size divisible by {factor} and >= {2 * factor}, got {size}'
      )
    x = x.astype(self.dtype)
    x = nnx.relu(self.stem_norm(self.stem(reflect_pad(x, self.edge_pad))))
    for conv, norm in zip(self.downs, self.down_norms):
      x = nnx.relu(norm(conv(x)))
    block = nnx.remat(_run_block) if self.remat else _run_block
    for b in self.blocks:
      x = block(b, x)
    for up, up_norm in zip(self.ups, self.up_norms):
      x = nnx.relu(up_norm(up(x)))
    return jnp.tanh(self.head(reflect_pad(x, self.edge_pad)).astype(jnp.float32))


class UNetTranslator(nnx.Module):
  """pix2pix's U-Net with one direction's channels, no dropout and no era (CycleGAN's U-Net)."""

  def __init__(self, unet: pix2pix.UNetGenerator):
    self.unet = unet

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.unet(x)


def channels(direction: str) -> tuple[int, int]:
  """(in, out) channels of a direction."""
  if direction == PICTURE_TO_MEL:
    return PICTURE_CHANNELS, MEL_CHANNELS
  if direction == MEL_TO_PICTURE:
    return MEL_CHANNELS, PICTURE_CHANNELS
  raise ValueError(f'direction must be one of {DIRECTIONS}, got {direction!r}')


def make_generator(config, direction: str, rngs: nnx.Rngs) -> nnx.Module:
  """The generator of `direction` a training config describes (`config.cyclegan`, `config.model`,
  image_size, dtype)."""
  m, cg = config.model, config.cyclegan
  in_features, out_features = channels(direction)
  dtype = pix2pix.DTYPES[config.dtype]
  if cg.generator == 'resnet':
    return ResnetGenerator(
      in_features=in_features,
      out_features=out_features,
      ngf=m.ngf,
      num_blocks=cg.resnet_blocks,
      # .get: runs written before these keys existed have the reference's geometry.
      downsampling=cg.get('downsampling', DEFAULT_DOWNSAMPLING),
      edge_kernel=cg.get('edge_kernel', DEFAULT_EDGE_KERNEL),
      norm=m.norm,
      conv_impl=m.conv_impl,
      remat=m.remat,
      dtype=dtype,
      rngs=rngs,
    )
  if cg.generator == 'unet':
    return UNetTranslator(
      pix2pix.UNetGenerator(
        config.image_size,
        ngf=m.ngf,
        in_features=in_features,
        out_features=out_features,
        norm=m.norm,
        use_dropout=False,
        conv_impl=m.conv_impl,
        remat=m.remat,
        dtype=dtype,
        rngs=rngs,
      )
    )
  raise ValueError(f'cyclegan.generator must be one of {GENERATORS}, got {cg.generator!r}')


def make_discriminator(config, domain_channels: int, rngs: nnx.Rngs) -> pix2pix.PatchDiscriminator:
  """The 70x70 PatchGAN (at n_layers_D = 3) for one domain's images."""
  m = config.model
  return pix2pix.PatchDiscriminator(
    in_features=domain_channels,
    ndf=m.ndf,
    n_layers=m.n_layers_D,
    norm=m.norm,
    conv_impl=m.conv_impl,
    remat=m.remat,
    dtype=pix2pix.DTYPES[config.dtype],
    rngs=rngs,
  )


def abstract_generator(config, direction: str) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """Graph and ShapeDtypeStruct variables of one generator, with no arrays allocated."""
  module = nnx.eval_shape(
    lambda: make_generator(config, direction, nnx.Rngs(params=jax.random.key(0)))
  )
  return pix2pix.split_variables(module)
