"""CycleGAN as a model family of the shared training loop (`training/loop.py`): unpaired
picture <-> mel, both directions trained jointly (docs/training.md, "CycleGAN").

The step is one `jax.jit` program over the 'data' mesh and follows pytorch CycleGAN's
`optimize_parameters`: one forward of both generators (picture -> mel -> picture and
mel -> picture -> mel), the generators' update against the current discriminators, then the
discriminators' update on real images and on generated ones drawn from the image pools.

Losses (the reference's defaults): LSGAN (`model.gan_mode`), cycle L1 with
`cyclegan.lambda_cycle` = 10 both ways, identity L1 with `cyclegan.lambda_identity` = 0.5 of it,
each discriminator's loss halved. The identity loss needs a picture fed to the mel -> picture
generator and a mel fed to the picture -> mel one, whose channels differ (3 vs 1), so each is
given the other domain's form of it: a mel tiled to three equal channels is a grey picture, and
should come back from picture -> mel unchanged; a picture's grey version (the channel mean) is a
one-channel image, and should come back from mel -> picture as that picture. This keeps the
reference's intent (a generator leaves what already looks like its output alone; here: the
layout of the image) without a learned channel adapter.

Image pools (the reference's `ImagePool`, 50 images per domain): the discriminators see
generated images from earlier steps too. Each pool is part of the state (`image_pools`, its own
checkpoint item) and its random draws are keyed on (run key, step, row), so a resumed run, or
the same run on another number of devices, swaps the same images.

The input: pictures and mels come from two independent shuffles of the training records
(`input_pipeline.UnpairedBatches`), so a record's own pairing is never seen. The `validation`
split gives the cycle-consistency errors at each evaluation.

State items (one checkpoint item each): `generators` ({'picture_to_mel', 'mel_to_picture'}, each
{'params', 'batch_stats'}), `generators_ema` (their moving average, when `model.ema_decay` > 0),
`discriminators` ({'picture', 'mel'}), `opt_state` ({'generators', 'discriminators'}: one Adam
over both generators and one over both discriminators, as the reference chains them),
`image_pools` ({'picture', 'mel', 'count'}, when `cyclegan.pool_size` > 0) and `progress`.
Instance norm (the reference's) has no batch statistics: `batch_stats` is then empty.
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
from pix2pitch_jax.models import cyclegan, pix2pix
from pix2pitch_jax.runtime import sharding
from pix2pitch_jax.training import gan_common, loop, summaries

P2M, M2P = cyclegan.PICTURE_TO_MEL, cyclegan.MEL_TO_PICTURE
DOMAINS = ('picture', 'mel')
LOSS_KEYS = ('G_GAN_mel', 'G_GAN_picture', 'cycle_picture', 'cycle_mel', 'D_mel', 'D_picture')
State = loop.State
# Streams folded into the run key: augmentation of each side (then the row's stream index), the
# image pools' draws (then the step). Dropout is off in CycleGAN, so nothing else uses the key.
PICTURE_AUGMENT_STREAM = 0x70696331
MEL_AUGMENT_STREAM = 0x6D656C31
POOL_STREAM = 0x706F6F6C


def validate_config(config: ml_collections.ConfigDict) -> None:
  """CycleGAN's own config checks (the shared ones are `loop.validate_common`)."""
  c, m, o, cg = config, config.model, config.optimizer, config.cyclegan
  require = loop.require
  require(
    c.dtype in pix2pix.DTYPES, f'dtype must be one of {sorted(pix2pix.DTYPES)}, got {c.dtype!r}'
  )
  require(m.norm in pix2pix.NORMS, f'model.norm must be one of {pix2pix.NORMS}, got {m.norm!r}')
  require(
    m.gan_mode in gan_common.GAN_MODES,
    f'model.gan_mode must be one of {gan_common.GAN_MODES}, got {m.gan_mode!r}',
  )
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
  require(
    cg.generator in cyclegan.GENERATORS,
    f'cyclegan.generator must be one of {cyclegan.GENERATORS}, got {cg.generator!r}',
  )
  require(cg.resnet_blocks >= 0, f'cyclegan.resnet_blocks must be >= 0, got {cg.resnet_blocks}')
  require(cg.downsampling >= 1, f'cyclegan.downsampling must be >= 1, got {cg.downsampling}')
  require(
    cg.edge_kernel >= 1 and cg.edge_kernel % 2 == 1,
    f'cyclegan.edge_kernel must be odd and >= 1, got {cg.edge_kernel}',
  )
  require(
    cg.generator != 'resnet' or c.image_size % 2**cg.downsampling == 0,
    f'image_size={c.image_size} must be divisible by 2**cyclegan.downsampling={2**cg.downsampling}',
  )
  require(cg.lambda_cycle >= 0, f'cyclegan.lambda_cycle must be >= 0, got {cg.lambda_cycle}')
  require(
    cg.lambda_identity >= 0, f'cyclegan.lambda_identity must be >= 0, got {cg.lambda_identity}'
  )
  require(cg.pool_size >= 0, f'cyclegan.pool_size must be >= 0, got {cg.pool_size}')
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

  generators: dict[str, nnx.GraphDef]  # by direction
  discriminators: dict[str, nnx.GraphDef]  # by domain
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  lr_schedule: optax.Schedule


