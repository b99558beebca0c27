"""Every path inside a workdir, in one place.

A training workdir holds everything one run writes; the evaluation and generation jobs read it
and write next to it. Paths are `etils.epath.Path`s, so a workdir may be a local folder or a
cloud URI (`gs://bucket/run`); nothing here goes through `os.path`.

    <workdir>/config.json                the resolved config of the run
    <workdir>/metrics.jsonl              one JSON line per logged training step
    <workdir>/checkpoints/<step>/        Orbax checkpoints
    <workdir>/tensorboard/               training summaries; tensorboard/eval/ for evaluations
    <workdir>/eval/metrics_<step>.json   the evaluation job's metrics and report
    <workdir>/eval/report_<step>.md
    <workdir>/era_classifier/            the evaluation job's cached era classifier
    <workdir>/profile/                   jax.profiler traces of `config.profile_steps`

The demo's own folder (`DemoDir`) wraps a training workdir with its corpus and galleries.
"""

from __future__ import annotations

import os

from etils import epath


def is_uri(path: str | os.PathLike) -> bool:
  """True for a cloud URI (`gs://bucket/run`), False for a local path."""
  return '://' in os.fspath(path)


def write_bytes_atomic(path: epath.Path, data: bytes, *, tmp_suffix: str = '.tmp') -> None:
  """Write `data` to `path` so that a killed writer leaves no half-written file.

  Locally: under a temporary name, then renamed. In an object store an upload is already all or
  nothing (the object appears when it completes), and a rename there is a copy plus a delete, so
  the bytes go straight to their name.
  """
  if is_uri(path):
    path.write_bytes(data)
    return
  tmp = path.parent / f'.{path.name}{tmp_suffix}'
  tmp.write_bytes(data)
  tmp.replace(path)


def as_path(path: str | os.PathLike) -> epath.Path:
  """An epath for a local path (made absolute: Orbax requires it) or a URI (kept as is)."""
  path = epath.Path(path)
  return path if is_uri(path) else epath.Path(os.path.abspath(os.fspath(path)))


class Workdir:
  """The files of one training run."""

  def __init__(self, root: str | os.PathLike):
    self.root = as_path(root)

  def __repr__(self) -> str:
    return f'Workdir({os.fspath(self.root)!r})'

  @property
  def config_json(self) -> epath.Path:
    return self.root / 'config.json'

  @property
  def metrics_jsonl(self) -> epath.Path:
    return self.root / 'metrics.jsonl'

  @property
  def checkpoints(self) -> epath.Path:
    return self.root / 'checkpoints'

  @property
  def tensorboard(self) -> epath.Path:
    return self.root / 'tensorboard'

  @property
  def eval_tensorboard(self) -> epath.Path:
    return self.tensorboard / 'eval'

  @property
  def eval_dir(self) -> epath.Path:
    return self.root / 'eval'

  def eval_metrics(self, step: int) -> epath.Path:
    return self.eval_dir / f'metrics_{step}.json'

  def eval_report(self, step: int) -> epath.Path:
    return self.eval_dir / f'report_{step}.md'

  @property
  def era_classifier(self) -> epath.Path:
    return self.root / 'era_classifier'

  @property
  def profile(self) -> epath.Path:
    return self.root / 'profile'


class DemoDir:
  """The folder of `pix2pitch-demo`: its corpus, its training workdir and its galleries."""

  def __init__(self, root: str | os.PathLike):
    self.root = as_path(root)

  @property
  def data(self) -> epath.Path:
    return self.root / 'data'

  @property
  def train(self) -> Workdir:
    return Workdir(self.root / 'train')

  @property
  def test_gallery(self) -> epath.Path:
    return self.root / 'gallery' / 'test'

  @property
  def outside_gallery(self) -> epath.Path:
    return self.root / 'gallery' / 'outside'

  @property
  def outside_images(self) -> epath.Path:
    return self.root / 'outside_images'

  @property
  def summary_json(self) -> epath.Path:
    return self.root / 'demo_summary.json'


# Files of a cached era classifier (inside `Workdir.era_classifier`).
ERA_CLASSIFIER_INFO = 'classifier.json'
ERA_CLASSIFIER_PARAMS = 'params'

# Files a generation job writes into its output folder.
GALLERY_INDEX = 'index.html'
GALLERY_MANIFEST = 'manifest.json'
