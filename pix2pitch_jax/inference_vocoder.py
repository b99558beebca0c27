"""A trained neural vocoder, restored from its workdir and applied in batches: mel images ->
waveforms, for generation, evaluation and the benchmark.

    vocoder = inference_vocoder.load_vocoder('runs/vocoder')       # newest checkpoint
    clips = vocoder.mels_to_audio(mels)                              # (N, clip_samples) float32

The vocoder is a training run of `family='vocoder'` (training/vocoder_task.py). Only its weights
are read (their moving average when the run kept one; `weights='raw'` for the weights), no
optimizer state. Mels go through fixed-size batches sharded over this process's devices
(`sharding.map_in_batches`), so a set of any size compiles once. The output is deterministic: it
depends on the mel alone, not on the batch, the seed or the host.

Where generation looks for one (`find_vocoder_workdir`): the path it is given, else
`<generator workdir>/vocoder` (`DEFAULT_SUBDIR`), so a vocoder trained with
`--workdir=<run>/vocoder` is picked up with no flag.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.core import cli
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.models import vocoder as vocoder_model
from pix2pitch_jax.runtime import checkpointing, sharding

DEFAULT_SUBDIR = 'vocoder'
DEFAULT_BATCH_SIZE = 8
WEIGHTS = ('ema', 'raw')
# Checkpoint items (training/vocoder_task.py; repeated here: inference sits below training).
VOCODER_ITEM = 'vocoder'
VOCODER_EMA_ITEM = 'vocoder_ema'


class VocoderNotFoundError(cli.UserInputError):
  """No trained vocoder where one was asked for; the message says where it looked."""


class LoadedVocoder:
  """A restored vocoder; `mels_to_audio` runs it jitted, in batches sharded over `mesh`."""

  def __init__(
    self,
    *,
    workdir: str,
    config: ml_collections.ConfigDict,
    step: int,
    mel_params: spectrogram.MelParams,
    graphdef: Any,
    params: Any,
    mesh: jax.sharding.Mesh,
    weights: str,
  ):
    self.workdir, self.config, self.step = workdir, config, step
    self.mel_params, self.mesh, self.weights = mel_params, mesh, weights
    self.params = params
    data = sharding.data_sharding(mesh)
    self._apply = jax.jit(
      functools.partial(_vocode, graphdef, mel_params.clip_samples),
      in_shardings=(jax.tree.map(lambda a: a.sharding, params), data),
      out_shardings=data,
    )

  def describe(self) -> dict[str, Any]:
    """What the manifest records about the vocoder that made a clip."""
    return {'kind': 'neural', 'workdir': self.workdir, 'step': self.step, 'weights': self.weights}

  def mels_to_audio(
    self, mels: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: str | None = None
  ) -> np.ndarray:
    """Mel images (N, S, S) in [-1, 1] -> float32 audio (N, clip_samples) in [-1, 1]."""
    mels = np.asarray(mels, np.float32)
    p = self.mel_params
    if mels.ndim != 3 or mels.shape[1:] != (p.n_mels, p.n_frames):
      raise ValueError(
        f'this vocoder takes mel images (N, {p.n_mels}, {p.n_frames}), got {mels.shape}'
      )
    if not len(mels):
      return np.zeros((0, p.clip_samples), np.float32)
    clips = sharding.map_in_batches(
      lambda mels: self._apply(self.params, mels),
      {'mels': mels},
      batch_size=batch_size,
      mesh=self.mesh,
      progress=progress,
    )
    return np.clip(np.asarray(clips, np.float32), -1.0, 1.0)

  def check_compatible(self, mel_params: spectrogram.MelParams) -> None:
    """ValueError unless this vocoder was trained on mels made exactly like `mel_params`."""
    if mel_params != self.mel_params:
      raise ValueError(
        f'the vocoder in {self.workdir} was trained on other mels ({_describe(self.mel_params)}) '
        f'than these ({_describe(mel_params)}); train one on a dataset built like this one'
      )


def _describe(p: spectrogram.MelParams) -> str:
  return f'{p.image_size} px, {p.sample_rate} Hz, {p.clip_seconds:g} s, n_fft {p.n_fft}'


def _vocode(graphdef, length: int, params, mels):
  return vocoder_model.apply(graphdef, params, mels, length)


def has_checkpoints(workdir: str | os.PathLike) -> bool:
  """Whether `workdir` holds a vocoder training run with at least one checkpoint."""
  paths = workdir_lib.Workdir(workdir)
  if not paths.config_json.exists() or not paths.checkpoints.exists():
    return False
  family = json.loads(paths.config_json.read_text()).get('family')
  return family == 'vocoder' and any(p.name.isdigit() for p in paths.checkpoints.iterdir())


def find_vocoder_workdir(
  generator_workdir: str | os.PathLike | None, vocoder_workdir: str | os.PathLike | None = None
) -> str | None:
  """The vocoder to use: `vocoder_workdir` when given (VocoderNotFoundError when it holds none),
  else `<generator_workdir>/vocoder` when that holds a trained one, else None."""
  if vocoder_workdir is not None:
    if not has_checkpoints(vocoder_workdir):
      raise VocoderNotFoundError(
        f'no trained vocoder in {os.fspath(vocoder_workdir)} (a workdir of '
        '`pix2pitch-train --config=experiments/vocoder_demo.py`, with checkpoints)'
      )
    return os.fspath(vocoder_workdir)
  if generator_workdir is None:
    return None
  candidate = workdir_lib.as_path(generator_workdir) / DEFAULT_SUBDIR
  return os.fspath(candidate) if has_checkpoints(candidate) else None


def load_vocoder(
  workdir: str | os.PathLike,
  checkpoint: str | int = 'latest',
  *,
  num_devices: int | None = None,
  weights: str = 'ema',
) -> LoadedVocoder:
  """Restore the vocoder of `workdir`'s checkpoint (`'latest'` or a step number) onto this
  process's devices (the first `num_devices`)."""
  if weights not in WEIGHTS:
    raise ValueError(f'weights must be one of {WEIGHTS}, got {weights!r}')
  if not has_checkpoints(workdir):
    raise VocoderNotFoundError(f'no trained vocoder in {os.fspath(workdir)}')
  config = ml_collections.ConfigDict(
    json.loads(workdir_lib.Workdir(workdir).config_json.read_text())
  )
  if weights == 'ema' and not config.vocoder.get('ema_decay', 0.0):
    weights = 'raw'
  item = VOCODER_EMA_ITEM if weights == 'ema' else VOCODER_ITEM
  mel_params = records.read_meta(config.data_dir).mel_params
  architecture = vocoder_model.VocoderConfig.from_config(config.vocoder)
  graphdef, abstract = vocoder_model.abstract_vocoder(mel_params, architecture)
  mesh = sharding.make_mesh(num_devices, local=True)
  replicated = sharding.replicated(mesh)
  target = {
    'params': jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract
    )
  }
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    steps = ckpt.all_steps()
    step = None if checkpoint == 'latest' else int(checkpoint)
    if step is not None and step not in steps:
      raise FileNotFoundError(f'checkpoint {step} not in {ckpt.directory}: has {steps}')
    restored = ckpt.restore({item: target}, step=step)
  finally:
    ckpt.close()
  assert restored is not None
  step, items = restored
  return LoadedVocoder(
    workdir=os.fspath(workdir),
    config=config,
    step=step,
    mel_params=mel_params,
    graphdef=graphdef,
    params=items[item]['params'],
    mesh=mesh,
    weights=weights,
  )
