"""The evaluation job: every metric of docs/evaluation.md for a checkpoint, next to two baselines.

    evaluate(workdir, checkpoint='latest', split='test') -> {'metrics', 'metrics_json', ...}

Systems scored on the same examples, so that no number is read alone:
  model       the generator's mel for the painting (and its era)
  retrieval   the mel of the training painting nearest to it in a simple image embedding
              (8x8 thumbnail + colour histograms), the "Imaginary Soundscapes" idea
  era_mean    the mean training mel of the painting's era
and 'real', the held-out reference mels themselves, for the ceilings (era accuracy, transcription
F1) and floors (Griffin-Lim consistency, diversity) of what the metrics can show.

Audio for the audio metrics is the Griffin-Lim reconstruction of each mel, the real ones
included, so every system goes through the same vocoder. Generation, the spectrogram metrics and
Griffin-Lim run in fixed-size batches sharded over all local devices ('data' mesh axis); set-level
statistics (Fréchet, diversity, descriptors, transcription) run on the host.

Outputs: <workdir>/eval/metrics_<step>.json, <workdir>/eval/report_<step>.md, TensorBoard scalars
under <workdir>/tensorboard/eval ('<system>/<metric>', with a few mels and clips of each system),
and the era classifier cached in <workdir>/era_classifier/ (trained on the dataset's real training
mels if missing).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

from pix2pitch_jax import inference
from pix2pitch_jax.audio import spectrogram, transcription
from pix2pitch_jax.core import run_logs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import era_classifier, metrics
from pix2pitch_jax.models import era_classifier as era_model
from pix2pitch_jax.runtime import sharding

SYSTEMS = ('model', 'retrieval', 'era_mean')
IMAGE_METRICS = (
  'l1_db',
  'l2_db2',
  'spectral_convergence',
  'log_spectral_distance_db',
  'mel_cepstral_distortion_db',
  'ssim',
  'psnr_db',
)
NOTE_METRICS = ('onset_f1', 'onset_pitch_f1')
TENSORBOARD_EXAMPLES = 2  # clips per system in TensorBoard: something to listen to, not a score
# (metric, better) for the report's arrows; 'real' means closest to the real mels' value.
DIRECTIONS = {
  'l1_db': 'lower',
  'l2_db2': 'lower',
  'spectral_convergence': 'lower',
  'log_spectral_distance_db': 'lower',
  'mel_cepstral_distortion_db': 'lower',
  'ssim': 'higher',
  'psnr_db': 'higher',
  'griffin_lim_consistency': 'lower',
  'era_accuracy': 'higher',
  'frechet_distance': 'lower',
  'diversity': 'real',
  'diversity_ratio': '1',
  'chroma_distance': 'lower',
  'onset_f1': 'higher',
  'onset_pitch_f1': 'higher',
}


@dataclasses.dataclass
class EvalSet:
  """The examples of the split under evaluation, in memory."""

  paintings: np.ndarray  # uint8 (N, S, S, 3)
  mels: np.ndarray  # float32 (N, S, S) in [-1, 1]
  eras: np.ndarray  # int32 (N,)
  painting_ids: list[str]
  notes_json: list[str]

  def __len__(self) -> int:
    return len(self.eras)


def load_eval_set(
  data_dir: str | os.PathLike, split: str, max_examples: int | None = None
) -> EvalSet:
  data = records.read_split(
    data_dir,
    split,
    max_examples=max_examples,
    fields=('painting', 'mel', 'era', 'painting_id', 'notes_json'),
  )
  return EvalSet(
    data['painting'], data['mel'], data['era'], data['painting_id'], data['notes_json']
  )


# ------------------------------------------------------------------------------------------------
# Baselines.
# ------------------------------------------------------------------------------------------------


def painting_features(paintings: np.ndarray) -> np.ndarray:
  """A simple image embedding (N, 216): an 8x8 RGB thumbnail (area-averaged) and an 8-bin
  histogram per colour channel, each part scaled to [0, 1]-ish values."""
  paintings = np.asarray(paintings, np.float32) / 255.0
  n, size = paintings.shape[:2]
  cell = size // 8
  thumbs = paintings[:, : cell * 8, : cell * 8].reshape(n, 8, cell, 8, cell, 3).mean(axis=(2, 4))
  bins = np.minimum((paintings * 8).astype(np.int32), 7)
  hists = np.stack(
    [np.stack([np.bincount(b[..., c].ravel(), minlength=8) for c in range(3)]) for b in bins]
  ).astype(np.float32) / (paintings.shape[1] * paintings.shape[2])
  return np.concatenate([thumbs.reshape(n, -1), hists.reshape(n, -1)], axis=1)


@dataclasses.dataclass
class TrainingSummary:
  """What the baselines need from the training split, gathered in one streaming pass."""

  features: np.ndarray  # (N_train, D) painting features
  era_means: np.ndarray  # (num_eras, S, S) mean mel per era (NaN-free; 0 for unseen eras)
  data_dir: str
  split: str

  def mel(self, index: int) -> np.ndarray:
    return np.asarray(records.open_split(self.data_dir, self.split)[index]['mel'], np.float32)


def summarize_training_split(
  data_dir: str | os.PathLike, num_eras: int, split: str = 'train'
) -> TrainingSummary:
  source = records.open_split(data_dir, split)
  features, sums, counts = [], None, np.zeros(num_eras)
  for i in range(len(source)):
    example = source[i]
    features.append(painting_features(example['painting'][None])[0])
    mel = np.asarray(example['mel'], np.float64)
    sums = np.zeros((num_eras,) + mel.shape) if sums is None else sums
    sums[example['era']] += mel
    counts[example['era']] += 1
  if sums is None:
    raise ValueError(f'the {split!r} split of {data_dir} is empty: no baselines without it')
  era_means = (sums / np.maximum(counts, 1)[:, None, None]).astype(np.float32)
  return TrainingSummary(np.stack(features), era_means, str(data_dir), split)


def retrieval_mels(summary: TrainingSummary, paintings: np.ndarray) -> np.ndarray:
  """For each painting, the mel of the nearest training painting (Euclidean, z-scored features)."""
  mean, std = summary.features.mean(0), summary.features.std(0) + 1e-6
  train = (summary.features - mean) / std
  query = (painting_features(paintings) - mean) / std
  sq_dist = (query**2).sum(1)[:, None] + (train**2).sum(1)[None] - 2 * query @ train.T
  nearest = np.argmin(sq_dist, axis=1)
  cache: dict[int, np.ndarray] = {}
  return np.stack([cache.setdefault(int(j), summary.mel(int(j))) for j in nearest])


def era_mean_mels(summary: TrainingSummary, eras: np.ndarray) -> np.ndarray:
  return summary.era_means[np.asarray(eras)]


# ------------------------------------------------------------------------------------------------
# Scoring.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Rendered:
  """One system's mels with what is derived from them: audio, classifier outputs."""

  mels: np.ndarray
  clips: np.ndarray
  predicted_eras: np.ndarray
  embeddings: np.ndarray