def _build_modules(config, key: jax.Array) -> tuple[dict[str, Any], dict[str, Any]]:
  keys = jax.random.split(key, 4)
  generators = {
    d: cyclegan.make_generator(config, d, nnx.Rngs(params=k))
    for d, k in zip(cyclegan.DIRECTIONS, keys)
  }
  discriminators = {
    'picture': cyclegan.make_discriminator(
      config, cyclegan.PICTURE_CHANNELS, nnx.Rngs(params=keys[2])
    ),
    'mel': cyclegan.make_discriminator(config, cyclegan.MEL_CHANNELS, nnx.Rngs(params=keys[3])),
  }
  return generators, discriminators


def make_networks(config) -> Networks:
  generators, discriminators = nnx.eval_shape(lambda: _build_modules(config, jax.random.key(0)))
  tx, schedule = gan_common.optimizer(config)
  return Networks(
    {k: pix2pix.split_variables(v)[0] for k, v in generators.items()},
    {k: pix2pix.split_variables(v)[0] for k, v in discriminators.items()},
    tx,
    tx,
    schedule,
  )


def init_state(config, nets: Networks) -> State:
  """A fresh training state (pure function of config.seed; jit it with out_shardings)."""
  generators, discriminators = _build_modules(
    config, jax.random.key(config.seed, impl=gan_common.INIT_PRNG)
  )
  g = {k: pix2pix.split_variables(v)[1] for k, v in generators.items()}
  d = {k: pix2pix.split_variables(v)[1] for k, v in discriminators.items()}
  state: State = {cyclegan.GENERATORS_ITEM: g}
  if config.model.ema_decay > 0:
    state[cyclegan.GENERATORS_EMA_ITEM] = jax.tree.map(jnp.copy, g)
  state['discriminators'] = d
  state['opt_state'] = {
    'generators': nets.g_tx.init(_params(g)),
    'discriminators': nets.d_tx.init(_params(d)),
  }
  if config.cyclegan.pool_size > 0:
    s, n = config.image_size, config.cyclegan.pool_size
    state['image_pools'] = {
      'picture': jnp.zeros((n, s, s, cyclegan.PICTURE_CHANNELS), jnp.float32),
      'mel': jnp.zeros((n, s, s, cyclegan.MEL_CHANNELS), jnp.float32),
      'count': jnp.zeros((), jnp.int32),  # images in each pool so far (both fill in step)
    }
  state['progress'] = {
    'step': jnp.zeros((), jnp.int32),
    'rng': jax.random.key_data(jax.random.key(config.seed)),
  }
  return state


def _params(variables: dict[str, Any]) -> dict[str, Any]:
  return {k: v['params'] for k, v in variables.items()}


# ----------------------------------------------------------------------------- the step


def as_picture(mels: jax.Array) -> jax.Array:
  """A mel (B,S,S,1) as a grey picture (B,S,S,3): the identity input of picture -> mel."""
  return jnp.broadcast_to(mels, (*mels.shape[:-1], cyclegan.PICTURE_CHANNELS))


