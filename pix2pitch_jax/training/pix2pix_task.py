"""pix2pix as a model family of the shared training loop (`training/loop.py`).

The step (`train_step`) is one `jax.jit` program over a 1-D 'data' mesh: it updates D, then G,
exactly as pytorch pix2pix's `optimize_parameters` does (one G forward; D sees the detached fake;
G's adversarial term uses the freshly updated D). The global batch is sharded over all devices of
all hosts; BatchNorm statistics are therefore global-batch (synchronised) statistics.

State items (one checkpoint item each): `generator` and `discriminator` ({'params',
'batch_stats'}), `generator_ema` (their moving average, when `model.ema_decay` > 0), `opt_state`
(both Adam states) and `progress` ({'step', 'rng'}).

Gradient accumulation (`optimizer.grad_accum_steps` = k > 1) wraps both Adams in
`optax.MultiSteps`: every step still runs the whole D-then-G iteration on one batch, the
gradients are averaged over k steps, and D and G are updated together on every k-th step (their
counters move in lockstep). D's update is that of one step on the k batches together (G and D
are unchanged within the group); G's adversarial gradients of the first k-1 batches are taken
against the D of the previous update rather than the one updated by the group, so G's update
is close to, not equal to, the big-batch one. BatchNorm normalises with each step's batch
statistics and updates its running averages every step. The lr of an update is the schedule at
the first step of its group: the schedule keeps counting steps (batches), not updates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from pix2pitch_jax.data import augment, input_pipeline, records
from pix2pitch_jax.models import pix2pix
from pix2pitch_jax.runtime import sharding
from pix2pitch_jax.training import loop, summaries
from pix2pitch_jax.training.gan_common import (
  GAN_MODES,
  INIT_PRNG,
  d_score,
  ema_update,
  gan_loss,
  optimizer,
)
from pix2pitch_jax.training.gan_common import apply as _apply

LOSS_KEYS = ('G_GAN', 'G_L1', 'D_real', 'D_fake')
State = loop.State
# Augmentation keys are fold_in(fold_in(run key, AUGMENT_STREAM), example index); dropout's are
# fold_in(run key, step), which would need a step of ~1.6e9 to collide with this stream.
AUGMENT_STREAM = 0x61756731


def validate_config(config: ml_collections.ConfigDict) -> None:
  """pix2pix's own config checks (the shared ones are `loop.validate_common`)."""
  c, m, o = config, config.model, config.optimizer
  require = loop.require
  require(
    c.dtype in pix2pix.DTYPES, f'dtype must be one of {sorted(pix2pix.DTYPES)}, got {c.dtype!r}'
  )
  require(m.norm in pix2pix.NORMS, f'model.norm must be one of {pix2pix.NORMS}, got {m.norm!r}')
  require(m.gan_mode in GAN_MODES, f'model.gan_mode must be one of {GAN_MODES}, got {m.gan_mode!r}')
  require(
    m.conv_impl in pix2pix.CONV_IMPL_CHOICES,
    f'model.conv_impl must be one of {pix2pix.CONV_IMPL_CHOICES}, got {m.conv_impl!r}',
  )
  require(
    m.ngf >= 1 and m.ndf >= 1 and m.n_layers_D >= 1,
    'model.ngf, model.ndf and model.n_layers_D must be >= 1',
  )
  require(
    pix2pix.min_patchgan_size(m.n_layers_D) <= c.image_size,
    f'model.n_layers_D={m.n_layers_D} is too deep for image_size={c.image_size}',
  )
  require(m.lambda_L1 >= 0, f'model.lambda_L1 must be >= 0, got {m.lambda_L1}')
  require(m.lambda_GAN >= 0, f'model.lambda_GAN must be >= 0, got {m.lambda_GAN}')
  require(m.lambda_GAN > 0 or m.lambda_L1 > 0, 'model.lambda_GAN and model.lambda_L1 are both 0')
  require(0 <= m.ema_decay < 1, f'model.ema_decay must be in [0, 1), got {m.ema_decay}')
  require(o.lr > 0 and 0 <= o.b1 < 1 and 0 <= o.b2 < 1, 'optimizer: need lr > 0, 0 <= b1, b2 < 1')
  require(
    o.grad_accum_steps >= 1 and c.num_train_steps % o.grad_accum_steps == 0,
    f'optimizer.grad_accum_steps must be >= 1 and divide num_train_steps={c.num_train_steps}, '
    f'got {o.grad_accum_steps}',
  )
  require(
    0 <= o.decay_start_step <= c.num_train_steps,
    f'optimizer.decay_start_step must be in [0, num_train_steps={c.num_train_steps}], '
    f'got {o.decay_start_step}',
  )


# ----------------------------------------------------------------------------- model and state