def render(
  mels: np.ndarray,
  params: spectrogram.MelParams,
  classifier: era_model.TrainedEraClassifier,
  *,
  n_iter: int,
  seed: int,
  batch_size: int,
  mesh,
) -> Rendered:
  """Griffin-Lim audio, predicted eras and classifier embeddings of a set of mels."""
  clips = inference.mels_to_audio(
    mels, params, n_iter=n_iter, seed=seed, batch_size=batch_size, mesh=mesh
  )
  return Rendered(mels, clips, classifier.predict(mels), classifier.embed(mels))


def _mean(values: np.ndarray) -> float:
  values = np.asarray(values, np.float64)
  return float(np.mean(values)) if values.size else float('nan')


def per_example_metrics(
  reference: EvalSet, system: Rendered, params: spectrogram.MelParams, *, batch_size: int, mesh
) -> dict[str, np.ndarray]:
  """Spectrogram metrics vs the reference and Griffin-Lim consistency, one value per example."""
  return sharding.map_in_batches(
    functools.partial(_spectrogram_metrics, params=params),
    {'reference': reference.mels, 'generated': system.mels, 'clips': system.clips},
    batch_size=batch_size,
    mesh=mesh,
  )


@functools.partial(jax.jit, static_argnames='params')
def _spectrogram_metrics(reference, generated, clips, params: spectrogram.MelParams):
  return {
    **metrics.mel_image_metrics(reference, generated, params),
    'griffin_lim_consistency': _consistency(generated, clips, params),
  }


