"""Load a trained generator from a workdir and turn paintings into mel images.

    gen = inference.load_generator('runs/demo')            # newest checkpoint
    mels = gen.generate(paintings_uint8, eras)              # (B, S, S) float32 in [-1, 1]

Only the generator item (parameters + BatchNorm running statistics) is read from the checkpoint.
Generation is deterministic: running BN averages, dropout off (pix2pix's `--eval` mode). Batches
are padded to a multiple of the device count and sharded over all devices.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Literal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from pix2pitch_jax.runtime import checkpointing
from pix2pitch_jax.models import pix2pix
from pix2pitch_jax.data import records
from pix2pitch_jax.runtime import sharding
from pix2pitch_jax.training import trainer


class LoadedGenerator:
  """A restored generator; `generate` is jitted and sharded over the mesh."""

  def __init__(self, config: ml_collections.ConfigDict, step: int, meta: records.DatasetMeta,
               nets: trainer.Networks, variables, mesh):
    self.config, self.step, self.meta = config, step, meta
    self.image_size = config.image_size
    self.variables, self._mesh = variables, mesh  # generator params + BN stats, sharded
    self._era_conditioned = bool(config.model.era_conditioning)
    data = sharding.data_sharding(mesh)
    self._apply = jax.jit(functools.partial(_generate, nets.generator),
                          in_shardings=(jax.tree.map(lambda a: a.sharding, variables), data, data),
                          out_shardings=data)

  def generate(self, paintings: np.ndarray, eras: np.ndarray | None = None) -> np.ndarray:
    """uint8 (B,S,S,3) paintings [+ int (B,) eras] -> float32 (B,S,S) mels in [-1, 1]."""
    paintings = np.asarray(paintings)
    s = self.image_size
    if paintings.ndim != 4 or paintings.shape[1:] != (s, s, 3):
      raise ValueError(f'paintings must be (B, {s}, {s}, 3) uint8, got {paintings.shape}')
    if paintings.dtype != np.uint8:
      raise ValueError(f'paintings must be uint8, got {paintings.dtype}')
    b = paintings.shape[0]
    if eras is None:
      if self._era_conditioned:
        raise ValueError('this generator is era-conditioned: pass eras (B,) ints')
      eras = np.zeros((b,), np.int32)
    eras = np.asarray(eras, np.int32)
    if eras.shape != (b,):
      raise ValueError(f'eras must have shape ({b},), got {eras.shape}')
    if b == 0:
      return np.zeros((0, s, s), np.float32)
    pad = -b % self._mesh.size
    x = np.concatenate([paintings, np.zeros((pad, s, s, 3), np.uint8)])
    e = np.concatenate([eras, np.zeros((pad,), np.int32)])
    # Single-process: a device_put; multi-process callers pass identical arrays on every host.
    data = sharding.data_sharding(self._mesh)
    out = self._apply(self.variables, jax.device_put(x, data), jax.device_put(e, data))
    return np.asarray(jax.device_get(out))[:b, :, :, 0]


def _generate(graphdef, variables, paintings_u8, eras):
  generator = pix2pix.eval_view(
      nnx.merge(graphdef, variables['params'], variables['batch_stats'], copy=True))
  paintings = paintings_u8.astype(jnp.float32) / 127.5 - 1.0
  return generator(paintings, eras)


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to `<workdir>/config.json`."""
  path = os.path.join(os.fspath(workdir), trainer.CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir} a training workdir?')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_generator(workdir: str | os.PathLike, checkpoint: Literal['latest'] | int = 'latest',
                   *, num_devices: int | None = None) -> LoadedGenerator:
  """Restore the generator of `workdir`'s checkpoint (`'latest'` or a step number)."""
  config = read_config(workdir)
  meta = records.read_meta(config.data_dir)
  mesh = sharding.make_mesh(num_devices)
  nets = trainer.make_networks(config, meta)
  target, _ = trainer.abstract_state(config, meta, nets, mesh)
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    if not ckpt.all_steps():
      raise FileNotFoundError(f'no checkpoints in {ckpt.directory}')
    step = None if checkpoint == 'latest' else int(checkpoint)
    if step is not None and step not in ckpt.all_steps():
      raise ValueError(f'checkpoint {step} not in {ckpt.directory}: has {ckpt.all_steps()}')
    step, restored = ckpt.restore({'generator': target['generator']}, step=step)
  finally:
    ckpt.close()
  return LoadedGenerator(config, step, meta, nets, restored['generator'], mesh)