def as_mel(pictures: jax.Array) -> jax.Array:
  """A picture's grey version (B,S,S,1): the identity input of mel -> picture."""
  return pictures.mean(axis=-1, keepdims=True)


def _l1(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.abs(a - b).mean()


def query_pool(
  pool: jax.Array, count: jax.Array, images: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The reference `ImagePool.query`, row by row: while the pool fills, each image goes in and
  is returned; once full, each image is returned (p = 0.5) or swapped for a random pooled one,
  which it replaces. Returns (images for D, new pool, new count)."""
  size = pool.shape[0]

  def one(carry, row):
    pool, count = carry
    image, k = row
    k_swap, k_slot = jax.random.split(k)
    filling = count < size
    swap = jax.random.uniform(k_swap) > 0.5
    slot = jnp.where(filling, count, jax.random.randint(k_slot, (), 0, size))
    old = jax.lax.dynamic_index_in_dim(pool, slot, 0, keepdims=False)
    store = filling | swap
    pool = jax.lax.dynamic_update_index_in_dim(pool, jnp.where(store, image, old), slot, 0)
    out = jnp.where(filling | ~swap, image, old)
    return (pool, jnp.where(filling, count + 1, count)), out

  keys = jax.random.split(key, images.shape[0])
  (pool, new_count), out = jax.lax.scan(one, (pool, count), (images, keys))
  return out, pool, new_count


def train_step(
  nets: Networks, config, state: State, batch: dict[str, jax.Array]
) -> tuple[State, dict[str, jax.Array]]:
  """One CycleGAN iteration: both generators' update, then both discriminators' on pooled fakes."""
  m, cg = config.model, config.cyclegan
  gens, discs, opt = state['generators'], state['discriminators'], state['opt_state']
  step = state['progress']['step']
  pictures, mels = batch['painting'], batch['mel']
  lambda_cycle, lambda_idt = cg.lambda_cycle, cg.lambda_identity * cg.lambda_cycle

  def g_loss_fn(g_params):
    g_stats = {k: v['batch_stats'] for k, v in gens.items()}
    d_stats = {k: v['batch_stats'] for k, v in discs.items()}

    def generate(direction, x):
      out, g_stats[direction] = gan_common.apply(
        nets.generators[direction],
        {'params': g_params[direction], 'batch_stats': g_stats[direction]},
        x,
      )
      return out

    def judge(domain, x):  # D's parameters are constants here: only G's are differentiated
      variables = {'params': discs[domain]['params'], 'batch_stats': d_stats[domain]}
      logits, d_stats[domain] = gan_common.apply(nets.discriminators[domain], variables, x)
      return logits

    fake_mel = generate(P2M, pictures)
    fake_picture = generate(M2P, mels)
    losses = {
      'G_GAN_mel': gan_common.gan_loss(judge('mel', fake_mel), True, m.gan_mode),
      'G_GAN_picture': gan_common.gan_loss(judge('picture', fake_picture), True, m.gan_mode),
      'cycle_picture': _l1(generate(M2P, fake_mel), pictures),
      'cycle_mel': _l1(generate(P2M, fake_picture), mels),
    }
    total = losses['G_GAN_mel'] + losses['G_GAN_picture']
    total += lambda_cycle * (losses['cycle_picture'] + losses['cycle_mel'])
    if lambda_idt > 0:
      losses['idt_mel'] = _l1(generate(P2M, as_picture(mels)), mels)
      losses['idt_picture'] = _l1(generate(M2P, as_mel(pictures)), pictures)
      total += lambda_idt * (losses['idt_mel'] + losses['idt_picture'])
    fakes = {'picture': fake_picture, 'mel': fake_mel}
    return total, (g_stats, d_stats, fakes, losses)

  g_params = _params(gens)
  (g_loss, (g_stats, d_stats, fakes, losses)), g_grads = jax.value_and_grad(
    g_loss_fn, has_aux=True
  )(g_params)
  g_updates, g_opt = nets.g_tx.update(g_grads, opt['generators'], g_params)
  g_params = optax.apply_updates(g_params, g_updates)
  new_gens = {k: {'params': g_params[k], 'batch_stats': g_stats[k]} for k in gens}

  fakes = jax.tree.map(jax.lax.stop_gradient, fakes)
  new_state: State = {}
  if 'image_pools' in state:
    pools = state['image_pools']
    run_key = jax.random.wrap_key_data(state['progress']['rng'])
    pool_key = jax.random.fold_in(jax.random.fold_in(run_key, POOL_STREAM), step)
    new_pools: dict[str, jax.Array] = {}
    for i, domain in enumerate(DOMAINS):
      fakes[domain], new_pools[domain], new_pools['count'] = query_pool(
        pools[domain], pools['count'], fakes[domain], jax.random.fold_in(pool_key, i)
      )
    new_state['image_pools'] = new_pools

  reals = {'picture': pictures, 'mel': mels}

  def d_loss_fn(d_params):
    stats, aux, total = {}, {}, 0.0
    for domain in DOMAINS:
      variables = {'params': d_params[domain], 'batch_stats': d_stats[domain]}
      fake_logits, variables['batch_stats'] = gan_common.apply(
        nets.discriminators[domain], variables, fakes[domain]
      )
      real_logits, stats[domain] = gan_common.apply(
        nets.discriminators[domain], variables, reals[domain]
      )
      loss = 0.5 * (
        gan_common.gan_loss(real_logits, True, m.gan_mode)
        + gan_common.gan_loss(fake_logits, False, m.gan_mode)
      )
      aux[f'D_{domain}'] = loss
      aux[f'D_{domain}_real_mean'] = gan_common.d_score(real_logits, m.gan_mode)
      aux[f'D_{domain}_fake_mean'] = gan_common.d_score(fake_logits, m.gan_mode)
      total += loss
    return total, (stats, aux)

  d_params = _params(discs)
  (d_loss, (d_stats, d_aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
  d_updates, d_opt = nets.d_tx.update(d_grads, opt['discriminators'], d_params)
  d_params = optax.apply_updates(d_params, d_updates)

  new_state['generators'] = new_gens
  if m.ema_decay > 0:
    new_state['generators_ema'] = gan_common.ema_update(
      state['generators_ema'], new_gens, step, m.ema_decay
    )
  new_state['discriminators'] = {
    k: {'params': d_params[k], 'batch_stats': d_stats[k]} for k in discs
  }
  new_state['opt_state'] = {'generators': g_opt, 'discriminators': d_opt}
  new_state['progress'] = {'step': step + 1, 'rng': state['progress']['rng']}
  metrics = {
    'G_loss': g_loss,
    **losses,
    'D_loss': d_loss,
    **d_aux,
    'G_grad_norm': optax.global_norm(g_grads),
    'D_grad_norm': optax.global_norm(d_grads),
    'lr': nets.lr_schedule(step),
  }
  return new_state, metrics


def model_batch(input_config, state: State, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """An unpaired batch as stored -> augmented float32 model inputs, on the device. Each side is
  augmented alone (keyed on its own stream position); only pictures are flipped, since a mel's
  columns are time."""
  painting, mel = augment.to_float(batch['painting'], batch['mel'])
  run_key = jax.random.wrap_key_data(state['progress']['rng'])
  painting = augment.augment_images(
    jax.random.fold_in(run_key, PICTURE_AUGMENT_STREAM),
    batch['painting_index'],
    painting,
    jitter=input_config.jitter,
    flip=input_config.flip,
  )
  mel = augment.augment_images(
    jax.random.fold_in(run_key, MEL_AUGMENT_STREAM),
    batch['mel_index'],
    mel,
    jitter=input_config.jitter,
    flip=False,
  )
  return {'painting': painting, 'mel': mel}


# ----------------------------------------------------------------------------- evaluation


def inference_generators(state: State) -> dict[str, Any]:
  """The generator weights inference uses: the moving average when kept."""
  return state['generators_ema'] if 'generators_ema' in state else state['generators']


def eval_generator(graphdef: nnx.GraphDef, variables: dict[str, Any]) -> nnx.Module:
  """A deterministic generator (running statistics, were the norm BatchNorm)."""
  return pix2pix.eval_view(
    nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True)
  )


def eval_step(nets: Networks, state: State, batch: dict[str, jax.Array]):
  """Cycle errors of one validation batch (sums over real rows) and picture -> mel outputs."""
  g = inference_generators(state)
  p2m = eval_generator(nets.generators[P2M], g[P2M])
  m2p = eval_generator(nets.generators[M2P], g[M2P])
  pictures, mels, mask = batch['painting'], batch['mel'], batch['mask']
  fake_mel, fake_picture = p2m(pictures), m2p(mels)
  per_row = lambda a, b: jnp.abs(a - b).mean(axis=(1, 2, 3)) * mask
  out = {
    'cycle_picture_sum': per_row(m2p(fake_mel), pictures).sum(),
    'cycle_mel_sum': per_row(p2m(fake_picture), mels).sum(),
    'count': mask.sum(),
  }
  return out, (fake_mel, fake_picture)


def validation_cycle_errors(eval_fn, state: State, config, mesh) -> tuple[dict[str, float], dict]:
  sums = {'cycle_picture_sum': 0.0, 'cycle_mel_sum': 0.0, 'count': 0.0}
  shown: dict[str, np.ndarray] = {}
  for batch in input_pipeline.eval_batches(
    config.data_dir,
    'validation',
    global_batch_size=config.batch_size,
    max_examples=config.eval_max_examples,
  ):
    out, (fake_mel, fake_picture) = eval_fn(state, sharding.shard_batch(batch, mesh))
    sums = {k: sums[k] + float(out[k]) for k in sums}
    if not shown and jax.process_count() == 1:
      n = config.num_images
      shown = {
        'painting': batch['painting'][:n],
        'mel': batch['mel'][:n],
        'generated_mel': np.asarray(fake_mel)[:n],
        'generated_picture': np.asarray(fake_picture)[:n],
      }
  count = max(sums['count'], 1.0)
  return {
    'val_cycle_picture': sums['cycle_picture_sum'] / count,
    'val_cycle_mel': sums['cycle_mel_sum'] / count,
  }, shown


# ----------------------------------------------------------------------------- the family


class CycleGANTask:
  """CycleGAN for `loop.train`: networks, state, step, validation cycle errors and examples."""

  progress_keys = LOSS_KEYS

  def __init__(self, config: ml_collections.ConfigDict, meta: records.DatasetMeta):
    validate_config(config)
    self.config, self.meta = config, meta
    if config.model.era_conditioning:
      logging.warning('model.era_conditioning is ignored by the cyclegan family.')
    if meta.extra.get('paired', True):
      logging.info('%s is a paired dataset; CycleGAN draws its two sides apart.', config.data_dir)
    self.nets = make_networks(config)
    self._eval_fn: Callable[..., Any] | None = None

  def init_state(self) -> State:
    return init_state(self.config, self.nets)

  def train_step(self, state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]:
    return train_step(self.nets, self.config, state, model_batch(self.config.input, state, batch))

  def train_iterator(self, start_step: int) -> Iterator[dict[str, Any]]:
    c = self.config
    options = input_pipeline.stream_options(c, start_step)
    return input_pipeline.UnpairedBatches(c.data_dir, seed=c.seed, **options)

  def evaluate(
    self, state: State, *, mesh, state_shardings, log: summaries.TrainingSummaries, step: int
  ) -> dict[str, float]:
    """Validation cycle errors (both ways) and a few examples of both directions."""
    if self._eval_fn is None:
      step_fn = functools.partial(eval_step, self.nets)
      self._eval_fn = loop.jit_eval_step(step_fn, mesh, state_shardings)
    errors, images = validation_cycle_errors(self._eval_fn, state, self.config, mesh)
    log.scalars(step, errors)
    if images:
      log.examples(
        step,
        paintings=images['painting'],
        target_mels=images['mel'],
        generated_mels=images['generated_mel'],
      )
      log.images(
        step,
        {
          'mel_for_picture': summaries.mel_images(images['mel']),
          'generated_picture': images['generated_picture'],
        },
      )
    logging.info(
      'step %d: validation cycle L1 picture %.4f, mel %.4f',
      step,
      errors['val_cycle_picture'],
      errors['val_cycle_mel'],
    )
    return errors