@functools.partial(jax.jit, static_argnames='params')
def _consistency(images, clips, params: spectrogram.MelParams):
  return metrics.griffin_lim_consistency(images, clips, params)


def note_metrics(
  notes_json: Sequence[str], mels: np.ndarray, params: spectrogram.MelParams
) -> dict[str, np.ndarray] | None:
  """Onset / onset+pitch F1 per example with a note list; None when the split has none."""
  rows = [i for i, text in enumerate(notes_json) if text]
  if not rows:
    return None
  scores = [
    transcription.note_scores(
      transcription.parse_notes_json(notes_json[i], params.clip_seconds),
      transcription.transcribe_mel_image(mels[i], params),
    )
    for i in rows
  ]
  return {k: np.asarray([s[k] for s in scores]) for k in NOTE_METRICS} | {'rows': np.asarray(rows)}


def score_system(
  reference: EvalSet,
  real: Rendered,
  system: Rendered,
  params: spectrogram.MelParams,
  era_names: Sequence[str],
  *,
  batch_size: int,
  mesh,
) -> dict[str, Any]:
  """All metrics of one system, overall and per era."""
  per_example = per_example_metrics(reference, system, params, batch_size=batch_size, mesh=mesh)
  per_example['era_correct'] = (system.predicted_eras == reference.eras).astype(np.float64)
  notes = note_metrics(reference.notes_json, system.mels, params)
  out: dict[str, Any] = {k: _mean(v) for k, v in per_example.items() if k != 'era_correct'}
  out['era_accuracy'] = _mean(per_example['era_correct'])
  out['frechet_distance'] = metrics.frechet_distance(real.embeddings, system.embeddings)
  out.update(
    metrics.descriptor_statistics(
      metrics.audio_descriptors(real.clips, params.sample_rate),
      metrics.audio_descriptors(system.clips, params.sample_rate),
    )
  )
  if notes is not None:
    out.update({k: _mean(notes[k]) for k in NOTE_METRICS})
  per_era = {}
  for era, name in enumerate(era_names):
    rows = reference.eras == era
    if not rows.any():
      continue
    entry = {k: _mean(v[rows]) for k, v in per_example.items() if k != 'era_correct'}
    entry['count'] = int(rows.sum())
    entry['era_accuracy'] = _mean(per_example['era_correct'][rows])
    entry['frechet_distance'] = metrics.frechet_distance(
      real.embeddings[rows], system.embeddings[rows]
    )
    entry['diversity'] = metrics.mean_pairwise_distance(system.mels[rows])
    real_diversity = metrics.mean_pairwise_distance(real.mels[rows])
    entry['diversity_ratio'] = (
      entry['diversity'] / real_diversity if real_diversity > 0 else float('nan')
    )
    if notes is not None:
      in_era = np.isin(notes['rows'], np.nonzero(rows)[0])
      entry.update({k: _mean(notes[k][in_era]) for k in NOTE_METRICS})
    per_era[name] = entry
  out['diversity'] = _nanmean([e['diversity'] for e in per_era.values()])
  out['diversity_ratio'] = _nanmean([e['diversity_ratio'] for e in per_era.values()])
  out['per_era'] = per_era
  return out


def _nanmean(values: Sequence[float]) -> float:
  values = [v for v in values if not math.isnan(v)]
  return float(np.mean(values)) if values else float('nan')


def score_real(
  reference: EvalSet,
  real: Rendered,
  params: spectrogram.MelParams,
  era_names: Sequence[str],
  *,
  batch_size: int,
  mesh,
) -> dict[str, Any]:
  """Ceilings and floors: the classifier, transcription and consistency on the real mels."""
  consistency = sharding.map_in_batches(
    functools.partial(_consistency, params=params),
    {'images': real.mels, 'clips': real.clips},
    batch_size=batch_size,
    mesh=mesh,
  )
  correct = real.predicted_eras == reference.eras
  out: dict[str, Any] = {
    'era_accuracy': _mean(correct),
    'griffin_lim_consistency': _mean(consistency),
  }
  notes = note_metrics(reference.notes_json, real.mels, params)
  if notes is not None:
    out.update({k: _mean(notes[k]) for k in NOTE_METRICS})
  per_era = {}
  for era, name in enumerate(era_names):
    rows = reference.eras == era
    if rows.any():
      per_era[name] = {
        'count': int(rows.sum()),
        'era_accuracy': _mean(correct[rows]),
        'diversity': metrics.mean_pairwise_distance(real.mels[rows]),
      }
  out['diversity'] = _nanmean([e['diversity'] for e in per_era.values()])
  out['per_era'] = per_era
  return out


