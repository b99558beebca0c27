"""Era classifier on mel images: the project's own stand-in for FAD / FCN-score, no downloads.

A small CNN (Flax NNX) trained on the *real* mels of a dataset's training split to tell the eras
apart. Evaluation reads three things from it: its accuracy on real held-out mels (the ceiling),
its accuracy on generated mels against the painting's era (era fidelity), and its penultimate
layer, an embedding in which Fréchet distances and diversities are measured.

It is trained once per training workdir and cached in `<workdir>/era_classifier/`:
    classifier.json   config, era names, mel image size, data_dir, training summary
    params/           the NNX parameter state (Orbax StandardCheckpointer)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from pix2pitch_jax.data import records

INFO_FILE = 'classifier.json'
PARAMS_DIR = 'params'


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
  def from_dict(cls, d: dict[str, Any]) -> 'ClassifierConfig':
    d = dict(d)
    d['features'] = tuple(d['features'])
    return cls(**d)


class EraCNN(nnx.Module):
  """mel image (B, S, S) in [-1, 1] -> era logits; `embed` gives the penultimate features."""

  def __init__(self, num_eras: int, config: ClassifierConfig, *, rngs: nnx.Rngs):
    self.input_size = config.input_size
    channels = (1,) + tuple(config.features)
    self.convs = nnx.List([nnx.Conv(c_in, c_out, (3, 3), strides=2, rngs=rngs)
                           for c_in, c_out in zip(channels[:-1], channels[1:])])
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
    return _apply_in_batches(self.model, mels, batch_size, embed=False)

  def embed(self, mels: Any, batch_size: int = 64) -> np.ndarray:
    return _apply_in_batches(self.model, mels, batch_size, embed=True)

  def predict(self, mels: Any, batch_size: int = 64) -> np.ndarray:
    """The most likely era index for each mel image (B,)."""
    return np.argmax(self.logits(mels, batch_size), axis=-1)


@nnx.jit(static_argnames='embed')
def _apply(model: EraCNN, mels: jax.Array, embed: bool) -> jax.Array:
  return model.embed(mels) if embed else model(mels)


def _apply_in_batches(model: EraCNN, mels: Any, batch_size: int, embed: bool) -> np.ndarray:
  """Fixed-size batches (the last one padded) so a whole split compiles once."""
  mels = np.asarray(mels, np.float32)
  outputs = []
  for start in range(0, len(mels), batch_size):
    chunk = mels[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:],
                                             np.float32)]) if len(chunk) < batch_size else chunk
    outputs.append(np.asarray(_apply(model, jnp.asarray(padded), embed))[:len(chunk)])
  return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


# ------------------------------------------------------------------------------------------------
# Training.
# ------------------------------------------------------------------------------------------------


def fit(mels: np.ndarray, eras: np.ndarray, num_eras: int,
        config: ClassifierConfig = ClassifierConfig()) -> EraCNN:
  """Train an `EraCNN` on in-memory mel images (N, S, S) with labels (N,); returns the model."""
  if len(mels) != len(eras) or not len(mels):
    raise ValueError(f'need as many labels as mels (> 0), got {len(mels)} and {len(eras)}')
  model = EraCNN(num_eras, config, rngs=nnx.Rngs(config.seed))
  optimizer = nnx.Optimizer(model, optax.adamw(config.learning_rate,
                                               weight_decay=config.weight_decay), wrt=nnx.Param)
  rng = np.random.default_rng(config.seed)
  mels = np.asarray(mels, np.float32)
  eras = np.asarray(eras, np.int32)
  for _ in range(config.num_steps):
    batch = rng.integers(0, len(mels), size=config.batch_size)
    _train_step(model, optimizer, jnp.asarray(mels[batch]), jnp.asarray(eras[batch]))
  return model


@nnx.jit
def _train_step(model: EraCNN, optimizer: nnx.Optimizer, mels: jax.Array,
                eras: jax.Array) -> jax.Array:
  def loss_fn(model):
    logits = model(mels)
    return optax.softmax_cross_entropy_with_integer_labels(logits, eras).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


def load_split_mels(data_dir: str | os.PathLike, split: str, max_examples: int | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
  """All (or the first `max_examples`) real mels (N, S, S) float32 and eras (N,) of a split."""
  source = records.open_split(data_dir, split)
  n = len(source) if max_examples is None else min(len(source), max_examples)
  examples = [source[i] for i in range(n)]
  return (np.stack([e['mel'] for e in examples]).astype(np.float32),
          np.asarray([e['era'] for e in examples], np.int32))


def train_era_classifier(data_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                         config: ClassifierConfig = ClassifierConfig(), split: str = 'train',
                         validation_split: str | None = 'validation') -> TrainedEraClassifier:
  """Train on the real mels of `split` of a dataset, save to `out_dir`, and return it.

  Accuracy on `validation_split` (when the dataset has it) is recorded in classifier.json.
  """
  meta = records.read_meta(data_dir)
  mels, eras = load_split_mels(data_dir, split)
  logging.info('Training the era classifier on %d real %s mels (%d eras).', len(mels), split,
               len(meta.era_names))
  model = fit(mels, eras, len(meta.era_names), config)
  classifier = TrainedEraClassifier(model, meta.era_names, config, info={
      'data_dir': str(pathlib.Path(data_dir).resolve()), 'image_size': meta.image_size,
      'train_split': split, 'train_examples': int(len(mels)),
      'train_accuracy': float(np.mean(_predict(model, mels) == eras))})
  if validation_split and validation_split in records.available_splits(data_dir):
    val_mels, val_eras = load_split_mels(data_dir, validation_split)
    classifier.info['validation_accuracy'] = float(np.mean(_predict(model, val_mels) == val_eras))
  save_era_classifier(classifier, out_dir)
  return classifier


def _predict(model: EraCNN, mels: np.ndarray) -> np.ndarray:
  return np.argmax(_apply_in_batches(model, mels, 64, embed=False), axis=-1)


def save_era_classifier(classifier: TrainedEraClassifier, out_dir: str | os.PathLike) -> None:
  out_dir = pathlib.Path(out_dir).resolve()
  out_dir.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(out_dir / PARAMS_DIR, nnx.state(classifier.model, nnx.Param), force=True)
  # The info file is written last: its presence marks a complete, loadable classifier.
  info = {'config': dataclasses.asdict(classifier.config),
          'era_names': list(classifier.era_names), **classifier.info}
  tmp = out_dir / f'.{INFO_FILE}.tmp'
  tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
  os.replace(tmp, out_dir / INFO_FILE)


def load_era_classifier(out_dir: str | os.PathLike) -> TrainedEraClassifier:
  """Load a classifier saved by `train_era_classifier`; FileNotFoundError when there is none."""
  out_dir = pathlib.Path(out_dir).resolve()
  if not (out_dir / INFO_FILE).exists():
    raise FileNotFoundError(f'no trained era classifier in {out_dir} (missing {INFO_FILE})')
  info = json.loads((out_dir / INFO_FILE).read_text())
  config = ClassifierConfig.from_dict(info.pop('config'))
  era_names = tuple(info.pop('era_names'))
  abstract = nnx.eval_shape(lambda: EraCNN(len(era_names), config, rngs=nnx.Rngs(0)))
  graphdef, abstract_state = nnx.split(abstract, nnx.Param)
  with ocp.StandardCheckpointer() as checkpointer:
    state = checkpointer.restore(out_dir / PARAMS_DIR, abstract_state)
  return TrainedEraClassifier(nnx.merge(graphdef, state), era_names, config, info)


def load_or_train_era_classifier(out_dir: str | os.PathLike, data_dir: str | os.PathLike, *,
                                 config: ClassifierConfig = ClassifierConfig(),
                                 ) -> TrainedEraClassifier:
  """The cached classifier in `out_dir` if it fits this dataset's eras and size, else train one."""
  meta = records.read_meta(data_dir)
  try:
    classifier = load_era_classifier(out_dir)
  except FileNotFoundError:
    return train_era_classifier(data_dir, out_dir, config=config)
  if classifier.era_names != meta.era_names or classifier.info.get('image_size') != meta.image_size:
    logging.warning('Cached era classifier in %s was trained for eras %s at %s px; the dataset has '
                    '%s at %d px: retraining.', out_dir, classifier.era_names,
                    classifier.info.get('image_size'), meta.era_names, meta.image_size)
    return train_era_classifier(data_dir, out_dir, config=config)
  return classifier


def accuracy(classifier: TrainedEraClassifier, mels: np.ndarray, eras: Sequence[int]) -> float:
  """Fraction of mels classified as their era (NaN for an empty set)."""
  if not len(mels):
    return float('nan')
  return float(np.mean(classifier.predict(mels) == np.asarray(eras)))
