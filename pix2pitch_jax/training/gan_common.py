"""What the GAN families (pix2pix, CycleGAN) share: Adam on pix2pix's `lr_policy linear`, the GAN
losses, the generator's moving average, and running an NNX module in training mode on pure-dict
variables. One copy, so the families cannot drift apart. The neural vocoder (not a GAN) uses the
lr policy, the init PRNG and the moving average from here too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

GAN_MODES = ('vanilla', 'lsgan')
# Parameter init only: XLA compiles RngBitGenerator much faster than threefry (~3 s vs ~15 s for
# the init program on 2 CPU cores). Values are replicated, so this is deterministic.
INIT_PRNG = 'rbg'


def lr_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """pix2pix / CycleGAN `lr_policy linear`: constant, then linear decay to 0 at num_train_steps."""
  o = config.optimizer
  decay_steps = max(1, config.num_train_steps - o.decay_start_step)
  return optax.join_schedules(
    [optax.constant_schedule(o.lr), optax.linear_schedule(o.lr, 0.0, decay_steps)],
    [o.decay_start_step],
  )


def optimizer(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, Any]:
  """Adam on `lr_schedule`, under `optax.MultiSteps` when accumulating; and the lr by step."""
  o, schedule = config.optimizer, lr_schedule(config)
  k = o.grad_accum_steps
  if k == 1:  # no MultiSteps wrapper: checkpoints keep the plain Adam state
    return optax.adam(schedule, b1=o.b1, b2=o.b2), schedule
  # The inner Adam counts updates; update u applies the lr of step u * k.
  tx = optax.adam(lambda update: schedule(update * k), b1=o.b1, b2=o.b2)
  return optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation(), (
    lambda step: schedule(step // k * k)
  )


def gan_loss(logits: jax.Array, target_is_real: bool, gan_mode: str) -> jax.Array:
  """pix2pix GANLoss: BCE on logits (vanilla) or mean squared error (lsgan)."""
  labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
  if gan_mode == 'vanilla':
    return optax.sigmoid_binary_cross_entropy(logits, labels).mean()
  return 2.0 * optax.l2_loss(logits, labels).mean()  # l2_loss is 0.5 * err**2


def d_score(logits: jax.Array, gan_mode: str) -> jax.Array:
  """Mean D output as a score: probability for vanilla, raw output for lsgan."""
  return (jax.nn.sigmoid(logits) if gan_mode == 'vanilla' else logits).mean()


def apply(graphdef, variables, *args, **kwargs):
  """Run a module in training mode; returns (output, updated batch_stats)."""
  module = nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True)
  out = module(*args, **kwargs)
  return out, nnx.state(module, nnx.BatchStat).to_pure_dict()


def ema_update(ema: Any, new: Any, step: jax.Array, decay: float) -> Any:
  """The moving average after step `step` (0-based): decay min(decay, (1 + t) / (10 + t)), the
  warm-up of tf.train.ExponentialMovingAverage's `num_updates`, so a short run's average is not
  mostly its initial weights."""
  t = step.astype(jnp.float32)
  step_decay = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
  return optax.incremental_update(new, ema, step_size=1.0 - step_decay)