# ------------------------------------------------------------------------------------------------
# The job.
# ------------------------------------------------------------------------------------------------


def evaluate(
  workdir: str | os.PathLike,
  checkpoint: str | int = 'latest',
  split: str = 'test',
  max_examples: int | None = None,
  *,
  batch_size: int = 8,
  griffin_lim_iters: int = 32,
  seed: int = 0,
  classifier_config: era_model.ClassifierConfig = era_model.ClassifierConfig(),
) -> dict[str, Any]:
  """Score a checkpoint on a split against the baselines; write JSON, report and TensorBoard.

  Returns {'metrics': the JSON's content, 'metrics_json': path, 'report_md': path, 'step': int}.
  """
  paths = workdir_lib.Workdir(workdir)
  generator = inference.load_generator(workdir, checkpoint)
  data_dir = generator.config.data_dir
  params, era_names = generator.meta.mel_params, tuple(generator.meta.era_names)
  classifier = era_classifier.load_or_train_era_classifier(
    paths.era_classifier, data_dir, config=classifier_config
  )
  reference = load_eval_set(data_dir, split, max_examples)
  logging.info('Evaluating step %d on %d %s examples.', generator.step, len(reference), split)
  mesh = generator.mesh
  summary = summarize_training_split(data_dir, len(era_names))
  mels = {
    'model': generator.generate(
      reference.paintings, reference.eras, batch_size=batch_size, progress='generate mels'
    ),
    'retrieval': retrieval_mels(summary, reference.paintings),
    'era_mean': era_mean_mels(summary, reference.eras),
  }
  render_kw: dict[str, Any] = dict(
    n_iter=griffin_lim_iters, seed=seed, batch_size=batch_size, mesh=mesh
  )
  real = render(reference.mels, params, classifier, **render_kw)
  rendered = {'real': real}
  result: dict[str, Any] = {
    'step': generator.step,
    'split': split,
    'num_examples': len(reference),
    'era_names': list(era_names),
    'data_dir': str(data_dir),
    'griffin_lim_iters': griffin_lim_iters,
    'seed': seed,
    'mel_params': params.to_dict(),
    'classifier': classifier.info,
    'real': score_real(reference, real, params, era_names, batch_size=batch_size, mesh=mesh),
  }
  for name in SYSTEMS:
    system = rendered[name] = render(mels[name], params, classifier, **render_kw)
    result[name] = score_system(
      reference, real, system, params, era_names, batch_size=batch_size, mesh=mesh
    )
    # The ceiling next to every system, so each block reads on its own.
    result[name]['era_accuracy_real'] = result['real']['era_accuracy']
  return write_outputs(paths, result, examples=rendered)


def write_outputs(
  paths: workdir_lib.Workdir, result: dict[str, Any], *, examples: dict[str, Rendered] | None = None
) -> dict[str, Any]:
  paths.eval_dir.mkdir(parents=True, exist_ok=True)
  step = result['step']
  metrics_json = paths.eval_metrics(step)
  metrics_json.write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True))
  report_md = paths.eval_report(step)
  report_md.write_text(render_report(result))
  write_tensorboard(paths.eval_tensorboard, result, examples=examples)
  logging.info('Evaluation written to %s and %s', metrics_json, report_md)
  return {
    'metrics': result,
    'metrics_json': str(metrics_json),
    'report_md': str(report_md),
    'step': step,
  }


def _json_safe(value: Any) -> Any:
  """NaN / inf are not JSON: write them as null / "inf" strings."""
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None if math.isnan(value) else ('inf' if value > 0 else '-inf')
  return value


def scalar_items(result: dict[str, Any]) -> dict[str, float]:
  """'<system>/<metric>' -> value for every finite scalar of the systems and 'real'."""
  out = {}
  for group in ('real',) + SYSTEMS:
    for key, value in result.get(group, {}).items():
      if isinstance(value, (int, float)) and math.isfinite(value):
        out[f'{group}/{key}'] = float(value)
  return out


