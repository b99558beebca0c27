"""Training library: `train_and_evaluate(config, workdir)` trains pix2pix and returns a summary.

The step (`train_step`) is one `jax.jit` program over a 1-D 'data' mesh: it updates D, then
G, exactly as pytorch pix2pix's `optimize_parameters` does (one G forward; D sees the detached
fake; G's adversarial term uses the freshly updated D). The global batch is sharded over all
devices of all hosts; BatchNorm statistics are therefore global-batch (synchronised) statistics.
The training state is a plain dict of arrays laid out like a checkpoint (checkpointing.py), so
it can be donated, sharded (replicated or FSDP) and saved without conversion.

Resume order (big_vision): the newest restorable checkpoint in `<workdir>/checkpoints`, else a
fresh initialisation from `config.seed`. What a run shows (TensorBoard, metrics.jsonl) is written
by summaries.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from pix2pitch_jax.runtime import checkpointing
from pix2pitch_jax.data import input_pipeline
from pix2pitch_jax.models import pix2pix
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import sharding
from pix2pitch_jax.training import summaries
from pix2pitch_jax.core import configs
from pix2pitch_jax.core import workdir as workdir_lib

GAN_MODES = ('vanilla', 'lsgan')
LOSS_KEYS = ('G_GAN', 'G_L1', 'D_real', 'D_fake')
State = dict[str, Any]
# Parameter init only: XLA compiles RngBitGenerator much faster than threefry (~3 s vs ~15 s for
# the init program on 2 CPU cores). Values are replicated, so this is deterministic.
INIT_PRNG = 'rbg'
# ETAs beyond this (~27 years) print as unknown: no rate that slow is a real estimate.
MAX_ETA_SECONDS = 1e9


# ----------------------------------------------------------------------------- configuration

def _require(ok: bool, message: str) -> None:
  if not ok:
    raise configs.ConfigError(f'Bad config: {message}')


def mesh_size(config) -> int:
  """Devices to shard the batch over: `num_devices`, or all of them.

  With num_devices=0 in a single process, a batch smaller than (or not divisible by) the device
  count uses the largest device count that divides it, so small-batch runs work anywhere.
  Multi-process runs always use every device.
  """
  if config.num_devices:
    return config.num_devices
  n = jax.device_count()
  if jax.process_count() > 1:
    return n
  return max(d for d in range(1, n + 1) if config.batch_size % d == 0)


def validate_config(config: ml_collections.ConfigDict) -> records.DatasetMeta:
  """All config checks in one place, before anything compiles; returns the dataset's meta."""
  configs.check_known_keys(config)
  c, m, o, i = config, config.model, config.optimizer, config.input
  _require(bool(c.data_dir), 'data_dir is required (--config.data_dir=...)')
  _require(workdir_lib.as_path(c.data_dir).is_dir(), f'data_dir {c.data_dir!r} is not a directory')
  _require(c.image_size >= 8 and c.image_size & (c.image_size - 1) == 0,
           f'image_size must be a power of two >= 8, got {c.image_size}')
  for name in ('batch_size', 'num_train_steps', 'checkpoint_every_steps', 'keep_checkpoints',
               'log_every_steps', 'num_images'):
    _require(c[name] >= 1, f'{name} must be >= 1, got {c[name]}')
  for name in ('eval_every_steps', 'eval_max_examples', 'num_devices'):
    _require(c[name] >= 0, f'{name} must be >= 0, got {c[name]}')
  _require(c.num_devices <= jax.device_count(),
           f'num_devices={c.num_devices} but only {jax.device_count()} devices exist')
  _require(c.dtype in pix2pix.DTYPES, f'dtype must be one of {sorted(pix2pix.DTYPES)}, got {c.dtype!r}')
  _require(m.norm in pix2pix.NORMS, f'model.norm must be one of {pix2pix.NORMS}, got {m.norm!r}')
  _require(m.gan_mode in GAN_MODES, f'model.gan_mode must be one of {GAN_MODES}, got '
           f'{m.gan_mode!r}')
  _require(m.conv_impl in pix2pix.CONV_IMPLS, f'model.conv_impl must be one of '
           f'{pix2pix.CONV_IMPLS}, got {m.conv_impl!r}')
  _require(m.ngf >= 1 and m.ndf >= 1 and m.n_layers_D >= 1,
           'model.ngf, model.ndf and model.n_layers_D must be >= 1')
  _require(pix2pix.min_patchgan_size(m.n_layers_D) <= c.image_size,
           f'model.n_layers_D={m.n_layers_D} is too deep for image_size={c.image_size}')
  _require(m.lambda_L1 >= 0, f'model.lambda_L1 must be >= 0, got {m.lambda_L1}')
  _require(o.lr > 0 and 0 <= o.b1 < 1 and 0 <= o.b2 < 1, 'optimizer: need lr > 0, 0 <= b1, b2 < 1')
  _require(0 <= o.decay_start_step <= c.num_train_steps,
           f'optimizer.decay_start_step must be in [0, num_train_steps={c.num_train_steps}], '
           f'got {o.decay_start_step}')
  _require(i.workers >= 0 and i.shuffle_buffer >= 0,
           'input.workers and input.shuffle_buffer must be >= 0')
  num_devices = mesh_size(c)
  _require(c.batch_size % num_devices == 0 and c.batch_size % jax.process_count() == 0,
           f'batch_size={c.batch_size} must be divisible by the {num_devices} devices and '
           f'{jax.process_count()} processes')
  meta = records.read_meta(c.data_dir)
  _require(meta.image_size == c.image_size,
           f'image_size={c.image_size} but the dataset in {c.data_dir} has '
           f'{meta.image_size}x{meta.image_size} mels (set --config.image_size={meta.image_size})')
  return meta


