"""Training the era classifier (`models.era_classifier`), and its cache in a workdir.

It is trained once per training workdir and cached in `<workdir>/era_classifier/`
(`core.workdir` names the files; `inference.load_era_classifier` reads them back):
    classifier.json   config, era names, mel image size, data_dir, training summary
    params/           the NNX parameter state (an Orbax pytree checkpoint)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from pix2pitch_jax import inference
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.models import era_classifier as era_model
from pix2pitch_jax.runtime import checkpointing

# ------------------------------------------------------------------------------------------------
# Training.
# ------------------------------------------------------------------------------------------------


def fit(
  mels: np.ndarray,
  eras: np.ndarray,
  num_eras: int,
  config: era_model.ClassifierConfig = era_model.ClassifierConfig(),
) -> era_model.EraCNN:
  """Train an `EraCNN` on in-memory mel images (N, S, S) with labels (N,); returns the model."""
  if len(mels) != len(eras) or not len(mels):
    raise ValueError(f'need as many labels as mels (> 0), got {len(mels)} and {len(eras)}')
  model = era_model.EraCNN(num_eras, config, rngs=nnx.Rngs(config.seed))
  optimizer = nnx.Optimizer(
    model, optax.adamw(config.learning_rate, weight_decay=config.weight_decay), wrt=nnx.Param
  )
  rng = np.random.default_rng(config.seed)
  mels = np.asarray(mels, np.float32)
  eras = np.asarray(eras, np.int32)
  for _ in range(config.num_steps):
    batch = rng.integers(0, len(mels), size=config.batch_size)
    _train_step(model, optimizer, jnp.asarray(mels[batch]), jnp.asarray(eras[batch]))
  return model


@nnx.jit
def _train_step(
  model: era_model.EraCNN, optimizer: nnx.Optimizer, mels: jax.Array, eras: jax.Array
) -> jax.Array:
  def loss_fn(model):
    logits = model(mels)
    return optax.softmax_cross_entropy_with_integer_labels(logits, eras).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


def load_split_mels(
  data_dir: str | os.PathLike,
  split: str,
  max_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """All (or the first `max_examples`) real mels (N, S, S) float32 and eras (N,) of a split."""
  split_data = records.read_split(data_dir, split, max_examples=max_examples, fields=('mel', 'era'))
  return split_data['mel'], split_data['era']


def train_era_classifier(
  data_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  config: era_model.ClassifierConfig = era_model.ClassifierConfig(),
  split: str = 'train',
  validation_split: str | None = 'validation',
) -> era_model.TrainedEraClassifier:
  """Train on the real mels of `split` of a dataset, save to `out_dir`, and return it.

  Accuracy on `validation_split` (when the dataset has it) is recorded in classifier.json.
  """
  meta = records.read_meta(data_dir)
  mels, eras = load_split_mels(data_dir, split)
  logging.info(
    'Training the era classifier on %d real %s mels (%d eras).',
    len(mels),
    split,
    len(meta.era_names),
  )
  model = fit(mels, eras, len(meta.era_names), config)
  classifier = era_model.TrainedEraClassifier(
    model,
    meta.era_names,
    config,
    info={
      'data_dir': str(workdir_lib.as_path(data_dir)),
      'image_size': meta.image_size,
      'train_split': split,
      'train_examples': int(len(mels)),
      'train_accuracy': float(np.mean(_predict(model, mels) == eras)),
    },
  )
  if validation_split and validation_split in records.available_splits(data_dir):
    val_mels, val_eras = load_split_mels(data_dir, validation_split)
    classifier.info['validation_accuracy'] = float(np.mean(_predict(model, val_mels) == val_eras))
  save_era_classifier(classifier, out_dir)
  return classifier


def _predict(model: era_model.EraCNN, mels: np.ndarray) -> np.ndarray:
  return np.argmax(era_model.apply_in_batches(model, mels, 64, embed=False), axis=-1)


def save_era_classifier(
  classifier: era_model.TrainedEraClassifier, out_dir: str | os.PathLike
) -> None:
  out_path = workdir_lib.as_path(out_dir)
  out_path.mkdir(parents=True, exist_ok=True)
  checkpointing.save_pytree(
    out_path / workdir_lib.ERA_CLASSIFIER_PARAMS, nnx.state(classifier.model, nnx.Param)
  )
  # The info file is written last: its presence marks a complete, loadable classifier.
  info = {
    'config': dataclasses.asdict(classifier.config),
    'era_names': list(classifier.era_names),
    **classifier.info,
  }
  workdir_lib.write_bytes_atomic(
    out_path / workdir_lib.ERA_CLASSIFIER_INFO, json.dumps(info, indent=2, sort_keys=True).encode()
  )


def load_or_train_era_classifier(
  out_dir: str | os.PathLike,
  data_dir: str | os.PathLike,
  *,
  config: era_model.ClassifierConfig = era_model.ClassifierConfig(),
) -> era_model.TrainedEraClassifier:
  """The cached classifier in `out_dir` if it fits this dataset's eras and size, else train one."""
  meta = records.read_meta(data_dir)
  try:
    classifier = inference.load_era_classifier(out_dir)
  except FileNotFoundError:
    return train_era_classifier(data_dir, out_dir, config=config)
  if classifier.era_names != meta.era_names or classifier.info.get('image_size') != meta.image_size:
    logging.warning(
      'Cached era classifier in %s was trained for eras %s at %s px; the dataset has '
      '%s at %d px: retraining.',
      out_dir,
      classifier.era_names,
      classifier.info.get('image_size'),
      meta.era_names,
      meta.image_size,
    )
    return train_era_classifier(data_dir, out_dir, config=config)
  return classifier


def accuracy(
  classifier: era_model.TrainedEraClassifier, mels: np.ndarray, eras: Sequence[int]
) -> float:
  """Fraction of mels classified as their era (NaN for an empty set)."""
  if not len(mels):
    return float('nan')
  return float(np.mean(classifier.predict(mels) == np.asarray(eras)))