def write_tensorboard(
  log_dir: str | os.PathLike,
  result: dict[str, Any],
  *,
  examples: dict[str, Rendered] | None = None,
) -> None:
  """Scalars '<system>/<metric>'; with `examples` (system -> Rendered), also the first
  `TENSORBOARD_EXAMPLES` mels of each system ('<system>/mel', magma as in the gallery) and their
  Griffin-Lim audio ('<system>/audio_<i>'), the same examples for every system so they compare.
  """
  step, sample_rate = result['step'], result['mel_params']['sample_rate']
  with run_logs.EventWriter(log_dir) as writer:
    for tag, value in scalar_items(result).items():
      writer.scalar(tag, value, step)
    for name, rendered in (examples or {}).items():
      n = min(TENSORBOARD_EXAMPLES, len(rendered.mels))
      writer.images(f'{name}/mel', spectrogram.colorize_mel(rendered.mels[:n]), step)
      for i in range(n):
        writer.audio(
          f'{name}/audio_{i}', np.clip(rendered.clips[i], -1.0, 1.0), step, sample_rate=sample_rate
        )


# ------------------------------------------------------------------------------------------------
# Markdown report.
# ------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return '–'
  if isinstance(value, float):
    return 'inf' if math.isinf(value) else f'{value:.3g}'
  return str(value)


_ARROWS = {'lower': '↓', 'higher': '↑', 'real': '≈ real', '1': '≈ 1'}


def render_report(result: dict[str, Any]) -> str:
  columns = SYSTEMS + ('real',)
  rows = list(IMAGE_METRICS) + [
    'griffin_lim_consistency',
    'era_accuracy',
    'frechet_distance',
    'diversity',
    'diversity_ratio',
    'chroma_distance',
  ]
  rows += [f'{d}/difference' for d in metrics.DESCRIPTORS]
  rows += [k for k in NOTE_METRICS if k in result['model']]
  lines = [
    f'# Evaluation: step {result["step"]}, split `{result["split"]}` '
    f'({result["num_examples"]} examples)',
    '',
    "Model vs baselines (retrieval: nearest training painting's mel; era_mean: the era's "
    'mean training mel) and the real mels (ceilings and floors). Audio metrics use the '
    f'Griffin-Lim reconstruction ({result["griffin_lim_iters"]} iterations) of every mel. '
    'Metric definitions: docs/evaluation.md.',
    '',
    '| metric | better | ' + ' | '.join(columns) + ' |',
    '| --- | --- |' + ' ---: |' * len(columns),
  ]
  for row in rows:
    better = '≈ 0' if row.endswith('/difference') else _ARROWS[DIRECTIONS[row]]
    values = [_fmt(result.get(c, {}).get(row)) for c in columns]
    lines.append(f'| {row} | {better} | ' + ' | '.join(values) + ' |')
  lines += [
    '',
    '## Per era',
    '',
    '| era | n | era acc. model | era acc. real | Fréchet model | Fréchet retrieval | '
    'Fréchet era_mean | diversity model / real | L1 dB model | L1 dB retrieval | '
    'L1 dB era_mean |',
    '| --- |' + ' ---: |' * 10,
  ]
  for era in result['era_names']:
    get = lambda group, key, era=era: result[group]['per_era'].get(era, {}).get(key)
    if get('real', 'count') is None:
      continue
    lines.append(
      '| '
      + ' | '.join(
        [
          era,
          _fmt(get('real', 'count')),
          _fmt(get('model', 'era_accuracy')),
          _fmt(get('real', 'era_accuracy')),
          _fmt(get('model', 'frechet_distance')),
          _fmt(get('retrieval', 'frechet_distance')),
          _fmt(get('era_mean', 'frechet_distance')),
          f'{_fmt(get("model", "diversity"))} / {_fmt(get("real", "diversity"))}',
          _fmt(get('model', 'l1_db')),
          _fmt(get('retrieval', 'l1_db')),
          _fmt(get('era_mean', 'l1_db')),
        ]
      )
      + ' |'
    )
  info = result.get('classifier', {})
  lines += [
    '',
    f'Era classifier: trained on {info.get("train_examples", "?")} real '
    f'{info.get("train_split", "train")} mels; validation accuracy '
    f'{_fmt(info.get("validation_accuracy"))}.',
    '',
  ]
  return '\n'.join(lines)
