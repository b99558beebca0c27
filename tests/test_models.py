"""The pix2pix networks: exact equivalence of the stride-1 conv formulations, shapes, modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pix2pitch_jax import models

ATOL = 1e-5


def _random(shape, seed):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize('impl', ['phases', 'depth_to_space'])
def test_upconv_equals_nnx_conv_transpose(impl):
  x, kernel, bias = _random((2, 5, 6, 3), 0), _random((4, 4, 3, 7), 1), _random((7,), 2)
  reference = nnx.ConvTranspose(3, 7, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                rngs=nnx.Rngs(0))
  reference.kernel[...], reference.bias[...] = kernel, bias
  up = models.UpConv(3, 7, use_bias=True, impl=impl, rngs=nnx.Rngs(0))
  up.kernel[...], up.bias[...] = kernel, bias
  expected = reference(x)
  assert expected.shape == (2, 10, 12, 7)
  np.testing.assert_allclose(up(x), expected, atol=ATOL)
  # Same gradients too (the reason for the reformulation is the backward pass).
  grad = lambda f: jax.grad(lambda k: jnp.sum(jnp.sin(f(k))))(kernel)  # noqa: E731
  np.testing.assert_allclose(
      grad(lambda k: models.conv_transpose_4x4_s2(x, k, impl)),
      grad(lambda k: jax.lax.conv_transpose(x, k, (2, 2), ((2, 2), (2, 2)),
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))),
      atol=1e-4)


@pytest.mark.parametrize('impl', ['phases', 'depth_to_space'])
def test_downconv_equals_nnx_strided_conv(impl):
  x, kernel = _random((2, 8, 6, 3), 3), _random((4, 4, 3, 5), 4)
  reference = nnx.Conv(3, 5, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False,
                       rngs=nnx.Rngs(0))
  reference.kernel[...] = kernel
  down = models.DownConv(3, 5, use_bias=False, impl=impl, rngs=nnx.Rngs(0))
  down.kernel[...] = kernel
  np.testing.assert_allclose(down(x), reference(x), atol=ATOL)


def test_generators_with_different_conv_impls_agree():
  """Same parameters (same names and shapes) -> same U-Net output, whatever the kernels."""
  make = lambda impl: models.UNetGenerator(32, ngf=4, conv_impl=impl, rngs=nnx.Rngs(0))  # noqa
  native, phases = make('native'), make('phases')
  nnx.update(phases, nnx.state(native))
  x = _random((2, 32, 32, 3), 5)
  np.testing.assert_allclose(models.eval_view(phases)(x), models.eval_view(native)(x), atol=ATOL)


def test_generator_shapes_dropout_and_eval_mode():
  g = models.UNetGenerator(32, ngf=4, rngs=nnx.Rngs(0))
  assert len(g.down_convs) == 5  # log2(32) down-steps
  assert g.num_dropout == 3
  x = _random((2, 32, 32, 3), 6)
  a = g(x, dropout_key=jax.random.key(0))
  b = g(x, dropout_key=jax.random.key(1))
  assert a.shape == (2, 32, 32, 1) and a.dtype == jnp.float32
  assert float(jnp.abs(a).max()) <= 1.0
  assert not np.allclose(a, b)  # dropout is on in training mode
  ev = models.eval_view(g)
  np.testing.assert_array_equal(ev(x), ev(x))
  with pytest.raises(Exception):
    g(x)  # training mode with dropout needs a key


def test_era_conditioning_changes_the_output():
  g = models.eval_view(models.UNetGenerator(16, ngf=4, num_eras=3, rngs=nnx.Rngs(0)))
  x = jnp.repeat(_random((1, 16, 16, 3), 7), 2, axis=0)
  out = g(x, jnp.array([0, 2]))
  assert not np.allclose(out[0], out[1])
  with pytest.raises(ValueError, match='era-conditioned'):
    g(x)


@pytest.mark.parametrize('norm', ['instance', 'none'])
def test_other_norms_run(norm):
  g = models.UNetGenerator(16, ngf=4, norm=norm, use_dropout=False, rngs=nnx.Rngs(0))
  d = models.PatchDiscriminator(ndf=4, n_layers=2, norm=norm, rngs=nnx.Rngs(0))
  y = g(_random((1, 16, 16, 3), 8))
  assert d(_random((1, 16, 16, 3), 9), y).shape == (1, 2, 2, 1)  # 16 -> 8 -> 4 -> 3 -> 2


def test_patchgan_has_a_70_pixel_receptive_field():
  d = models.eval_view(models.PatchDiscriminator(ndf=4, rngs=nnx.Rngs(0)))
  paint, mel = _random((1, 128, 128, 3), 10), _random((1, 128, 128, 1), 11)
  logits = d(paint, mel)
  assert logits.shape == (1, 14, 14, 1)  # 128 -> 64 -> 32 -> 16 -> 15 -> 14
  grad = jax.grad(lambda p: d(p, mel)[0, 7, 7, 0])(paint)
  rows = np.nonzero(np.abs(np.asarray(grad)).sum(axis=(0, 2, 3)))[0]
  assert rows.max() - rows.min() + 1 == 70


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  g = models.UNetGenerator(16, ngf=4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  d = models.PatchDiscriminator(ndf=4, n_layers=2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert {p.dtype for p in jax.tree.leaves(nnx.state(g, nnx.Param))} == {jnp.dtype('float32')}
  x = _random((2, 16, 16, 3), 12)
  y = jax.jit(lambda x: models.eval_view(g)(x))(x)
  assert y.dtype == jnp.float32 and bool(jnp.isfinite(y).all())
  assert d(x, y).dtype == jnp.float32


def test_bad_options_fail_clearly():
  with pytest.raises(ValueError, match='norm must be one of'):
    models.UNetGenerator(32, ngf=4, norm='layer', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='conv_impl must be one of'):
    models.UNetGenerator(32, ngf=4, conv_impl='fft', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='power of two'):
    models.UNetGenerator(48, ngf=4, rngs=nnx.Rngs(0))
