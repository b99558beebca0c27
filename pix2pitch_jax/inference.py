"""Trained models, restored from a workdir and applied in batches: what evaluation and generation
share.

    gen = inference.load_generator('runs/demo')            # newest checkpoint
    mels = gen.generate(paintings_uint8, eras)              # (B, S, S) float32 in [-1, 1]
    clips = inference.mels_to_audio(mels, gen.meta.mel_params, n_iter=64, seed=0, mesh=gen.mesh)

A CycleGAN run (`family='cyclegan'`) has two generators: `load_generator` gives its picture -> mel
one behind the same interface, so generation and evaluation run on it unchanged, and
`load_translator` gives either direction (mel images -> pictures for the visualiser).

Only one generator item of a checkpoint (parameters + BatchNorm running statistics) is read: the
moving average of the weights when the run kept one (`model.ema_decay` > 0), else the weights
themselves (`weights='raw'` asks for those). Only the generator is built: no discriminator, no
optimizer state, nothing of the training loop. Generation is deterministic: running BN averages,
dropout off (pix2pix's `--eval` mode). Inputs go through fixed-size batches sharded over all local
devices (`sharding.map_in_batches`), so a set of any size compiles once and is padded once. In a
multi-process job every process restores its own copy onto its own devices and generates its own
share of the inputs.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from pix2pitch_jax.audio import inverse, spectrogram
from pix2pitch_jax.core import cli
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.models import cyclegan, pix2pix
from pix2pitch_jax.models import era_classifier as era_model
from pix2pitch_jax.runtime import checkpointing, sharding

DEFAULT_BATCH_SIZE = 8
WEIGHTS = ('ema', 'raw')  # the moving average of the generator's weights (when kept), or them


class LoadedGenerator:
  """A restored generator; `generate` runs it jitted, in batches sharded over `mesh`."""

  def __init__(
    self,
    *,
    config: ml_collections.ConfigDict,
    step: int,
    meta: records.DatasetMeta,
    graphdef: nnx.GraphDef,
    variables: Any,
    mesh: jax.sharding.Mesh,
    weights: str,
  ):
    self.config, self.step, self.meta, self.mesh = config, step, meta, mesh
    self.weights = weights
    self.image_size = config.image_size
    self.variables = variables  # generator params + BN stats, laid out over the mesh
    cycle = is_cyclegan(config)
    self.era_conditioned = bool(config.model.era_conditioning) and not cycle
    data = sharding.data_sharding(mesh)
    self._apply = jax.jit(
      functools.partial(_generate, graphdef, self.era_conditioned or not cycle),
      in_shardings=(jax.tree.map(lambda a: a.sharding, variables), data, data),
      out_shardings=data,
    )

  def generate(
    self,
    paintings: np.ndarray,
    eras: np.ndarray | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: str | None = None,
  ) -> np.ndarray:
    """uint8 (B,S,S,3) paintings [+ int (B,) eras] -> float32 (B,S,S) mels in [-1, 1]."""
    paintings = np.asarray(paintings)
    s = self.image_size
    if paintings.ndim != 4 or paintings.shape[1:] != (s, s, 3):
      raise ValueError(f'paintings must be (B, {s}, {s}, 3) uint8, got {paintings.shape}')
    if paintings.dtype != np.uint8:
      raise ValueError(f'paintings must be uint8, got {paintings.dtype}')
    b = paintings.shape[0]
    if eras is None:
      if self.era_conditioned:
        raise ValueError('this generator is era-conditioned: pass eras (B,) ints')
      eras = np.zeros((b,), np.int32)
    eras = np.asarray(eras, np.int32)
    if eras.shape != (b,):
      raise ValueError(f'eras must have shape ({b},), got {eras.shape}')
    if b == 0:
      return np.zeros((0, s, s), np.float32)
    mels = sharding.map_in_batches(
      lambda paintings, eras: self._apply(self.variables, paintings, eras),
      {'paintings': paintings, 'eras': eras},
      batch_size=batch_size,
      mesh=self.mesh,
      progress=progress,
    )
    return mels[..., 0].astype(np.float32)


def _generate(graphdef, takes_eras: bool, variables, paintings_u8, eras):
  generator = pix2pix.eval_view(
    nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True)
  )
  paintings = paintings_u8.astype(jnp.float32) / 127.5 - 1.0
  return generator(paintings, eras) if takes_eras else generator(paintings)


def is_cyclegan(config: ml_collections.ConfigDict) -> bool:
  """Whether a run's config is of the cyclegan family (runs from before families are pix2pix)."""
  return config.get('family', 'pix2pix') == 'cyclegan'


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to `<workdir>/config.json`."""
  path = workdir_lib.Workdir(workdir).config_json
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: is {workdir} a training workdir?')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def load_generator(
  workdir: str | os.PathLike,
  checkpoint: str | int = 'latest',
  *,
  num_devices: int | None = None,
  weights: str = 'ema',
) -> LoadedGenerator:
  """Restore the generator of `workdir`'s checkpoint (`'latest'` or a step number) onto this
  process's devices (the first `num_devices` of them). `weights='ema'` reads the moving average of
  the weights when the run kept one and the weights otherwise; 'raw' reads the weights."""
  if weights not in WEIGHTS:
    raise ValueError(f'weights must be one of {WEIGHTS}, got {weights!r}')
  config = read_config(workdir)
  # Runs from before the moving average have no model.ema_decay, and no such item.
  if weights == 'ema' and not config.model.get('ema_decay', 0.0):
    weights = 'raw'
  item = checkpointing.GENERATOR_EMA_ITEM if weights == 'ema' else checkpointing.GENERATOR_ITEM
  meta = records.read_meta(config.data_dir)
  mesh = sharding.make_mesh(num_devices, local=True)
  # 'auto' (the default) resolves for this machine's backend, which may differ from training's;
  # every formulation has the same parameters.
  logging.info(
    'Generator convolutions: model.conv_impl=%s -> %r on %s.',
    config.model.conv_impl,
    pix2pix.resolve_conv_impl(config.model.conv_impl),
    jax.default_backend(),
  )
  if is_cyclegan(config):
    item = cyclegan.GENERATORS_EMA_ITEM if weights == 'ema' else cyclegan.GENERATORS_ITEM
    graphdef, step, variables = _restore_cyclegan_generator(
      workdir, config, checkpoint, item, cyclegan.PICTURE_TO_MEL, mesh
    )
  else:
    graphdef, abstract = pix2pix.abstract_generator(config, len(meta.era_names))
    step, items = _restore_items(workdir, checkpoint, {item: _target(abstract, config, mesh)})
    variables = items[item]
  return LoadedGenerator(
    config=config,
    step=step,
    meta=meta,
    graphdef=graphdef,
    variables=variables,
    mesh=mesh,
    weights=weights,
  )


def _target(abstract: Any, config, mesh) -> Any:
  """Restore target of generator variables, laid out as in training: replicated, or
  FSDP-sharded when the run needed that for memory."""
  shardings = sharding.state_shardings(abstract, mesh, config.fsdp)
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
  )


def _restore_items(workdir, checkpoint: str | int, target: dict[str, Any]) -> tuple[int, Any]:
  """(step, items) of `target`'s items from `workdir`'s checkpoint ('latest' or a step)."""
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    steps = ckpt.all_steps()
    if not steps:
      raise FileNotFoundError(f'no checkpoints in {ckpt.directory}')
    step = None if checkpoint == 'latest' else int(checkpoint)
    if step is not None and step not in steps:
      raise FileNotFoundError(f'checkpoint {step} not in {ckpt.directory}: has {steps}')
    restored = ckpt.restore(target, step=step)
  finally:
    ckpt.close()
  assert restored is not None
  return restored


def _restore_cyclegan_generator(workdir, config, checkpoint, item: str, direction: str, mesh):
  """(graphdef, step, variables) of one direction of a CycleGAN run (the item holds both)."""
  abstract = {d: cyclegan.abstract_generator(config, d) for d in cyclegan.DIRECTIONS}
  target = {d: _target(variables, config, mesh) for d, (_, variables) in abstract.items()}
  step, items = _restore_items(workdir, checkpoint, {item: target})
  return abstract[direction][0], step, items[item][direction]


class LoadedTranslator:
  """One restored CycleGAN generator, either way; `pictures` / `mels` run it jitted in batches
  sharded over `mesh`. Deterministic (no dropout; running statistics were the norm BatchNorm)."""

  def __init__(
    self, *, config, step: int, meta, direction: str, graphdef, variables, mesh, weights
  ):
    self.config, self.step, self.meta, self.mesh = config, step, meta, mesh
    self.direction, self.weights = direction, weights
    self.image_size = config.image_size
    self.variables = variables
    data = sharding.data_sharding(mesh)
    self._apply = jax.jit(
      functools.partial(_translate, graphdef),
      in_shardings=(jax.tree.map(lambda a: a.sharding, variables), data),
      out_shardings=data,
    )

  def _run(self, inputs: np.ndarray, batch_size: int, progress: str | None) -> np.ndarray:
    return sharding.map_in_batches(
      lambda inputs: self._apply(self.variables, inputs),
      {'inputs': inputs},
      batch_size=batch_size,
      mesh=self.mesh,
      progress=progress,
    )

  def pictures(
    self, mels: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: str | None = None
  ) -> np.ndarray:
    """Mel images (B,S,S) in [-1, 1] -> uint8 pictures (B,S,S,3) (direction mel_to_picture)."""
    self._check(cyclegan.MEL_TO_PICTURE)
    mels = np.asarray(mels, np.float32)
    s = self.image_size
    if mels.ndim != 3 or mels.shape[1:] != (s, s):
      raise ValueError(f'mels must be (B, {s}, {s}), got {mels.shape}')
    if not len(mels):
      return np.zeros((0, s, s, 3), np.uint8)
    out = self._run(mels[..., None], batch_size, progress)
    return np.round((np.clip(out, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)

  def mels(
    self, pictures: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: str | None = None
  ) -> np.ndarray:
    """uint8 pictures (B,S,S,3) -> mel images (B,S,S) in [-1, 1] (direction picture_to_mel)."""
    self._check(cyclegan.PICTURE_TO_MEL)
    pictures = np.asarray(pictures)
    s = self.image_size
    if pictures.ndim != 4 or pictures.shape[1:] != (s, s, 3) or pictures.dtype != np.uint8:
      raise ValueError(f'pictures must be (B, {s}, {s}, 3) uint8, got {pictures.shape}')
    if not len(pictures):
      return np.zeros((0, s, s), np.float32)
    inputs = pictures.astype(np.float32) / 127.5 - 1.0
    return self._run(inputs, batch_size, progress)[..., 0].astype(np.float32)

  def _check(self, direction: str) -> None:
    if self.direction != direction:
      raise ValueError(f'this translator runs {self.direction}, not {direction}')


def _translate(graphdef, variables, inputs):
  generator = pix2pix.eval_view(
    nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True)
  )
  return generator(inputs)


def load_translator(
  workdir: str | os.PathLike,
  direction: str = cyclegan.MEL_TO_PICTURE,
  checkpoint: str | int = 'latest',
  *,
  num_devices: int | None = None,
  weights: str = 'ema',
) -> LoadedTranslator:
  """Restore one generator of a CycleGAN run (`direction`: 'mel_to_picture', the sound -> image
  one, or 'picture_to_mel') onto this process's devices, nothing of the training loop.
  `weights='ema'` reads the moving average when the run kept one, else the weights."""
  if weights not in WEIGHTS:
    raise ValueError(f'weights must be one of {WEIGHTS}, got {weights!r}')
  if direction not in cyclegan.DIRECTIONS:
    raise ValueError(f'direction must be one of {cyclegan.DIRECTIONS}, got {direction!r}')
  config = read_config(workdir)
  if not is_cyclegan(config):
    raise cli.UserInputError(
      f'{workdir} holds a {config.get("family", "pix2pix")} run; sound -> picture needs a '
      'cyclegan one'
    )
  if weights == 'ema' and not config.model.get('ema_decay', 0.0):
    weights = 'raw'
  item = cyclegan.GENERATORS_EMA_ITEM if weights == 'ema' else cyclegan.GENERATORS_ITEM
  mesh = sharding.make_mesh(num_devices, local=True)
  graphdef, step, variables = _restore_cyclegan_generator(
    workdir, config, checkpoint, item, direction, mesh
  )
  return LoadedTranslator(
    config=config,
    step=step,
    meta=records.read_meta(config.data_dir),
    direction=direction,
    graphdef=graphdef,
    variables=variables,
    mesh=mesh,
    weights=weights,
  )


def mels_to_audio(
  mels: np.ndarray,
  params: spectrogram.MelParams,
  *,
  n_iter: int = 64,
  seed: int = 0,
  batch_size: int = DEFAULT_BATCH_SIZE,
  mesh: jax.sharding.Mesh | None = None,
  indices: np.ndarray | None = None,
  progress: str | None = 'Griffin-Lim',
) -> np.ndarray:
  """Mel images (N, S, S) -> audio (N, clip_samples) by Griffin-Lim, in sharded batches.

  Clip i's initial phase comes from fold_in(seed, indices[i]) (default indices: 0..N-1): it
  depends only on the seed and the clip's index in the whole set, not on the batch it landed in
  nor on the host that computed it.
  """

  def to_audio(mels, index):
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(index)
    return inverse.mel_image_to_audio(mels, params, n_iter=n_iter, key=keys)

  index = np.arange(len(mels)) if indices is None else np.asarray(indices)
  if index.shape != (len(mels),):
    raise ValueError(f'indices must have shape ({len(mels)},), got {index.shape}')
  arrays = {'mels': np.asarray(mels, np.float32), 'index': index.astype(np.int32)}
  return sharding.map_in_batches(
    to_audio, arrays, batch_size=batch_size, mesh=mesh, progress=progress
  )


def load_era_classifier(out_dir: str | os.PathLike) -> era_model.TrainedEraClassifier:
  """Load a classifier saved by `evaluation.era_classifier`; FileNotFoundError when none is."""
  out_path = workdir_lib.as_path(out_dir)
  info_path = out_path / workdir_lib.ERA_CLASSIFIER_INFO
  if not info_path.exists():
    raise FileNotFoundError(f'no trained era classifier in {out_path} (missing {info_path.name})')
  info = json.loads(info_path.read_text())
  config = era_model.ClassifierConfig.from_dict(info.pop('config'))
  era_names = tuple(info.pop('era_names'))
  abstract = nnx.eval_shape(lambda: era_model.EraCNN(len(era_names), config, rngs=nnx.Rngs(0)))
  graphdef, abstract_state = nnx.split(abstract, nnx.Param)
  state = checkpointing.restore_pytree(out_path / workdir_lib.ERA_CLASSIFIER_PARAMS, abstract_state)
  return era_model.TrainedEraClassifier(nnx.merge(graphdef, state), era_names, config, info)
