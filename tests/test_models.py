"""The pix2pix networks: exact equivalence of the stride-1 conv formulations, shapes, modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pix2pitch_jax.models import pix2pix

ATOL = 1e-5


def _random(shape, seed):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


STRIDE1_IMPLS = ['gemm', 'phases', 'depth_to_space']
# (batch, H, W): odd sizes, a 1-pixel side (gemm drops taps that only meet padding), few pixels
# (gemm multiplies per tap) and more pixels (one 2-D GEMM).
UP_SHAPES = [(2, 5, 6), (1, 1, 1), (2, 1, 3), (2, 6, 8)]
DOWN_SHAPES = [(2, 8, 6), (1, 2, 2), (2, 2, 4), (1, 16, 12)]


def _grads(f, x, kernel):
  """Gradients of a non-linear scalar of f(x, kernel) w.r.t. both inputs."""
  return jax.grad(lambda x, k: jnp.sum(jnp.sin(f(x, k))), (0, 1))(x, kernel)


@pytest.mark.parametrize('shape', UP_SHAPES)
@pytest.mark.parametrize('impl', STRIDE1_IMPLS)
def test_upconv_equals_nnx_conv_transpose(impl, shape):
  x, kernel, bias = _random((*shape, 3), 0), _random((4, 4, 3, 7), 1), _random((7,), 2)
  reference = nnx.ConvTranspose(
    3, 7, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), rngs=nnx.Rngs(0)
  )
  reference.kernel[...], reference.bias[...] = kernel, bias
  up = pix2pix.UpConv(3, 7, use_bias=True, impl=impl, rngs=nnx.Rngs(0))
  up.kernel[...], up.bias[...] = kernel, bias
  expected = reference(x)
  assert expected.shape == (shape[0], 2 * shape[1], 2 * shape[2], 7)
  np.testing.assert_allclose(up(x), expected, atol=ATOL)
  # Same gradients too (the reason for the reformulation is the backward pass).
  for got, want in zip(
    _grads(lambda x, k: pix2pix.conv_transpose_4x4_s2(x, k, impl), x, kernel),
    _grads(
      lambda x, k: jax.lax.conv_transpose(
        x, k, (2, 2), ((2, 2), (2, 2)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
      ),
      x,
      kernel,
    ),
  ):
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize('shape', DOWN_SHAPES)
@pytest.mark.parametrize('impl', STRIDE1_IMPLS)
def test_downconv_equals_nnx_strided_conv(impl, shape):
  x, kernel = _random((*shape, 3), 3), _random((4, 4, 3, 5), 4)
  reference = nnx.Conv(
    3, 5, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False, rngs=nnx.Rngs(0)
  )
  reference.kernel[...] = kernel
  down = pix2pix.DownConv(3, 5, use_bias=False, impl=impl, rngs=nnx.Rngs(0))
  down.kernel[...] = kernel
  np.testing.assert_allclose(down(x), reference(x), atol=ATOL)
  for got, want in zip(
    _grads(lambda x, k: pix2pix.conv_4x4_s2(x, k, impl), x, kernel),
    _grads(
      lambda x, k: jax.lax.conv_general_dilated(
        x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
      ),
      x,
      kernel,
    ),
  ):
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize('impl', STRIDE1_IMPLS)
def test_generators_with_different_conv_impls_agree(impl):
  """Same parameters (same names and shapes) -> same U-Net output and parameter gradients,
  whatever the kernels (down to the 1x1 bottleneck, where gemm drops padding-only taps)."""
  make = lambda impl: pix2pix.UNetGenerator(32, ngf=4, conv_impl=impl, rngs=nnx.Rngs(0))
  native, other = make('native'), make(impl)
  nnx.update(other, nnx.state(native))
  x = _random((2, 32, 32, 3), 5)

  # Jitted: one compile per model instead of one per primitive, op by op (minutes on 2 cores).
  def forward(model):
    graphdef, state = nnx.split(pix2pix.eval_view(model))
    return jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, x)

  np.testing.assert_allclose(forward(other), forward(native), atol=ATOL)

  def param_grads(model):
    graphdef, params, rest = nnx.split(pix2pix.eval_view(model), nnx.Param, ...)
    loss = lambda p: jnp.sum(jnp.sin(3 * nnx.merge(graphdef, p, rest)(x)))
    return jax.jit(jax.grad(loss))(params)

  # rtol: XLA orders the sums of large gradients (norm biases, ~6e3) differently per program.
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4),
    param_grads(other),
    param_grads(native),
  )


def test_generator_shapes_dropout_and_eval_mode():
  g = pix2pix.UNetGenerator(32, ngf=4, rngs=nnx.Rngs(0))
  assert len(g.down_convs) == 5  # log2(32) down-steps
  assert g.num_dropout == 3
  x = _random((2, 32, 32, 3), 6)
  a = g(x, dropout_key=jax.random.key(0))
  b = g(x, dropout_key=jax.random.key(1))
  assert a.shape == (2, 32, 32, 1) and a.dtype == jnp.float32
  assert float(jnp.abs(a).max()) <= 1.0
  assert not np.allclose(a, b)  # dropout is on in training mode
  ev = pix2pix.eval_view(g)
  np.testing.assert_array_equal(ev(x), ev(x))
  with pytest.raises(ValueError):
    g(x)  # training mode with dropout needs a key


def test_era_conditioning_changes_the_output():
  g = pix2pix.eval_view(pix2pix.UNetGenerator(16, ngf=4, num_eras=3, rngs=nnx.Rngs(0)))
  x = jnp.repeat(_random((1, 16, 16, 3), 7), 2, axis=0)
  out = g(x, jnp.array([0, 2]))
  assert not np.allclose(out[0], out[1])
  with pytest.raises(ValueError, match='era-conditioned'):
    g(x)


@pytest.mark.parametrize('norm', ['instance', 'none'])
def test_other_norms_run(norm):
  g = pix2pix.UNetGenerator(16, ngf=4, norm=norm, use_dropout=False, rngs=nnx.Rngs(0))
  d = pix2pix.PatchDiscriminator(ndf=4, n_layers=2, norm=norm, rngs=nnx.Rngs(0))
  y = g(_random((1, 16, 16, 3), 8))
  assert d(_random((1, 16, 16, 3), 9), y).shape == (1, 2, 2, 1)  # 16 -> 8 -> 4 -> 3 -> 2


def test_patchgan_has_a_70_pixel_receptive_field():
  d = pix2pix.eval_view(pix2pix.PatchDiscriminator(ndf=4, rngs=nnx.Rngs(0)))
  paint, mel = _random((1, 128, 128, 3), 10), _random((1, 128, 128, 1), 11)
  logits = d(paint, mel)
  assert logits.shape == (1, 14, 14, 1)  # 128 -> 64 -> 32 -> 16 -> 15 -> 14
  grad = jax.grad(lambda p: d(p, mel)[0, 7, 7, 0])(paint)
  rows = np.nonzero(np.abs(np.asarray(grad)).sum(axis=(0, 2, 3)))[0]
  assert rows.max() - rows.min() + 1 == 70


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  g = pix2pix.UNetGenerator(16, ngf=4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  d = pix2pix.PatchDiscriminator(ndf=4, n_layers=2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert {p.dtype for p in jax.tree.leaves(nnx.state(g, nnx.Param))} == {jnp.dtype('float32')}
  x = _random((2, 16, 16, 3), 12)
  y = jax.jit(pix2pix.eval_view(g))(x)
  assert y.dtype == jnp.float32 and bool(jnp.isfinite(y).all())
  assert d(x, y).dtype == jnp.float32


def test_bad_options_fail_clearly():
  with pytest.raises(ValueError, match='norm must be one of'):
    pix2pix.UNetGenerator(32, ngf=4, norm='layer', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='conv_impl must be one of'):
    pix2pix.UNetGenerator(32, ngf=4, conv_impl='fft', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='power of two'):
    pix2pix.UNetGenerator(48, ngf=4, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
  'platform, expected',
  [('cpu', 'gemm'), ('gpu', 'phases'), ('cuda', 'phases'), ('rocm', 'native'), ('tpu', 'native')],
)
def test_choose_conv_impl_picks_the_measured_fastest_per_backend(platform, expected):
  assert pix2pix.choose_conv_impl(platform) == expected
  assert pix2pix.resolve_conv_impl('auto', platform) == expected
  assert pix2pix.resolve_conv_impl('phases', platform) == 'phases'  # an explicit choice stays


def test_auto_conv_impl_is_resolved_where_the_model_is_built(monkeypatch):
  """The default config builds gemm convs here (CPU), phases on a GPU and native ones on a TPU."""
  from pix2pitch_jax.core import configs

  config = configs.default_config()
  config.image_size, config.model.ngf, config.model.ndf = 16, 4, 4
  assert config.model.conv_impl == 'auto'
  build = lambda: (
    pix2pix.generator_from_config(config, 0, nnx.Rngs(0)),
    pix2pix.discriminator_from_config(config, nnx.Rngs(0)),
  )
  g, d = build()
  assert {g.down_convs[0].impl, g.up_convs[0].impl, d.convs[0].impl} == {'gemm'}
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  g, d = build()
  assert {g.down_convs[0].impl, g.up_convs[0].impl, d.convs[0].impl} == {'phases'}
  monkeypatch.setattr(jax, 'default_backend', lambda: 'tpu')
  g, d = build()
  assert {g.down_convs[0].impl, g.up_convs[0].impl, d.convs[0].impl} == {'native'}
  with pytest.raises(ValueError, match='conv_impl must be one of'):
    pix2pix.resolve_conv_impl('fft')
