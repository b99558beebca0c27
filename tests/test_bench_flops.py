"""The model-FLOP count behind bench/train_step.py's MFU (a hand count of the jaxpr's convolutions
and matmuls, since XLA's cost analysis misses cuDNN/cuBLAS calls on GPU)."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

_BENCH = pathlib.Path(__file__).parent.parent / 'bench' / 'train_step.py'


@pytest.fixture(scope='module')
def train_step_bench():
  spec = importlib.util.spec_from_file_location('bench_train_step', _BENCH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _flops(bench, fn, *args):
  return bench._jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def test_matmul_counts_two_flops_per_multiply_add(train_step_bench):
  a, b = np.ones((8, 16), np.float32), np.ones((16, 4), np.float32)
  assert _flops(train_step_bench, jnp.matmul, a, b) == 2 * 8 * 16 * 4
  # Inside jit and under grad: forward plus the two backward matmuls.
  loss = jax.jit(jax.grad(lambda a, b: jnp.sum(a @ b), argnums=(0, 1)))
  assert _flops(train_step_bench, loss, a, b) == 3 * 2 * 8 * 16 * 4


def test_convolution_and_its_transpose_count_real_multiply_adds(train_step_bench):
  x = np.ones((1, 8, 8, 3), np.float32)
  kernel = np.ones((3, 3, 3, 5), np.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  assert _flops(train_step_bench, conv, x, kernel) == 2 * (8 * 8 * 5) * (3 * 3 * 3)
  # Stride-2 transposed convolution of a 4x4 input: every input pixel meets every tap once; the
  # zeros the input dilation inserts are not multiplied.
  small, up_kernel = np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2, 6), np.float32)
  up = lambda x, k: jax.lax.conv_transpose(
    x, k, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  assert _flops(train_step_bench, up, small, up_kernel) == 2 * (4 * 4) * (3 * 3) * 2 * 6
