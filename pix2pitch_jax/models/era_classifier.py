"""Era classifier on mel images: the project's own stand-in for FAD / FCN-score.

A small CNN (Flax NNX) trained (by `evaluation.era_classifier`) on the *real* mels of a dataset's
training split to tell the eras apart. Evaluation reads three things from it: its accuracy on
real held-out mels (the ceiling), its accuracy on generated mels against the painting's era (era
fidelity), and its penultimate layer, an embedding in which Fréchet distances and diversities are
measured. `inference.load_era_classifier` restores a trained one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pix2pitch_jax.runtime import sharding


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """Architecture and training recipe; small enough to train in a minute on a laptop CPU."""

  features: tuple[int, ...] = (16, 32, 64, 128)  # one 3x3 stride-2 conv each
  embedding_dim: int = 64
  input_size: int = 128  # mels are average-pooled to at most this side before the convs
  num_steps: int = 400
  batch_size: int = 32
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  seed: int = 0

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
    d = dict(d)
    d['features'] = tuple(d['features'])
    return cls(**d)


class EraCNN(nnx.Module):
  """mel image (B, S, S) in [-1, 1] -> era logits; `embed` gives the penultimate features."""

  def __init__(self, num_eras: int, config: ClassifierConfig, *, rngs: nnx.Rngs):
    self.input_size = config.input_size
    channels = (1,) + tuple(config.features)
    self.convs = nnx.List(
      [
        nnx.Conv(c_in, c_out, (3, 3), strides=2, rngs=rngs)
        for c_in, c_out in zip(channels[:-1], channels[1:])
      ]
    )
    self.projection = nnx.Linear(channels[-1], config.embedding_dim, rngs=rngs)
    self.head = nnx.Linear(config.embedding_dim, num_eras, rngs=rngs)

  def embed(self, mels: jax.Array) -> jax.Array:
    x = _pool_to(jnp.asarray(mels, jnp.float32), self.input_size)[..., None]
    for conv in self.convs:
      x = nnx.gelu(conv(x))
    # Global average pooling: the era is a property of the texture, not of where it sits.
    return nnx.gelu(self.projection(jnp.mean(x, axis=(1, 2))))

  def __call__(self, mels: jax.Array) -> jax.Array:
    return self.head(self.embed(mels))


def _pool_to(mels: jax.Array, size: int) -> jax.Array:
  """Average-pool (B, S, S) down to (B, size, size) when S > size (S and size powers of two)."""
  factor = mels.shape[-1] // size
  if factor <= 1:
    return mels
  b, h, w = mels.shape
  return mels.reshape(b, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


@dataclasses.dataclass
class TrainedEraClassifier:
  """A trained classifier with what is needed to use and describe it."""

  model: EraCNN
  era_names: tuple[str, ...]
  config: ClassifierConfig
  info: dict[str, Any]

  def logits(self, mels: Any, batch_size: int = 64) -> np.ndarray:
    return apply_in_batches(self.model, mels, batch_size, embed=False)

  def embed(self, mels: Any, batch_size: int = 64) -> np.ndarray:
    return apply_in_batches(self.model, mels, batch_size, embed=True)

  def predict(self, mels: Any, batch_size: int = 64) -> np.ndarray:
    """The most likely era index for each mel image (B,)."""
    return np.argmax(self.logits(mels, batch_size), axis=-1)


@nnx.jit(static_argnames='embed')
def _apply(model: EraCNN, mels: jax.Array, embed: bool) -> jax.Array:
  return model.embed(mels) if embed else model(mels)


def apply_in_batches(model: EraCNN, mels: Any, batch_size: int, embed: bool) -> np.ndarray:
  """Logits (or embeddings) of many mels in fixed-size batches, so a split compiles once."""
  mels = np.asarray(mels, np.float32)
  if not len(mels):
    return np.zeros((0,), np.float32)
  return sharding.map_in_batches(
    lambda mels: _apply(model, mels, embed), {'mels': mels}, batch_size=batch_size
  )
