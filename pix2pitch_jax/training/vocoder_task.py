"""The neural vocoder as a model family of the shared training loop (`training/loop.py`).

`config.family = 'vocoder'`: a Vocos-style vocoder (models/vocoder.py) learns to turn the
dataset's mel images into the clips they were computed from. It needs a dataset built with audio
(data_prep `--store_audio`; the demo corpora have it) and reads only its `mel` and `audio`.

Each step takes a batch of (mel image, waveform) pairs, cuts a random crop of
`vocoder.segment_frames` frames from each (the matching samples of its waveform: frame t is
centred on sample t * hop), runs the vocoder on the crops and minimises

    lambda_stft * MR-STFT(target, output) + lambda_mel * L1(mel(output), mel(target))

(audio/stft_distance.py; the mels are the dataset's transform in JAX, on the dataset's image
scale, computed on both crops alike so their edges match). Crops are keyed by each row's position
in the global stream, so a resumed run cuts the same crops. No discriminator: on a CPU budget the
spectral losses alone buy more quality per CPU-minute than an adversary does (docs/vocoder.md).

State items: `vocoder` ({'params'}), `vocoder_ema` (their moving average, when `ema_decay` > 0;
inference's default), `opt_state`, `progress`. Evaluation: the MR-STFT distance of whole
validation clips vocoded from their mels (`val_mrstft`), and a few of them, with their originals,
as TensorBoard audio.
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

from pix2pitch_jax.audio import inverse, spectrogram, stft_distance
from pix2pitch_jax.data import input_pipeline, records
from pix2pitch_jax.models import vocoder as vocoder_model
from pix2pitch_jax.runtime import sharding
from pix2pitch_jax.training import gan_common, loop, summaries

State = loop.State
LOSS_KEYS = ('loss', 'mrstft', 'mel_L1')
VOCODER_ITEM = 'vocoder'
VOCODER_EMA_ITEM = 'vocoder_ema'
FIELDS = ('mel', 'audio')
# Crop offsets are keyed fold_in(fold_in(run key, CROP_STREAM), row index).
CROP_STREAM = 0x63726F70


def validate_config(config: ml_collections.ConfigDict, meta: records.DatasetMeta) -> None:
  c, v, o = config, config.vocoder, config.optimizer
  require = loop.require
  require(
    meta.stores_audio,
    f'family=vocoder needs audio in the dataset, and {c.data_dir} stores none: rebuild it with '
    'data_prep --store_audio (the demo corpora store it)',
  )
  require(c.dtype == 'float32', f'family=vocoder trains in float32 only, got dtype={c.dtype!r}')
  require(
    v.dim >= 1 and v.intermediate_dim >= 1 and v.num_layers >= 1,
    'vocoder.dim, vocoder.intermediate_dim and vocoder.num_layers must be >= 1',
  )
  require(
    v.kernel_size >= 1 and v.kernel_size % 2 == 1,
    f'vocoder.kernel_size must be odd, got {v.kernel_size}',
  )
  require(
    0 <= v.segment_frames <= c.image_size,
    f'vocoder.segment_frames must be in [0, image_size={c.image_size}], got {v.segment_frames}',
  )
  require(v.lambda_stft >= 0 and v.lambda_mel >= 0, 'vocoder.lambda_* must be >= 0')
  require(v.lambda_stft > 0 or v.lambda_mel > 0, 'vocoder.lambda_stft and lambda_mel are both 0')
  require(v.grad_clip_norm >= 0, f'vocoder.grad_clip_norm must be >= 0, got {v.grad_clip_norm}')
  require(0 <= v.ema_decay < 1, f'vocoder.ema_decay must be in [0, 1), got {v.ema_decay}')
  require(v.num_audio >= 0, f'vocoder.num_audio must be >= 0, got {v.num_audio}')
  for pair in stft_resolutions(config, meta):
    require(
      len(pair) == 2 and pair[1] >= 1 and pair[0] % pair[1] == 0,
      f'vocoder.stft_resolutions: each entry is (n_fft, hop) with hop dividing n_fft, got {pair}',
    )
  require(o.lr > 0 and 0 <= o.b1 < 1 and 0 <= o.b2 < 1, 'optimizer: need lr > 0, 0 <= b1, b2 < 1')
  require(
    o.grad_accum_steps == 1, 'family=vocoder does not accumulate gradients (grad_accum_steps=1)'
  )
  require(
    0 <= o.decay_start_step <= c.num_train_steps,
    f'optimizer.decay_start_step must be in [0, num_train_steps={c.num_train_steps}]',
  )


def stft_resolutions(config, meta: records.DatasetMeta) -> tuple[tuple[int, int], ...]:
  configured = tuple((int(n_fft), int(hop)) for n_fft, hop in config.vocoder.stft_resolutions)
  return configured or stft_distance.resolutions_for(meta.mel_params.sample_rate)


def architecture(config) -> vocoder_model.VocoderConfig:
  return vocoder_model.VocoderConfig.from_config(config.vocoder)


@dataclasses.dataclass(frozen=True)
class Networks:
  graphdef: nnx.GraphDef
  tx: optax.GradientTransformation
  lr_schedule: optax.Schedule
  resolutions: tuple[tuple[int, int], ...]


def make_networks(config, meta: records.DatasetMeta) -> Networks:
  graphdef, _ = vocoder_model.abstract_vocoder(meta.mel_params, architecture(config))
  schedule = gan_common.lr_schedule(config)  # constant, then linear decay to 0
  o = config.optimizer
  tx = optax.adam(schedule, b1=o.b1, b2=o.b2)
  if config.vocoder.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(config.vocoder.grad_clip_norm), tx)
  return Networks(graphdef, tx, schedule, stft_resolutions(config, meta))


def init_state(config, meta: records.DatasetMeta, nets: Networks) -> State:
  init_key = jax.random.key(config.seed, impl=gan_common.INIT_PRNG)
  run_key = jax.random.key(config.seed)
  module = vocoder_model.make_vocoder(
    meta.mel_params, architecture(config), nnx.Rngs(params=init_key)
  )
  params = vocoder_model.split_params(module)[1]
  ema = (
    {VOCODER_EMA_ITEM: {'params': jax.tree.map(jnp.copy, params)}}
    if config.vocoder.ema_decay > 0
    else {}
  )
  return {
    VOCODER_ITEM: {'params': params},
    **ema,
    'opt_state': nets.tx.init(params),
    'progress': {'step': jnp.zeros((), jnp.int32), 'rng': jax.random.key_data(run_key)},
  }


# ----------------------------------------------------------------------------- the step


def crop(
  key: jax.Array, index: jax.Array, mel: jax.Array, audio: jax.Array, frames: int, hop: int
) -> tuple[jax.Array, jax.Array]:
  """Random crops of `frames` mel columns and their `frames * hop` samples, one per row, keyed
  by the row's global index: mel (B, M, T), audio (B, L) -> (B, M, frames), (B, frames * hop)."""
  n_frames = mel.shape[-1]
  # The last crop must have its samples inside the clip (T * hop may exceed it by < hop).
  last = min(n_frames - frames, (audio.shape[-1] - frames * hop) // hop)

  def one(index, mel, audio):
    start = jax.random.randint(jax.random.fold_in(key, index), (), 0, last + 1)
    m = jax.lax.dynamic_slice_in_dim(mel, start, frames, axis=-1)
    a = jax.lax.dynamic_slice_in_dim(audio, start * hop, frames * hop, axis=-1)
    return m, a

  return jax.vmap(one)(index, mel, audio)


def mel_image_of(audio: jax.Array, params: spectrogram.MelParams) -> jax.Array:
  """The dataset's mel transform of audio (B, L) in JAX: images (B, M, 1 + L // hop) on the
  image scale (min_db -> -1, max_db -> +1) but without the clip at -1, so that the loss still
  sees how far below the floor a quiet output is; lowest band in the last row."""
  power = jnp.abs(inverse.stft(audio, params)) ** 2
  mel = jnp.einsum(
    'mf,...ft->...mt', spectrogram.mel_filterbank(params), power, precision='highest'
  )
  db = 10.0 * jnp.log10(jnp.maximum(mel, params.amin) / params.ref_power)
  image = 2.0 * (jnp.minimum(db, params.max_db) - params.min_db) / (params.max_db - params.min_db)
  return jnp.flip(image - 1.0, axis=-2)


def mel_l1(target_image: jax.Array, output_image: jax.Array) -> jax.Array:
  """L1 of mel images where the target is above the floor (-1); where it is at the floor, only
  output above the floor counts (any quieter output is equally silent after the transform)."""
  target = jnp.maximum(target_image, -1.0)
  floor = target <= -1.0
  error = jnp.where(floor, jax.nn.relu(output_image - target), jnp.abs(output_image - target))
  return error.mean()


def losses(nets: Networks, v_config, params, mel, audio, mel_params):
  output = vocoder_model.apply(nets.graphdef, params, mel, audio.shape[-1])
  mrstft = stft_distance.multi_resolution_stft_loss(audio, output, nets.resolutions)
  mel_loss = mel_l1(mel_image_of(audio, mel_params), mel_image_of(output, mel_params))
  loss = v_config.lambda_stft * mrstft + v_config.lambda_mel * mel_loss
  return loss, {'mrstft': mrstft, 'mel_L1': mel_loss}


def train_step(
  nets: Networks, config, mel_params: spectrogram.MelParams, state: State, batch
) -> tuple[State, dict[str, jax.Array]]:
  v = config.vocoder
  step = state['progress']['step']
  mel = batch['mel'].astype(jnp.float32)
  audio = batch['audio'].astype(jnp.float32) / records.AUDIO_FULL_SCALE
  if v.segment_frames:
    run_key = jax.random.wrap_key_data(state['progress']['rng'])
    mel, audio = crop(
      jax.random.fold_in(run_key, CROP_STREAM),
      batch['index'],
      mel,
      audio,
      v.segment_frames,
      mel_params.hop_length,
    )
  else:
    audio = audio[..., : mel_params.clip_samples]
  params = state[VOCODER_ITEM]['params']
  (loss, aux), grads = jax.value_and_grad(functools.partial(losses, nets, v), has_aux=True)(
    params, mel, audio, mel_params
  )
  updates, opt_state = nets.tx.update(grads, state['opt_state'], params)
  new_params = optax.apply_updates(params, updates)
  ema = {}
  if v.ema_decay > 0:
    ema[VOCODER_EMA_ITEM] = gan_common.ema_update(
      state[VOCODER_EMA_ITEM], {'params': new_params}, step, v.ema_decay
    )
  new_state = {
    VOCODER_ITEM: {'params': new_params},
    **ema,
    'opt_state': opt_state,
    'progress': {'step': step + 1, 'rng': state['progress']['rng']},
  }
  metrics = {
    'loss': loss,
    **aux,
    'grad_norm': optax.global_norm(grads),
    'lr': nets.lr_schedule(step),
  }
  return new_state, metrics


def eval_step(nets: Networks, mel_params: spectrogram.MelParams, state: State, batch):
  """Whole validation clips from their mels, with the weights inference uses: the per-batch sum
  of MR-STFT distances, the count, and the audio."""
  item = VOCODER_EMA_ITEM if VOCODER_EMA_ITEM in state else VOCODER_ITEM
  mel = jnp.squeeze(batch['mel'], -1)
  output = vocoder_model.apply(nets.graphdef, state[item]['params'], mel, mel_params.clip_samples)
  audio = batch['audio'][..., : mel_params.clip_samples]
  distance = stft_distance.multi_resolution_stft_distance(audio, output, nets.resolutions)
  return {'sum': (distance * batch['mask']).sum(), 'count': batch['mask'].sum()}, output


# ----------------------------------------------------------------------------- the family


class VocoderTask:
  """The neural vocoder for `loop.train`."""

  progress_keys = LOSS_KEYS

  def __init__(self, config: ml_collections.ConfigDict, meta: records.DatasetMeta):
    validate_config(config, meta)
    self.config, self.meta = config, meta
    self.nets = make_networks(config, meta)
    self._eval_fn: Callable[..., Any] | None = None
    logging.info(
      'Vocoder: %d parameters, STFT n_fft %d hop %d, crops of %s frames.',
      vocoder_model.num_params(jax.eval_shape(self.init_state)[VOCODER_ITEM]['params']),
      meta.mel_params.n_fft,
      meta.mel_params.hop_length,
      config.vocoder.segment_frames or 'all',
    )

  def init_state(self) -> State:
    return init_state(self.config, self.meta, self.nets)

  def train_step(self, state: State, batch: dict[str, jax.Array]) -> tuple[State, dict]:
    return train_step(self.nets, self.config, self.meta.mel_params, state, batch)

  def train_iterator(self, start_step: int) -> Iterator[dict[str, Any]]:
    c = self.config
    options = input_pipeline.stream_options(c, start_step)
    return iter(input_pipeline.train_dataset(c.data_dir, seed=c.seed, fields=FIELDS, **options))

  def evaluate(
    self, state: State, *, mesh, state_shardings, log: summaries.TrainingSummaries, step: int
  ) -> dict[str, float]:
    """Validation MR-STFT distance of whole clips; a few clips and their originals as audio."""
    c = self.config
    if self._eval_fn is None:
      step_fn = functools.partial(eval_step, self.nets, self.meta.mel_params)
      self._eval_fn = loop.jit_eval_step(step_fn, mesh, state_shardings)
    total = count = 0.0
    shown: dict[str, np.ndarray] = {}
    for batch in input_pipeline.eval_batches(
      c.data_dir,
      'validation',
      global_batch_size=c.batch_size,
      max_examples=c.eval_max_examples,
      keys=('mel', 'audio'),
    ):
      out, audio = self._eval_fn(state, sharding.shard_batch(batch, mesh))
      total, count = total + float(out['sum']), count + float(out['count'])
      if not shown and jax.process_count() == 1:
        n = c.vocoder.num_audio
        shown = {'target_audio': batch['audio'][:n], 'vocoded_audio': np.asarray(audio)[:n]}
    val = total / max(count, 1.0)
    log.scalars(step, {'val_mrstft': val})
    if shown and c.vocoder.num_audio:
      log.audio(step, shown, self.meta.mel_params.sample_rate)
    logging.info('step %d: validation MR-STFT distance %.4f', step, val)
    return {'val_mrstft': val}
