"""Shared test set-up: 8 virtual CPU devices, a persistent compile cache, tiny datasets."""

import os
import pathlib

# Must happen before jax is imported anywhere: sharding tests need several devices, and the
# compile cache makes repeated runs of the suite fast.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault(
  'JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.dirname(__file__), '..', '.cache', 'jax')
)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# librosa compiles numba kernels with cache=True into one shared cache, and two processes filling
# an empty cache at once can corrupt it (a segfault). The project imports librosa under a lock
# (audio/numba_cache.py); tests also import it directly, so each worker gets its own cache.
os.environ.setdefault(
  'NUMBA_CACHE_DIR',
  os.path.join(
    os.path.dirname(__file__),
    '..',
    '.cache',
    'numba',
    os.environ.get('PYTEST_XDIST_WORKER', 'main'),
  ),
)

import jax
import numpy as np
import pytest
from absl import flags

from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.core import configs
from pix2pitch_jax.data import records

jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
# grain reads absl flags in its workers; tests run without absl.app.
flags.FLAGS.mark_as_parsed()

TINY_ERAS = ('baroque', 'romanticism')
EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / 'experiments'


def tiny_config():
  """A fresh copy of experiments/tiny.py's config (loaded by path, as the CLI does)."""
  return configs.load_config_file(EXPERIMENTS / 'tiny.py')


def make_tiny_examples(n: int, image_size: int, seed: int, prefix: str):
  """Random paintings whose mel is a deterministic function of the painting (learnable)."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    painting = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    era = i % len(TINY_ERAS)
    mel = painting.mean(axis=-1) / 127.5 - 1.0
    out.append(
      dict(
        painting=painting,
        mel=mel.astype(np.float32),
        era=era,
        painting_id=f'{prefix}{i}',
        clip_source_id=f'{prefix}src{i // 2}',
        clip_offset_s=float(i),
      )
    )
  return out


def write_tiny_dataset(
  data_dir, image_size=32, sizes=(('train', 16), ('validation', 4), ('test', 4))
):
  params = spectrogram.MelParams(image_size=image_size, clip_seconds=2.0, n_fft=512)
  meta = records.DatasetMeta(params, TINY_ERAS, source='tests:tiny')
  for k, (split, n) in enumerate(sizes):
    records.write_split(
      data_dir,
      split,
      make_tiny_examples(n, image_size, k, split[:2]),
      meta,
      num_shards=2 if n >= 8 else 1,
    )
  records.write_metadata(data_dir, meta)
  return str(data_dir)


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
  """A 32x32 dataset (16 train / 4 validation / 4 test) in the real on-disk format."""
  return write_tiny_dataset(tmp_path_factory.mktemp('tiny_dataset'))


class TinyRuleGenerator:
  """Stand-in for `inference.LoadedGenerator` (same interface) that applies the tiny dataset's
  own painting -> mel rule, so it is exact where a real model would still be learning."""

  def __init__(self, data_dir, step=4, weights='raw'):
    import types

    self.config = types.SimpleNamespace(data_dir=data_dir)
    self.meta = records.read_meta(data_dir)
    self.image_size = self.meta.image_size
    self.step = step
    self.weights = weights  # no moving average kept: what load_generator reports for such a run
    self.mesh = None  # batches stay on the host
    self.era_conditioned = False

  def generate(self, paintings, eras=None, *, batch_size=8, progress=None):
    del eras, batch_size, progress
    return np.asarray(paintings, np.float32).mean(axis=-1) / 127.5 - 1.0


@pytest.fixture
def stub_workdir(tiny_dataset, tmp_path, monkeypatch):
  """A workdir path whose 'checkpoint' loads as a TinyRuleGenerator (no training needed)."""
  from pix2pitch_jax import inference

  monkeypatch.setattr(
    inference,
    'load_generator',
    lambda workdir, checkpoint='latest', weights='ema': TinyRuleGenerator(tiny_dataset),
  )
  return tmp_path / 'workdir'


class TinyInvertedGenerator(TinyRuleGenerator):
  """A second stand-in model for comparisons: the negated rule, from a 'cyclegan' run."""

  def __init__(self, data_dir, step=7):
    super().__init__(data_dir, step=step)
    import types

    self.config = types.SimpleNamespace(data_dir=data_dir, family='cyclegan')

  def generate(self, paintings, eras=None, *, batch_size=8, progress=None):
    return -super().generate(paintings, eras, batch_size=batch_size, progress=progress)


@pytest.fixture
def stub_compare_workdirs(tiny_dataset, tmp_path, monkeypatch):
  """(pix2pix workdir, cyclegan workdir) paths loading as a TinyRuleGenerator and a
  TinyInvertedGenerator."""
  from pix2pitch_jax import inference

  def load(workdir, checkpoint='latest', weights='ema'):
    if pathlib.Path(workdir).name == 'cyclegan_run':
      return TinyInvertedGenerator(tiny_dataset)
    return TinyRuleGenerator(tiny_dataset)

  monkeypatch.setattr(inference, 'load_generator', load)
  return tmp_path / 'pix2pix_run', tmp_path / 'cyclegan_run'


def rule_picture(mels):
  """TinyRuleTranslator's picture of mels: each mel as a grey level (the tiny set's rule, back)."""
  grey = np.round((np.clip(mels, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
  return np.repeat(grey[..., None], 3, axis=-1)


class TinyRuleTranslator:
  """Stand-in for a CycleGAN's sound -> picture `inference.LoadedTranslator` (same interface)."""

  def __init__(self, data_dir, step=9):
    import types

    self.config = types.SimpleNamespace(data_dir=data_dir, family='cyclegan')
    self.meta = records.read_meta(data_dir)
    self.image_size = self.meta.image_size
    self.step, self.weights, self.mesh = step, 'raw', None

  def pictures(self, mels, *, batch_size=8, progress=None):
    del batch_size, progress
    return rule_picture(np.asarray(mels, np.float32))


@pytest.fixture
def stub_cyclegan_workdir(tiny_dataset, tmp_path, monkeypatch):
  """A cyclegan workdir path whose sound -> picture generator loads as a TinyRuleTranslator."""
  from pix2pitch_jax import inference

  monkeypatch.setattr(
    inference,
    'load_translator',
    lambda workdir, direction='mel_to_picture', checkpoint='latest', weights='ema': (
      TinyRuleTranslator(tiny_dataset)
    ),
  )
  return tmp_path / 'cyclegan_run'
