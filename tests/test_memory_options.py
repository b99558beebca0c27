"""Options that trade compute or steps for memory: remat and gradient accumulation, checked at
the level of the pix2pix step (one device, explicit batches) on the tiny config."""

import jax
import numpy as np
import pytest

from pix2pitch_jax.core import configs
from pix2pitch_jax.data import records
from pix2pitch_jax.training import pix2pix_task

from conftest import tiny_config


def make_task(data_dir, **overrides):
  config = tiny_config()
  config.data_dir = data_dir
  configs.apply_overrides(config, overrides)
  return pix2pix_task.Pix2PixTask(config, records.read_meta(data_dir))


def random_batch(n, seed=0):
  """A batch as the input pipeline delivers it: stored dtypes and each row's global index."""
  rng = np.random.default_rng(seed)
  return {
    'painting': rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
    'mel': rng.uniform(-1, 1, (n, 32, 32)).astype(np.float16),
    'era': rng.integers(0, 2, (n,)).astype(np.int32),
    'index': np.arange(seed * n, (seed + 1) * n, dtype=np.uint32),
  }


def run_steps(task, batches):
  """[(state, metrics) after each batch], the initial state first (metrics None)."""
  state = jax.jit(task.init_state)()
  step = jax.jit(task.train_step)
  history = [(jax.device_get(state), None)]
  for batch in batches:
    state, metrics = step(state, batch)
    history.append((jax.device_get(state), jax.device_get(metrics)))
  return history


def params(state, net):
  return jax.tree.leaves(state[net]['params'])


def test_remat_gives_the_same_losses_and_parameters(tiny_dataset):
  """Same function, activations recomputed: batch norm, dropout and all."""
  batches = [random_batch(8, seed) for seed in range(2)]
  plain = run_steps(make_task(tiny_dataset), batches)
  remat = run_steps(make_task(tiny_dataset, **{'model.remat': True}), batches)
  for (s1, m1), (s2, m2) in zip(plain[1:], remat[1:]):
    for key in pix2pix_task.LOSS_KEYS + ('G_grad_norm', 'D_grad_norm'):
      np.testing.assert_allclose(m1[key], m2[key], rtol=1e-6, err_msg=key)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_grad_accumulation_of_two_batches_matches_one_double_batch(tiny_dataset):
  """accum=2 at batch 4 vs one step at batch 8, without normalisation or dropout.

  Nothing moves on the first step; the second applies the update. D's update equals the big
  batch's (same mean gradient, G and D unchanged within the group); G's differs only in the
  adversarial gradient of the first batch, taken against the not-yet-updated D (module doc).
  """
  # No norm: instance norm would also do, but it cancels the conv biases' gradients, and Adam's
  # first step turns those float-noise gradients into +-lr updates that cannot be compared.
  common = {'model.norm': 'none', 'model.use_dropout': False}
  batch = random_batch(8)
  halves = [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}]
  accum = run_steps(make_task(tiny_dataset, **common, **{'optimizer.grad_accum_steps': 2}), halves)
  big = run_steps(make_task(tiny_dataset, **common), [batch])
  (init, _), (first, _), (second, metrics) = accum
  for net in ('generator', 'discriminator'):
    for a, b in zip(params(first, net), params(init, net)):
      np.testing.assert_array_equal(a, b)  # no update after 1 of 2 steps
  assert int(first['progress']['step']) == 1 and int(second['progress']['step']) == 2
  big_state, _ = big[1]
  for a, b in zip(params(second, 'discriminator'), params(big_state, 'discriminator')):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # G: same update up to the first batch's adversarial term; both moved away from init by Adam's
  # ~lr per element; the two agree to a small fraction of that.
  lr = 2e-4
  for a, b, c in zip(
    params(second, 'generator'), params(big_state, 'generator'), params(init, 'generator')
  ):
    assert np.abs(b - c).max() > 0.25 * lr  # the big-batch step moved every G leaf
    np.testing.assert_allclose(a, b, atol=0.05 * lr)  # measured: 0.006 lr
  assert float(metrics['lr']) == pytest.approx(lr)


def test_grad_accum_steps_must_divide_the_run(tiny_dataset):
  with pytest.raises(configs.ConfigError, match='grad_accum_steps must be >= 1 and divide'):
    make_task(tiny_dataset, **{'optimizer.grad_accum_steps': 3})  # num_train_steps=4