# ----------------------------------------------------------------------------- model and state

@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of the training state: graph definitions and optimizers."""

  generator: nnx.GraphDef
  discriminator: nnx.GraphDef
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  lr_schedule: optax.Schedule


def lr_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """pix2pix `lr_policy linear`: constant, then linear decay to 0 at num_train_steps."""
  o = config.optimizer
  decay_steps = max(1, config.num_train_steps - o.decay_start_step)
  return optax.join_schedules(
      [optax.constant_schedule(o.lr), optax.linear_schedule(o.lr, 0.0, decay_steps)],
      [o.decay_start_step])


def _build_modules(config, meta: records.DatasetMeta, key: jax.Array):
  g_key, d_key = jax.random.split(key)
  generator = pix2pix.generator_from_config(config, len(meta.era_names), nnx.Rngs(params=g_key))
  discriminator = pix2pix.discriminator_from_config(config, nnx.Rngs(params=d_key))
  return generator, discriminator


def make_networks(config, meta: records.DatasetMeta) -> Networks:
  generator, discriminator = nnx.eval_shape(
      lambda: _build_modules(config, meta, jax.random.key(0)))
  schedule = lr_schedule(config)
  tx = optax.adam(schedule, b1=config.optimizer.b1, b2=config.optimizer.b2)
  return Networks(pix2pix.split_variables(generator)[0], pix2pix.split_variables(discriminator)[0], tx, tx, schedule)


def init_state(config, meta: records.DatasetMeta, nets: Networks) -> State:
  """A fresh training state (pure function of config.seed; jit it with out_shardings)."""
  init_key = jax.random.key(config.seed, impl=INIT_PRNG)
  run_key = jax.random.key(config.seed)  # threefry: dropout masks independent of the sharding
  generator, discriminator = _build_modules(config, meta, init_key)
  g, d = pix2pix.split_variables(generator)[1], pix2pix.split_variables(discriminator)[1]
  return {
      'generator': g,
      'discriminator': d,
      'opt_state': {'generator': nets.g_tx.init(g['params']),
                    'discriminator': nets.d_tx.init(d['params'])},
      'progress': {'step': jnp.zeros((), jnp.int32), 'rng': jax.random.key_data(run_key)},
  }


def create_train_state(config, meta, nets: Networks, mesh) -> tuple[State, Any]:
  """Initialise straight into the target shardings (no host copy of the full state)."""
  init = functools.partial(init_state, config, meta, nets)
  abstract = jax.eval_shape(init)
  shardings = sharding.state_shardings(abstract, mesh, config.fsdp)
  return jax.jit(init, out_shardings=shardings)(), shardings


def abstract_state(config, meta, nets: Networks, mesh) -> tuple[State, Any]:
  """ShapeDtypeStructs with shardings: the restore target for checkpoints."""
  abstract = jax.eval_shape(functools.partial(init_state, config, meta, nets))
  shardings = sharding.state_shardings(abstract, mesh, config.fsdp)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings), shardings


# ----------------------------------------------------------------------------- losses and steps

def gan_loss(logits: jax.Array, target_is_real: bool, gan_mode: str) -> jax.Array:
  """pix2pix GANLoss: BCE on logits (vanilla) or mean squared error (lsgan)."""
  labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
  if gan_mode == 'vanilla':
    return optax.sigmoid_binary_cross_entropy(logits, labels).mean()
  return 2.0 * optax.l2_loss(logits, labels).mean()  # l2_loss is 0.5 * err**2


def _d_score(logits: jax.Array, gan_mode: str) -> jax.Array:
  """Mean D output as a score: probability for vanilla, raw output for lsgan."""
  return (jax.nn.sigmoid(logits) if gan_mode == 'vanilla' else logits).mean()


def _apply(graphdef, variables, *args, **kwargs):
  """Run a module in training mode; returns (output, updated batch_stats)."""
  module = nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True)
  out = module(*args, **kwargs)
  return out, nnx.state(module, nnx.BatchStat).to_pure_dict()


def train_step(nets: Networks, model_config, state: State,
               batch: dict[str, jax.Array]) -> tuple[State, dict[str, jax.Array]]:
  """One pix2pix iteration: G forward, D update on the detached fake, G update vs the new D."""
  g, d, opt = state['generator'], state['discriminator'], state['opt_state']
  step = state['progress']['step']
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state['progress']['rng']), step)
  painting, mel, era = batch['painting'], batch['mel'], batch['era']
  gan_mode, lam = model_config.gan_mode, model_config.lambda_L1

  def generate(g_params):
    return _apply(nets.generator, {'params': g_params, 'batch_stats': g['batch_stats']},
                  painting, era, dropout_key=dropout_key)

  fake, g_vjp, g_stats = jax.vjp(generate, g['params'], has_aux=True)

  def d_loss_fn(d_params):
    d_vars = {'params': d_params, 'batch_stats': d['batch_stats']}
    fake_logits, d_vars['batch_stats'] = _apply(nets.discriminator, d_vars, painting,
                                                jax.lax.stop_gradient(fake))
    real_logits, d_stats = _apply(nets.discriminator, d_vars, painting, mel)
    d_fake, d_real = gan_loss(fake_logits, False, gan_mode), gan_loss(real_logits, True, gan_mode)
    aux = {'D_fake': d_fake, 'D_real': d_real, 'D_real_mean': _d_score(real_logits, gan_mode),
           'D_fake_mean': _d_score(fake_logits, gan_mode)}
    return 0.5 * (d_fake + d_real), (d_stats, aux)

  (d_loss, (d_stats, d_aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d['params'])
  d_updates, d_opt = nets.d_tx.update(d_grads, opt['discriminator'], d['params'])
  d_params = optax.apply_updates(d['params'], d_updates)

  def g_loss_fn(fake):
    logits, d_stats_g = _apply(nets.discriminator, {'params': d_params, 'batch_stats': d_stats},
                               painting, fake)
    g_gan, g_l1 = gan_loss(logits, True, gan_mode), jnp.abs(fake - mel).mean()
    return g_gan + lam * g_l1, (d_stats_g, {'G_GAN': g_gan, 'G_L1': g_l1})

  (g_loss, (d_stats, g_aux)), dfake = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(dfake)
  g_updates, g_opt = nets.g_tx.update(g_grads, opt['generator'], g['params'])
  new_state = {
      'generator': {'params': optax.apply_updates(g['params'], g_updates), 'batch_stats': g_stats},
      'discriminator': {'params': d_params, 'batch_stats': d_stats},
      'opt_state': {'generator': g_opt, 'discriminator': d_opt},
      'progress': {'step': step + 1, 'rng': state['progress']['rng']},
  }
  metrics = {'G_loss': g_loss, 'D_loss': d_loss, **g_aux, **d_aux,
             'G_grad_norm': optax.global_norm(g_grads), 'D_grad_norm': optax.global_norm(d_grads),
             'lr': nets.lr_schedule(step)}
  return new_state, metrics


def eval_step(nets: Networks, state: State, batch: dict[str, jax.Array]):
  """Deterministic G (running BN stats, no dropout): per-batch L1 sum, count and outputs."""
  g = state['generator']
  generator = pix2pix.eval_view(nnx.merge(nets.generator, g['params'], g['batch_stats'], copy=True))
  fake = generator(batch['painting'], batch['era'])
  l1 = jnp.abs(fake - batch['mel']).mean(axis=(1, 2, 3))
  return {'l1_sum': (l1 * batch['mask']).sum(), 'count': batch['mask'].sum()}, fake


def jit_steps(nets: Networks, config, mesh, state_shardings) -> tuple[Callable, Callable]:
  """The jitted train step (state donated) and eval step, with explicit shardings."""
  data, repl = sharding.data_sharding(mesh), sharding.replicated(mesh)
  train = jax.jit(functools.partial(train_step, nets, config.model),
                  in_shardings=(state_shardings, data), out_shardings=(state_shardings, repl),
                  donate_argnums=0)
  evaluate = jax.jit(functools.partial(eval_step, nets), in_shardings=(state_shardings, data),
                     out_shardings=(repl, data))
  return train, evaluate


# ----------------------------------------------------------------------------- observability

def check_finite(step: int, metrics: dict[str, float], last_checkpoint: int | None) -> None:
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    raise FloatingPointError(
        f'non-finite training metrics at step {step}: {bad}; stopping. The last good checkpoint '
        f'(step {last_checkpoint}) is intact.')


class Throughput:
  """Steps/s over the training time only (paused around eval and checkpointing)."""

  def __init__(self, step: int):
    self.step, self.busy, self._start = step, 0.0, time.perf_counter()

  def pause(self):
    self.busy += time.perf_counter() - self._start

  def resume(self):
    self._start = time.perf_counter()

  def report(self, step: int) -> float:
    self.pause()
    rate = (step - self.step) / max(self.busy, 1e-9)
    self.step, self.busy = step, 0.0
    self.resume()
    return rate


# ----------------------------------------------------------------------------- the loop

def evaluate(eval_fn, state: State, config, mesh) -> tuple[float, dict[str, np.ndarray]]:
  """Validation L1 (running-average BN, no dropout) and a few examples for TensorBoard."""
  total = count = 0.0
  shown: dict[str, np.ndarray] = {}
  for batch in input_pipeline.eval_batches(config.data_dir, 'validation',
                                           global_batch_size=config.batch_size,
                                           max_examples=config.eval_max_examples):
    out, fake = eval_fn(state, sharding.shard_batch(batch, mesh))
    total, count = total + float(out['l1_sum']), count + float(out['count'])
    if not shown and jax.process_count() == 1:
      n = config.num_images
      shown = {'painting': batch['painting'][:n], 'target_mel': batch['mel'][:n],
               'generated_mel': np.asarray(fake)[:n]}
  return total / max(count, 1.0), shown


def _write_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    workdir_lib.Workdir(workdir).config_json.write_text(
        config.to_json_best_effort(indent=2, sort_keys=True))


def _restore_or_init(config, meta, nets, mesh, *, ckpt, data_iter) -> tuple[State, Any]:
  target, shardings = abstract_state(config, meta, nets, mesh)
  restored = ckpt.restore(target, data_iter)
  if restored is None:
    logging.info('No checkpoint in %s: initialising from seed %d.', ckpt.directory, config.seed)
    return create_train_state(config, meta, nets, mesh)
  step, state = restored
  logging.info('Resumed from checkpoint step %d in %s.', step, ckpt.directory)
  return state, shardings


def format_eta(remaining_steps: int, rate: float) -> str:
  """Time left at `rate` steps/s as H:MM:SS, or '?' when the rate gives no estimate.

  The first report after compilation has a rate of ~0 (no step timed yet); the ETA is then
  unknown, not a timedelta too large to build (OverflowError). Likewise for nan, negative or
  absurdly small rates. An infinite rate means nothing left to wait for.
  """
  if remaining_steps <= 0:
    return str(datetime.timedelta(0))
  if not rate > 0:  # 0, negative or nan
    return '?'
  seconds = remaining_steps / rate
  if not seconds < MAX_ETA_SECONDS:
    return '?'
  return str(datetime.timedelta(seconds=int(seconds)))


def _log_progress(step: int, total: int, rate: float, batch_size: int, m: dict) -> None:
  logging.info('step %d/%d  %.2f steps/s  %.1f examples/s  ETA %s  G_GAN %.3f  G_L1 %.4f  '
               'D_real %.3f  D_fake %.3f', step, total, rate, rate * batch_size,
               format_eta(total - step, rate), m['G_GAN'], m['G_L1'], m['D_real'], m['D_fake'])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Train (resuming from `workdir` if it has checkpoints); returns a summary dict.

  Summary: final `step`, the last logged losses (`G_GAN`, `G_L1`, `D_real`, `D_fake`, ...),
  `val_L1` of the last evaluation, `resumed_from` (step or None), `preempted` (bool).
  """
  meta = validate_config(config)
  workdir_lib.Workdir(workdir).root.mkdir(parents=True, exist_ok=True)
  _write_config(config, workdir)
  mesh = sharding.make_mesh(mesh_size(config))
  if mesh.size < jax.device_count():
    logging.warning('Training on %d of %d devices (batch_size=%d, num_devices=%d).', mesh.size,
                    jax.device_count(), config.batch_size, config.num_devices)
  nets = make_networks(config, meta)
  data = input_pipeline.train_dataset(
      config.data_dir, global_batch_size=config.batch_size, seed=config.seed,
      jitter=config.input.jitter, flip=config.input.flip,
      shuffle_buffer=config.input.shuffle_buffer, workers=config.input.workers)
  data_iter = iter(data)
  ckpt = checkpointing.Checkpointer(workdir, save_every_steps=config.checkpoint_every_steps,
                                    keep=config.keep_checkpoints)
  log = summaries.TrainingSummaries(workdir, enabled=jax.process_index() == 0,
                                    mel_params=meta.mel_params)
  try:
    state, shardings = _restore_or_init(config, meta, nets, mesh, ckpt=ckpt, data_iter=data_iter)
    train_fn, eval_fn = jit_steps(nets, config, mesh, shardings)
    with checkpointing.StopSignal() as stop:
      summary = _train_loop(config, state, data_iter=data_iter, train_fn=train_fn,
                            eval_fn=eval_fn, mesh=mesh, ckpt=ckpt, log=log, stop=stop)
  finally:
    ckpt.close()
    log.close()
    if hasattr(data_iter, 'close'):
      data_iter.close()
  return summary


