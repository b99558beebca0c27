"""Era classifier: learns an easy synthetic task, saves/loads, caches per dataset."""

import numpy as np
import pytest

from pix2pitch_jax import inference
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.evaluation import era_classifier
from pix2pitch_jax.models import era_classifier as era_model

SMALL = era_model.ClassifierConfig(
  features=(8, 16), embedding_dim=16, num_steps=60, batch_size=16, learning_rate=3e-3
)


def striped_mels(n, seed):
  """Era 0: energy in low bands (bottom rows); era 1: in high bands. Plus noise."""
  rng = np.random.default_rng(seed)
  eras = np.arange(n) % 2
  mels = rng.uniform(-1, -0.6, (n, 32, 32)).astype(np.float32)
  for mel, era in zip(mels, eras):
    rows = slice(20, 30) if era == 0 else slice(2, 12)
    mel[rows] += rng.uniform(0.8, 1.4)
  return np.clip(mels, -1, 1), eras


def test_fit_learns_an_easy_task_and_embeds():
  mels, eras = striped_mels(64, 0)
  model = era_classifier.fit(mels, eras, num_eras=2, config=SMALL)
  classifier = era_model.TrainedEraClassifier(model, ('low', 'high'), SMALL, {})
  test_mels, test_eras = striped_mels(20, 1)
  assert era_classifier.accuracy(classifier, test_mels, test_eras) == 1.0
  embeddings = classifier.embed(test_mels, batch_size=8)  # 20 = 8 + 8 + 4 (padded batch)
  assert embeddings.shape == (20, SMALL.embedding_dim) and np.isfinite(embeddings).all()
  # Embeddings separate the eras: each is closer to its own era's mean.
  means = np.stack([embeddings[test_eras == e].mean(0) for e in (0, 1)])
  nearest = np.argmin(((embeddings[:, None] - means[None]) ** 2).sum(-1), axis=1)
  assert (nearest == test_eras).all()
  with pytest.raises(ValueError, match='as many labels'):
    era_classifier.fit(mels, eras[:3], 2, SMALL)


def test_train_save_load_and_cache(tiny_dataset, tmp_path):
  out = tmp_path / 'era_classifier'
  trained = era_classifier.train_era_classifier(tiny_dataset, out, config=SMALL)
  assert trained.era_names == ('baroque', 'romanticism')
  assert {'train_accuracy', 'validation_accuracy', 'train_examples'} <= set(trained.info)
  loaded = inference.load_era_classifier(out)
  mels, _ = era_classifier.load_split_mels(tiny_dataset, 'test')
  np.testing.assert_allclose(loaded.logits(mels), trained.logits(mels), rtol=1e-5, atol=1e-6)
  # The cache is reused (same files, not retrained) when the dataset matches.
  stamp = (out / workdir_lib.ERA_CLASSIFIER_INFO).stat().st_mtime_ns
  cached = era_classifier.load_or_train_era_classifier(out, tiny_dataset, config=SMALL)
  assert (out / workdir_lib.ERA_CLASSIFIER_INFO).stat().st_mtime_ns == stamp
  np.testing.assert_allclose(cached.logits(mels), trained.logits(mels), rtol=1e-5, atol=1e-6)
  with pytest.raises(FileNotFoundError, match='no trained era classifier'):
    inference.load_era_classifier(tmp_path / 'missing')