@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of the training state: graph definitions and optimizers."""

  generator: nnx.GraphDef
  discriminator: nnx.GraphDef
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  lr_schedule: optax.Schedule  # by step (batch): the lr applied by the update that step joins


def _build_modules(config, meta: records.DatasetMeta, key: jax.Array):
  g_key, d_key = jax.random.split(key)
  generator = pix2pix.generator_from_config(config, len(meta.era_names), nnx.Rngs(params=g_key))
  discriminator = pix2pix.discriminator_from_config(config, nnx.Rngs(params=d_key))
  return generator, discriminator


def make_networks(config, meta: records.DatasetMeta) -> Networks:
  generator, discriminator = nnx.eval_shape(lambda: _build_modules(config, meta, jax.random.key(0)))
  tx, schedule = optimizer(config)
  return Networks(
    pix2pix.split_variables(generator)[0],
    pix2pix.split_variables(discriminator)[0],
    tx,
    tx,
    schedule,
  )


def init_state(config, meta: records.DatasetMeta, nets: Networks) -> State:
  """A fresh training state (pure function of config.seed; jit it with out_shardings)."""
  init_key = jax.random.key(config.seed, impl=INIT_PRNG)
  run_key = jax.random.key(config.seed)  # threefry: dropout masks independent of the sharding
  generator, discriminator = _build_modules(config, meta, init_key)
  g, d = pix2pix.split_variables(generator)[1], pix2pix.split_variables(discriminator)[1]
  ema = {'generator_ema': jax.tree.map(jnp.copy, g)} if config.model.ema_decay > 0 else {}
  return {
    'generator': g,
    **ema,
    'discriminator': d,
    'opt_state': {
      'generator': nets.g_tx.init(g['params']),
      'discriminator': nets.d_tx.init(d['params']),
    },
    'progress': {'step': jnp.zeros((), jnp.int32), 'rng': jax.random.key_data(run_key)},
  }


def _discriminator_update(nets: Networks, model_config, d, d_opt_state, painting, mel, fake):
  """D's step on the real pair and the detached fake: its new variables, Adam state, loss, aux
  metrics and gradient norm."""
  gan_mode = model_config.gan_mode

  def d_loss_fn(d_params):
    d_vars = {'params': d_params, 'batch_stats': d['batch_stats']}
    fake_logits, d_vars['batch_stats'] = _apply(
      nets.discriminator, d_vars, painting, jax.lax.stop_gradient(fake)
    )
    real_logits, d_stats = _apply(nets.discriminator, d_vars, painting, mel)
    d_fake, d_real = gan_loss(fake_logits, False, gan_mode), gan_loss(real_logits, True, gan_mode)
    aux = {
      'D_fake': d_fake,
      'D_real': d_real,
      'D_real_mean': d_score(real_logits, gan_mode),
      'D_fake_mean': d_score(fake_logits, gan_mode),
    }
    return 0.5 * (d_fake + d_real), (d_stats, aux)

  (d_loss, (d_stats, aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d['params'])
  d_updates, d_opt_state = nets.d_tx.update(d_grads, d_opt_state, d['params'])
  new_d = {'params': optax.apply_updates(d['params'], d_updates), 'batch_stats': d_stats}
  return new_d, d_opt_state, {'D_loss': d_loss, **aux, 'D_grad_norm': optax.global_norm(d_grads)}


def train_step(
  nets: Networks, model_config, state: State, batch: dict[str, jax.Array]
) -> tuple[State, dict[str, jax.Array]]:
  """One pix2pix iteration: G forward, D update on the detached fake, G update vs the new D.

  With `model.lambda_GAN` = 0 the objective is L1 alone (pix2pix's "L1" ablation): D is neither
  run nor updated (its variables and Adam state keep their initial values), which also halves the
  step's cost.
  """
  g, d, opt = state['generator'], state['discriminator'], state['opt_state']
  step = state['progress']['step']
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state['progress']['rng']), step)
  painting, mel, era = batch['painting'], batch['mel'], batch['era']
  adversarial = model_config.lambda_GAN > 0

  def generate(g_params):
    return _apply(
      nets.generator,
      {'params': g_params, 'batch_stats': g['batch_stats']},
      painting,
      era,
      dropout_key=dropout_key,
    )

  fake, g_vjp, g_stats = jax.vjp(generate, g['params'], has_aux=True)
  metrics: dict[str, jax.Array] = {}
  new_d, d_opt = d, opt['discriminator']
  if adversarial:
    new_d, d_opt, metrics = _discriminator_update(
      nets, model_config, d, opt['discriminator'], painting, mel, fake
    )

  def g_loss_fn(fake):
    g_l1 = jnp.abs(fake - mel).mean()
    if not adversarial:
      return model_config.lambda_L1 * g_l1, (new_d['batch_stats'], {'G_L1': g_l1})
    # G's adversarial term against the D just updated; D's BN statistics move with this pass too.
    logits, d_stats = _apply(nets.discriminator, new_d, painting, fake)
    g_gan = gan_loss(logits, True, model_config.gan_mode)
    loss = model_config.lambda_GAN * g_gan + model_config.lambda_L1 * g_l1
    return loss, (d_stats, {'G_GAN': g_gan, 'G_L1': g_l1})

  (g_loss, (d_stats, g_aux)), dfake = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(dfake)
  g_updates, g_opt = nets.g_tx.update(g_grads, opt['generator'], g['params'])
  new_g = {'params': optax.apply_updates(g['params'], g_updates), 'batch_stats': g_stats}
  ema = {}
  if model_config.ema_decay > 0:
    ema['generator_ema'] = ema_update(state['generator_ema'], new_g, step, model_config.ema_decay)
  new_state = {
    'generator': new_g,
    **ema,
    'discriminator': {'params': new_d['params'], 'batch_stats': d_stats},
    'opt_state': {'generator': g_opt, 'discriminator': d_opt},
    'progress': {'step': step + 1, 'rng': state['progress']['rng']},
  }
  metrics = {
    'G_loss': g_loss,
    **g_aux,
    **metrics,
    'G_grad_norm': optax.global_norm(g_grads),
    'lr': nets.lr_schedule(step),
  }
  return new_state, metrics


def model_batch(input_config, state: State, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """A training batch as stored (uint8 paintings, 16-bit mels, global `index`) -> augmented
  float32 model inputs, on the device (data/augment.py); the key comes from the run's key."""
  painting, mel = augment.to_float(batch['painting'], batch['mel'])
  run_key = jax.random.wrap_key_data(state['progress']['rng'])
  painting, mel = augment.augment(
    jax.random.fold_in(run_key, AUGMENT_STREAM),
    batch['index'],
    painting,
    mel,
    jitter=input_config.jitter,
    flip=input_config.flip,
  )
  return {'painting': painting, 'mel': mel, 'era': batch['era']}


def eval_step(nets: Networks, state: State, batch: dict[str, jax.Array]):
  """Deterministic G (running BN stats, no dropout) with the weights inference uses (the moving
  average when kept): per-batch L1 sum, count and outputs."""
  g = state['generator_ema'] if 'generator_ema' in state else state['generator']
  generator = pix2pix.eval_view(nnx.merge(nets.generator, g['params'], g['batch_stats'], copy=True))
  fake = generator(batch['painting'], batch['era'])
  l1 = jnp.abs(fake - batch['mel']).mean(axis=(1, 2, 3))
  return {'l1_sum': (l1 * batch['mask']).sum(), 'count': batch['mask'].sum()}, fake


def validation_l1(eval_fn, state: State, config, mesh) -> tuple[float, dict[str, np.ndarray]]:
  """Validation L1 (running-average BN, no dropout) and a few examples for TensorBoard."""
  total = count = 0.0
  shown: dict[str, np.ndarray] = {}
  for batch in input_pipeline.eval_batches(
    config.data_dir,
    'validation',
    global_batch_size=config.batch_size,
    max_examples=config.eval_max_examples,
  ):
    out, fake = eval_fn(state, sharding.shard_batch(batch, mesh))
    total, count = total + float(out['l1_sum']), count + float(out['count'])
    if not shown and jax.process_count() == 1:
      n = config.num_images
      shown = {
        'painting': batch['painting'][:n],
        'target_mel': batch['mel'][:n],
        'generated_mel': np.asarray(fake)[:n],
      }
  return total / max(count, 1.0), shown


# ----------------------------------------------------------------------------- the family


class Pix2PixTask:
  """pix2pix for `loop.train`: networks, state, step, validation L1 and TensorBoard examples."""

  progress_keys = LOSS_KEYS

  def __init__(self, config: ml_collections.ConfigDict, meta: records.DatasetMeta):
    validate_config(config)
    self.config, self.meta = config, meta
    # config.json keeps what the user asked for ('auto'), so inference on another machine picks
    # its own backend's formulation; the log says what this run uses.
    self.conv_impl = pix2pix.resolve_conv_impl(config.model.conv_impl)
    logging.info(
      'Strided convolutions: model.conv_impl=%s -> %r on %s.',
      config.model.conv_impl,
      self.conv_impl,
      jax.default_backend(),
    )
    self.nets = make_networks(config, meta)
    self._eval_fn: Callable[..., Any] | None = None

  def init_state(self) -> State:
    return init_state(self.config, self.meta, self.nets)

  def train_step(self, state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]:
    """`batch` as `train_iterator` yields it; augmentation runs here, in the same program."""
    return train_step(
      self.nets, self.config.model, state, model_batch(self.config.input, state, batch)
    )

  def train_iterator(self, start_step: int) -> Iterator[dict[str, Any]]:
    c = self.config
    options = input_pipeline.stream_options(c, start_step)
    return iter(input_pipeline.train_dataset(c.data_dir, seed=c.seed, **options))

  def evaluate(
    self, state: State, *, mesh, state_shardings, log: summaries.TrainingSummaries, step: int
  ) -> dict[str, float]:
    """Validation L1 (running BN statistics, no dropout) and a few examples for TensorBoard."""
    if self._eval_fn is None:
      step_fn = functools.partial(eval_step, self.nets)
      self._eval_fn = loop.jit_eval_step(step_fn, mesh, state_shardings)
    val_l1, images = validation_l1(self._eval_fn, state, self.config, mesh)
    log.scalars(step, {'val_L1': val_l1})
    if images:
      log.examples(
        step,
        paintings=images['painting'],
        target_mels=images['target_mel'],
        generated_mels=images['generated_mel'],
      )
    logging.info('step %d: validation L1 %.4f', step, val_l1)
    return {'val_L1': val_l1}