def _train_loop(config, state, *, data_iter, train_fn, eval_fn, mesh, ckpt, log, stop) -> dict:
  start = int(jax.device_get(state['progress']['step']))
  summary: dict[str, Any] = {'resumed_from': start or None, 'preempted': False, 'val_L1': None,
                             'step': start}
  last_saved = ckpt.latest_step()
  timer = Throughput(start)
  for step in range(start + 1, config.num_train_steps + 1):
    state, metrics = train_fn(state, sharding.shard_batch(next(data_iter), mesh))
    if step == start + 1:  # keep compilation out of the throughput figures
      jax.block_until_ready(metrics)
      timer = Throughput(step)
    final = step == config.num_train_steps
    preempt = stop.received is not None or ckpt.reached_preemption(step)
    save = final or preempt or step % config.checkpoint_every_steps == 0
    if save or step % config.log_every_steps == 0:
      # Checked before every save, so the newest checkpoint is always a finite one.
      host = {k: float(v) for k, v in jax.device_get(metrics).items()}
      check_finite(step, host, last_saved)
      _log_metrics(log, step, config, timer.report(step), host)
      summary.update(host)
    timer.pause()
    if final or (config.eval_every_steps and step % config.eval_every_steps == 0):
      summary['val_L1'] = _evaluate_and_log(eval_fn, state, config, mesh=mesh, log=log, step=step)
    if save and ckpt.save(step, state, data_iter, force=final or preempt):
      last_saved = step
    timer.resume()
    summary['step'] = step
    if preempt:
      logging.warning('Stopping at step %d after a stop request; checkpoint saved.', step)
      summary['preempted'] = True
      break
  ckpt.wait()
  return summary


def _log_metrics(log: summaries.TrainingSummaries, step: int, config, rate: float,
                 host: dict) -> None:
  log.scalars(step, {**host, 'steps_per_s': rate, 'examples_per_s': rate * config.batch_size})
  _log_progress(step, config.num_train_steps, rate, config.batch_size, host)


def _evaluate_and_log(eval_fn, state, config, *, mesh, log: summaries.TrainingSummaries,
                      step: int) -> float:
  val_l1, images = evaluate(eval_fn, state, config, mesh)
  log.scalars(step, {'val_L1': val_l1})
  if images:
    log.examples(step, paintings=images['painting'], target_mels=images['target_mel'],
                 generated_mels=images['generated_mel'])
  logging.info('step %d: validation L1 %.4f', step, val_l1)
  return val_l1
