"""The evaluation job: every metric of docs/evaluation.md for a checkpoint, next to two baselines.

    evaluate(workdir, checkpoint='latest', split='test') -> {'metrics', 'metrics_json', ...}

Systems scored on the same examples, so that no number is read alone:
  model       the generator's mel for the painting (and its era)
  retrieval   the mel of the training painting nearest to it in a simple image embedding
              (8x8 thumbnail + colour histograms), the "Imaginary Soundscapes" idea
  era_mean    the mean training mel of the painting's era
and 'real', the held-out reference mels themselves, for the ceilings (era accuracy, transcription
F1) and floors (Griffin-Lim consistency, diversity) of what the metrics can show.

Where the split carries its notes (the synesthesia demo), two ears score them: the project's
transcriber reads the mel images (`onset_*`), and basic-pitch, a transcriber written elsewhere,
listens to the Griffin-Lim audio (`audio_onset_*`; `independent_ear`, the `ear` extra). Without
the extra, one warning, and the `audio_*` metrics are left out.

Audio for the audio metrics is the Griffin-Lim reconstruction of each mel, the real ones
included, so every system goes through the same vocoder. `vocoder_names` (`--vocoder`, the
registry of `pix2pitch_jax/vocoders.py`: griffin_lim, midi, neural) scores the audio of each named
vocoder too: the audio-side metrics (`VOCODER_METRICS`: how much of the mel its audio keeps, the
audio descriptors against the real mels through the same vocoder, the independent ear's notes)
of every system under `vocoders/<name>`, with what the vocoder is (`about`).

Generation, the spectrogram metrics and Griffin-Lim run in fixed-size batches sharded over all
local devices ('data' mesh axis); set-level statistics (Fréchet, KID, diversity, descriptors,
transcription) and the bootstrap intervals of every mean and of KID (`CONFIDENCE`,
`BOOTSTRAP_RESAMPLES`) run on the host.

On many hosts (`jax.distributed`, started by the main) each process scores every system on its
share of the examples (rows i with i % process_count == process_index: generation, Griffin-Lim,
per-example metrics, classifier outputs, descriptors, note scores) and hands them to process 0
through part files in the workdir; process 0 computes the set-level metrics on all of them and
writes the outputs. Process 0 alone trains the era classifier when the cache lacks it; the others
load it once it is saved. The training-split summary the baselines use is read in shares too.

Outputs: <workdir>/eval/metrics_<step>.json, <workdir>/eval/report_<step>.md (with n, intervals and
the era classifier's confusion matrices), TensorBoard scalars under <workdir>/tensorboard/eval
('<system>/<metric>' and its interval, with a few mels and clips of each system),
and the era classifier cached in <workdir>/era_classifier/ (trained on the dataset's real training
mels if missing).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath

from pix2pitch_jax import inference, vocoders
from pix2pitch_jax.audio import spectrogram, transcription
from pix2pitch_jax.core import run_logs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import era_classifier, independent_ear, metrics
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
# The independent ear (basic-pitch on the Griffin-Lim audio): every note score, prefixed.
AUDIO_NOTE_METRICS = tuple(f'audio_{k}' for k in transcription.SCORE_KEYS)
AUDIO_NOTE_REPORT = (  # the rows of the report's table; the JSON has all of AUDIO_NOTE_METRICS
  'audio_onset_f1',
  'audio_onset_pitch_f1',
  'audio_onset_pitch_precision',
  'audio_onset_pitch_recall',
)
# Per vocoder (`vocoders/<name>/<system>`): the audio-side metrics. `mel_consistency` is
# `griffin_lim_consistency`'s measure on that vocoder's audio: how far the mel of the audio is from
# the mel it was made from.
VOCODER_METRICS = ('mel_consistency', 'chroma_distance') + tuple(
  f'{d}/difference' for d in metrics.DESCRIPTORS
)
_VOCODER_ROWS = 'vocoder:'  # row keys 'vocoder:<name>:<system>/<metric>'
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
  'mel_consistency': 'lower',
  'era_accuracy': 'higher',
  'frechet_distance': 'lower',
  'kernel_inception_distance': 'lower',
  'diversity': 'real',
  'diversity_ratio': '1',
  'chroma_distance': 'lower',
  'onset_f1': 'higher',
  'onset_pitch_f1': 'higher',
  **dict.fromkeys(AUDIO_NOTE_METRICS, 'higher'),
}
# Intervals: percentile bootstrap over the examples, a fixed seed so that a report is reproducible
# (`metrics.bootstrap_interval`). The keys say '_ci95': change them with CONFIDENCE.
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


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
  data_dir: str | os.PathLike,
  split: str,
  max_examples: int | None = None,
  *,
  rows: np.ndarray | None = None,
) -> EvalSet:
  """The split's first `max_examples` examples, or the examples at `rows` (a host's share)."""
  if rows is None:
    data = records.read_split(
      data_dir,
      split,
      max_examples=max_examples,
      fields=('painting', 'mel', 'era', 'painting_id', 'notes_json'),
    )
    return EvalSet(
      data['painting'], data['mel'], data['era'], data['painting_id'], data['notes_json']
    )
  source = records.open_split(data_dir, split)
  examples = [source[int(i)] for i in rows]
  return EvalSet(
    np.stack([np.asarray(e['painting']) for e in examples]).astype(np.uint8),
    np.stack([np.asarray(e['mel']) for e in examples]).astype(np.float32),
    np.asarray([e['era'] for e in examples], np.int32),
    [e.get('painting_id', '') or '' for e in examples],
    [e.get('notes_json', '') or '' for e in examples],
  )


# ------------------------------------------------------------------------------------------------
# Baselines.
# ------------------------------------------------------------------------------------------------


FEATURE_DIM = 8 * 8 * 3 + 8 * 3  # `painting_features`: thumbnail + colour histograms


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

  def mels(self, indices: np.ndarray) -> np.ndarray:
    """The training mels at `indices`: the split opened once, each distinct example read once."""
    source = records.open_split(self.data_dir, self.split)
    unique = {int(i): np.asarray(source[int(i)]['mel'], np.float32) for i in set(indices.tolist())}
    return np.stack([unique[int(i)] for i in indices])


def summarize_training_split(
  data_dir: str | os.PathLike, num_eras: int, split: str = 'train'
) -> TrainingSummary:
  source = records.open_split(data_dir, split)
  if not len(source):
    raise ValueError(f'the {split!r} split of {data_dir} is empty: no baselines without it')
  mel_size = np.asarray(source[0]['mel']).shape[0]
  features, sums, counts = _training_sums(source, np.arange(len(source)), num_eras, mel_size)
  era_means = (sums / np.maximum(counts, 1)[:, None, None]).astype(np.float32)
  return TrainingSummary(features, era_means, str(data_dir), split)


def _training_sums(
  source, rows: np.ndarray, num_eras: int, mel_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Painting features of `rows` of a split, and their mels summed and counted per era."""
  features = np.zeros((len(rows), FEATURE_DIM), np.float32)
  sums, counts = np.zeros((num_eras, mel_size, mel_size)), np.zeros(num_eras)
  for k, i in enumerate(rows):
    example = source[int(i)]
    features[k] = painting_features(example['painting'][None])[0]
    sums[example['era']] += np.asarray(example['mel'], np.float64)
    counts[example['era']] += 1
  return features, sums, counts


def retrieval_mels(summary: TrainingSummary, paintings: np.ndarray) -> np.ndarray:
  """For each painting, the mel of the nearest training painting (Euclidean, z-scored features)."""
  mean, std = summary.features.mean(0), summary.features.std(0) + 1e-6
  train = (summary.features - mean) / std
  query = (painting_features(paintings) - mean) / std
  sq_dist = (query**2).sum(1)[:, None] + (train**2).sum(1)[None] - 2 * query @ train.T
  return summary.mels(np.argmin(sq_dist, axis=1))


def era_mean_mels(summary: TrainingSummary, eras: np.ndarray) -> np.ndarray:
  return summary.era_means[np.asarray(eras)]


# ------------------------------------------------------------------------------------------------
# Scoring.
# ------------------------------------------------------------------------------------------------

SPECTROGRAM_METRICS = IMAGE_METRICS + ('griffin_lim_consistency',)


@dataclasses.dataclass
class Rendered:
  """One system's mels with their Griffin-Lim audio (what TensorBoard shows of it)."""

  mels: np.ndarray
  clips: np.ndarray


def _mean(values: np.ndarray) -> float:
  values = np.asarray(values, np.float64)
  return float(np.mean(values)) if values.size else float('nan')


def per_example_metrics(
  reference_mels: np.ndarray,
  mels: np.ndarray,
  clips: np.ndarray,
  params: spectrogram.MelParams,
  *,
  batch_size: int,
  mesh,
) -> dict[str, np.ndarray]:
  """Spectrogram metrics vs the reference and Griffin-Lim consistency, one value per example."""
  return sharding.map_in_batches(
    functools.partial(_spectrogram_metrics, params=params),
    {'reference': reference_mels, 'generated': mels, 'clips': clips},
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


def audio_note_metrics(
  notes_json: Sequence[str], clips: np.ndarray, sample_rate: int, clip_seconds: float
) -> dict[str, np.ndarray] | None:
  """The independent ear's note scores (`AUDIO_NOTE_METRICS`) per example with a note list:
  basic-pitch's transcription of each clip vs the stored notes. None when the split has none."""
  rows = [i for i, text in enumerate(notes_json) if text]
  if not rows:
    return None
  scores = [
    transcription.note_scores(
      transcription.parse_notes_json(notes_json[i], clip_seconds),
      independent_ear.transcribe_audio(clips[i], sample_rate),
    )
    for i in rows
  ]
  return {f'audio_{k}': np.asarray([s[k] for s in scores]) for k in transcription.SCORE_KEYS} | {
    'rows': np.asarray(rows)
  }


def independent_ear_available() -> bool:
  """Whether the independent ear loads here; if not, one warning says why (its metrics are then
  left out, not the evaluation)."""
  try:
    independent_ear.check_available()
  except independent_ear.EarUnavailable as error:
    logging.warning('Audio note metrics left out: %s', error)
    return False
  return True


def score_rows(
  reference: EvalSet,
  mels: np.ndarray,
  params: spectrogram.MelParams,
  classifier: era_model.TrainedEraClassifier,
  *,
  real: bool,
  indices: np.ndarray,
  n_iter: int,
  seed: int,
  batch_size: int,
  mesh,
  listen: bool = False,
  clips: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Everything per example of one system on some rows of the set (a host's share): its mels, the
  classifier's era and embedding, spectrogram metrics (consistency alone for the real mels), the
  audio descriptors and note scores (NaN where the example has no notes); with `listen`, also the
  independent ear's note scores of the clips (`AUDIO_NOTE_METRICS`). Also the clips.

  `indices` are the rows' positions in the whole set: clip i's Griffin-Lim phase is
  fold_in(seed, indices[i]) whichever host renders it. `clips`: that Griffin-Lim audio when the
  caller has rendered it already.
  """
  if clips is None:
    clips = inference.mels_to_audio(
      mels, params, n_iter=n_iter, seed=seed, batch_size=batch_size, mesh=mesh, indices=indices
    )
  out = {
    'mels': np.asarray(mels, np.float32),
    'predicted_era': classifier.predict(mels),
    'embedding': classifier.embed(mels),
    **metrics.audio_descriptors(clips, params.sample_rate),
  }
  if real:
    out['griffin_lim_consistency'] = sharding.map_in_batches(
      functools.partial(_consistency, params=params),
      {'images': mels, 'clips': clips},
      batch_size=batch_size,
      mesh=mesh,
    )
  else:
    out.update(
      per_example_metrics(reference.mels, mels, clips, params, batch_size=batch_size, mesh=mesh)
    )
  notes = note_metrics(reference.notes_json, mels, params)
  out['has_notes'] = np.zeros(len(mels), bool)
  _put_rows(out, notes, NOTE_METRICS, len(mels))
  if notes is not None:
    out['has_notes'][notes['rows']] = True
  if listen:
    heard = audio_note_metrics(reference.notes_json, clips, params.sample_rate, params.clip_seconds)
    _put_rows(out, heard, AUDIO_NOTE_METRICS, len(mels))
  return out, clips


def vocoder_rows(
  reference: EvalSet,
  mels: np.ndarray,
  clips: np.ndarray,
  params: spectrogram.MelParams,
  *,
  batch_size: int,
  mesh,
  listen: bool = False,
) -> dict[str, np.ndarray]:
  """The audio-side values per example of one system's `mels` as one vocoder's `clips`: how far
  the clips' mel is from the mel (`mel_consistency`), the audio descriptors and, with `listen`, the
  independent ear's note scores (NaN where the example has no notes)."""
  out = {
    'mel_consistency': sharding.map_in_batches(
      functools.partial(_consistency, params=params),
      {'images': mels, 'clips': clips},
      batch_size=batch_size,
      mesh=mesh,
    ),
    **metrics.audio_descriptors(clips, params.sample_rate),
  }
  if listen:
    heard = audio_note_metrics(reference.notes_json, clips, params.sample_rate, params.clip_seconds)
    _put_rows(out, heard, AUDIO_NOTE_METRICS, len(mels))
  return out


def _put_rows(
  out: dict[str, np.ndarray], scores: dict[str, np.ndarray] | None, keys: Sequence[str], n: int
) -> None:
  """`out[k]` for each of `keys`: the scores at their 'rows', NaN elsewhere (or everywhere)."""
  for k in keys:
    out[k] = np.full(n, np.nan)
    if scores is not None:
      out[k][scores['rows']] = scores[k]


def _note_keys(rows: dict[str, np.ndarray]) -> tuple[str, ...]:
  """The note metrics these rows have: the mel-image ones, and the ear's when it listened."""
  return NOTE_METRICS + tuple(k for k in AUDIO_NOTE_METRICS if k in rows)


def _descriptors(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k: rows[k] for k in metrics.DESCRIPTORS + ('chroma',)}


def _mean_with_interval(key: str, values: np.ndarray) -> dict[str, Any]:
  """`key`: the mean of per-example `values`, `<key>_ci95`: its interval (non-finite values left
  out), `<key>_n`: how many values."""
  values = np.asarray(values, np.float64)
  interval = metrics.bootstrap_interval(
    values, confidence=CONFIDENCE, num_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED
  )
  return {key: _mean(values), f'{key}_ci95': list(interval), f'{key}_n': int(len(values))}


def _embedding_distances(real_embeddings: np.ndarray, embeddings: np.ndarray) -> dict[str, Any]:
  """Fréchet distance and KID (with its interval) between the real set's classifier embeddings
  and a system's on the same rows. KID needs 2 examples per set: NaN below that. The Fréchet
  distance gets no interval: it is biased upward at small n, and a resample, which repeats
  examples, is a smaller set still, so its resampled values sit above the estimate
  (docs/evaluation.md, 'Intervals and n')."""
  n = len(embeddings)
  kid = metrics.kernel_inception_distance(real_embeddings, embeddings) if n >= 2 else math.nan
  interval = metrics.kernel_inception_distance_interval(
    real_embeddings,
    embeddings,
    confidence=CONFIDENCE,
    num_resamples=BOOTSTRAP_RESAMPLES,
    seed=BOOTSTRAP_SEED,
  )
  return {
    'frechet_distance': metrics.frechet_distance(real_embeddings, embeddings),
    'frechet_distance_n': n,
    'kernel_inception_distance': kid,
    'kernel_inception_distance_ci95': list(interval),
    'kernel_inception_distance_n': n,
  }


def _era_confusion(eras: np.ndarray, predicted: np.ndarray, era_names) -> dict[str, Any]:
  """The era classifier's confusion matrix: counts[true era][predicted era]."""
  counts = metrics.confusion_matrix(eras, predicted, len(era_names))
  return {'era_names': list(era_names), 'counts': counts.tolist()}


def score_system(
  eras: np.ndarray, real: dict[str, np.ndarray], system: dict[str, np.ndarray], era_names
) -> dict[str, Any]:
  """All metrics of one system, overall and per era, from `score_rows` of every example: means
  of per-example values with their intervals and n, KID with its interval, the confusion matrix."""
  per_example = {k: system[k] for k in SPECTROGRAM_METRICS}
  correct = (system['predicted_era'] == eras).astype(np.float64)
  notes = system['has_notes']
  out: dict[str, Any] = {}
  for k, v in per_example.items():
    out |= _mean_with_interval(k, v)
  out |= _mean_with_interval('era_accuracy', correct)
  out |= _embedding_distances(real['embedding'], system['embedding'])
  out |= _descriptor_scores(real, system)
  if notes.any():
    for k in _note_keys(system):
      out |= _mean_with_interval(k, system[k][notes])
  out['era_confusion'] = _era_confusion(eras, system['predicted_era'], era_names)
  per_era = {}
  for era, name in enumerate(era_names):
    rows = eras == era
    if not rows.any():
      continue
    entry: dict[str, Any] = {'count': int(rows.sum())}
    for k, v in per_example.items():
      entry |= _mean_with_interval(k, v[rows])
    entry |= _mean_with_interval('era_accuracy', correct[rows])
    entry |= _embedding_distances(real['embedding'][rows], system['embedding'][rows])
    entry['diversity'] = metrics.mean_pairwise_distance(system['mels'][rows])
    real_diversity = metrics.mean_pairwise_distance(real['mels'][rows])
    entry['diversity_ratio'] = (
      entry['diversity'] / real_diversity if real_diversity > 0 else float('nan')
    )
    if notes.any():
      for k in _note_keys(system):
        entry |= _mean_with_interval(k, system[k][notes & rows])
    per_era[name] = entry
  out['diversity'] = _nanmean([e['diversity'] for e in per_era.values()])
  out['diversity_ratio'] = _nanmean([e['diversity_ratio'] for e in per_era.values()])
  out['per_era'] = per_era
  return out


def _descriptor_scores(
  real: dict[str, np.ndarray], system: dict[str, np.ndarray]
) -> dict[str, Any]:
  """The audio descriptors of a system against the real set's (`descriptor_statistics`), each
  difference with the interval of the paired per-example differences."""
  out: dict[str, Any] = metrics.descriptor_statistics(_descriptors(real), _descriptors(system))
  for name in metrics.DESCRIPTORS:
    # The difference of the two sets' means is the mean of the paired per-example differences,
    # so it has an interval as any mean; the value stays descriptor_statistics'.
    paired = _mean_with_interval(f'{name}/difference', system[name] - real[name])
    out |= {k: v for k, v in paired.items() if k != f'{name}/difference'}
  return out


def score_vocoder(
  rows: dict[str, dict[str, np.ndarray]], has_notes: np.ndarray
) -> dict[str, dict[str, Any]]:
  """The audio-side metrics of one vocoder for 'real' and every system, from `vocoder_rows` of
  every example (`rows`: system -> name -> values): `mel_consistency`, the descriptors against
  the real mels through the same vocoder, and the ear's note scores where it listened."""
  real = rows['real']
  out: dict[str, dict[str, Any]] = {}
  for name in ('real',) + SYSTEMS:
    system = rows[name]
    block = _mean_with_interval('mel_consistency', system['mel_consistency'])
    if name != 'real':
      block |= _descriptor_scores(real, system)
    if has_notes.any():
      for k in AUDIO_NOTE_METRICS:
        if k in system:
          block |= _mean_with_interval(k, system[k][has_notes])
    out[name] = block
  return out


def _nanmean(values: Sequence[float]) -> float:
  values = [v for v in values if not math.isnan(v)]
  return float(np.mean(values)) if values else float('nan')


def score_real(eras: np.ndarray, real: dict[str, np.ndarray], era_names) -> dict[str, Any]:
  """Ceilings and floors: the classifier, transcription and consistency on the real mels."""
  correct = (real['predicted_era'] == eras).astype(np.float64)
  notes = real['has_notes']
  out: dict[str, Any] = _mean_with_interval('era_accuracy', correct)
  out |= _mean_with_interval('griffin_lim_consistency', real['griffin_lim_consistency'])
  if notes.any():
    for k in _note_keys(real):
      out |= _mean_with_interval(k, real[k][notes])
  out['era_confusion'] = _era_confusion(eras, real['predicted_era'], era_names)
  per_era = {}
  for era, name in enumerate(era_names):
    rows = eras == era
    if not rows.any():
      continue
    entry: dict[str, Any] = {'count': int(rows.sum())}
    entry |= _mean_with_interval('era_accuracy', correct[rows])
    entry['diversity'] = metrics.mean_pairwise_distance(real['mels'][rows])
    if notes.any():
      for k in NOTE_METRICS:
        entry |= _mean_with_interval(k, real[k][notes & rows])
    per_era[name] = entry
  out['diversity'] = _nanmean([e['diversity'] for e in per_era.values()])
  out['per_era'] = per_era
  return out


# ------------------------------------------------------------------------------------------------
# Many hosts: shares of the rows, exchanged through part files in the workdir.
# ------------------------------------------------------------------------------------------------


class _Parts:
  """Arrays each process computed, handed to process 0 (or to all) through `<folder>/`.

  The workdir is shared by every host of a job (checkpoints are read from it), so files there
  need no collective big enough for every mel of the set, and a host with no rows simply writes
  none. With one process nothing touches the disk.
  """

  def __init__(self, folder: epath.Path):
    self.folder = folder

  def exchange(
    self, name: str, arrays: dict[str, np.ndarray], *, everyone: bool = False
  ) -> list[dict[str, np.ndarray]] | None:
    """Every process's `arrays`, in process order, on process 0 (on every process with
    `everyone`); None on the others."""
    if jax.process_count() == 1:
      return [arrays]
    buf = io.BytesIO()
    contents: dict[str, Any] = dict(arrays)
    np.savez(buf, **contents)
    self.folder.mkdir(parents=True, exist_ok=True)
    path = self.folder / f'{name}-{jax.process_index()}.npz'
    workdir_lib.write_bytes_atomic(path, buf.getvalue())
    sharding.barrier(f'evaluation: {name}')
    if not everyone and not sharding.is_main_process():
      return None
    parts = []
    for process in range(jax.process_count()):
      data = (self.folder / f'{name}-{process}.npz').read_bytes()
      with np.load(io.BytesIO(data)) as npz:
        parts.append({k: npz[k] for k in npz.files})
    return parts

  def remove(self) -> None:
    if sharding.is_main_process() and self.folder.exists():
      self.folder.rmtree()


def _assemble(parts: Sequence[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
  """Per-row arrays of every process (each with its 'rows') -> arrays of all `n` rows in order."""
  shapes = next(p for p in parts if len(p['rows']))
  out = {k: np.empty((n,) + v.shape[1:], v.dtype) for k, v in shapes.items() if k != 'rows'}
  for part in parts:
    for k in out:
      out[k][part['rows']] = part[k]
  return out


def _shared_era_classifier(
  out_dir: epath.Path, data_dir: str, config: era_model.ClassifierConfig
) -> era_model.TrainedEraClassifier:
  """Process 0 loads or trains the cached classifier; the others load it once it is saved."""
  classifier = None
  if sharding.is_main_process():
    classifier = era_classifier.load_or_train_era_classifier(out_dir, data_dir, config=config)
  sharding.barrier('evaluation: era classifier ready')
  return classifier if classifier is not None else inference.load_era_classifier(out_dir)


def _training_summary(
  data_dir: str, num_eras: int, mel_size: int, parts: _Parts, split: str = 'train'
) -> TrainingSummary:
  """`summarize_training_split`, each process reading its share of the training split."""
  source = records.open_split(data_dir, split)
  if not len(source):
    raise ValueError(f'the {split!r} split of {data_dir} is empty: no baselines without it')
  rows = sharding.host_rows(len(source))
  features, sums, counts = _training_sums(source, rows, num_eras, mel_size)
  shared = parts.exchange(
    'train_summary',
    {'rows': rows, 'features': features, 'sums': sums, 'counts': counts},
    everyone=True,
  )
  assert shared is not None
  sums = np.sum([p['sums'] for p in shared], axis=0)
  counts = np.sum([p['counts'] for p in shared], axis=0)
  era_means = (sums / np.maximum(counts, 1)[:, None, None]).astype(np.float32)
  assembled = _assemble(
    [{'rows': p['rows'], 'features': p['features']} for p in shared], len(source)
  )
  return TrainingSummary(assembled['features'], era_means, str(data_dir), split)


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
  weights: str = 'ema',
  classifier_config: era_model.ClassifierConfig = era_model.ClassifierConfig(),
  vocoder_names: Sequence[str] = (vocoders.DEFAULT,),
  vocoder_workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
  """Score a checkpoint on a split against the baselines; write JSON, report and TensorBoard.

  In a multi-process job every process calls this with the same arguments and scores its share
  of the examples (`batch_size` is per process); process 0 computes the set-level metrics on all
  of them and writes the outputs. `weights`: the generator's moving average ('ema', when the run
  kept one) or its weights ('raw'); `inference.load_generator`. `vocoder_names`: the vocoders
  whose audio is scored too (`vocoders/<name>` in the result; the registry of `vocoders.py`),
  `vocoder_workdir`: the neural vocoder's training workdir (default `<workdir>/vocoder`). A
  vocoder that cannot run here stops the job with one line before anything is scored.

  Returns {'metrics': the JSON's content, 'metrics_json': path, 'report_md': path, 'step': int}.
  """
  vocoder_names = vocoders.check_names(vocoder_names)
  paths = workdir_lib.Workdir(workdir)
  generator = inference.load_generator(workdir, checkpoint, weights=weights)
  data_dir = generator.config.data_dir
  params, era_names = generator.meta.mel_params, tuple(generator.meta.era_names)
  context = vocoders.VocoderContext.for_generator(
    generator,
    workdir=workdir,
    seed=seed,
    griffin_lim_iters=griffin_lim_iters,
    batch_size=batch_size,
    vocoder_workdir=vocoder_workdir,
  )
  # Built before anything is scored: a missing vocoder or soundfont stops here, in one line. The
  # metrics of every system use Griffin-Lim's audio whichever vocoders are listed.
  built = {name: vocoders.build(name, context) for name in vocoder_names}
  griffin_lim = built.get(vocoders.DEFAULT) or vocoders.build(vocoders.DEFAULT, context)
  classifier = _shared_era_classifier(paths.era_classifier, data_dir, classifier_config)
  parts = _Parts(paths.eval_dir / f'.parts_{generator.step}')
  source = records.open_split(data_dir, split)
  n = len(source) if max_examples is None else min(len(source), max_examples)
  if not n:
    raise ValueError(f'split {split!r} of {data_dir} has no examples')
  # A corpus carries notes for every example or for none (the synesthesia demo does), so the first
  # example decides, the same way on every host, whether the independent ear listens.
  listen = bool(source[0].get('notes_json')) and independent_ear_available()
  rows = sharding.host_rows(n)
  logging.info(
    'Evaluating step %d on %d %s examples (%d on process %d of %d).',
    generator.step,
    n,
    split,
    len(rows),
    jax.process_index(),
    jax.process_count(),
  )
  summary = _training_summary(data_dir, len(era_names), params.image_size, parts)
  scored, examples = _score_share(
    generator,
    classifier,
    summary,
    load_eval_set(data_dir, split, rows=rows) if len(rows) else None,
    rows=rows,
    n_iter=griffin_lim_iters,
    seed=seed,
    batch_size=batch_size,
    listen=listen,
    griffin_lim=griffin_lim,
    vocoders_built=built,
  )
  gathered = parts.exchange('scores', {'rows': rows} | scored)
  written = None
  if gathered is not None:  # process 0
    result: dict[str, Any] = {
      'step': generator.step,
      'weights': generator.weights,
      'split': split,
      'num_examples': n,
      'era_names': list(era_names),
      'data_dir': str(data_dir),
      'griffin_lim_iters': griffin_lim_iters,
      'seed': seed,
      'mel_params': params.to_dict(),
      'classifier': classifier.info,
      **_score_all(_assemble(gathered, n), era_names, vocoder_names),
    }
    for name, vocoder in built.items():
      result['vocoders'][name]['about'] = {'kind': name, **vocoder.about}
    written = write_outputs(paths, result, examples=examples)
  sharding.barrier('evaluation: outputs written')
  parts.remove()
  if written is not None:
    return written
  return {
    'metrics': json.loads(paths.eval_metrics(generator.step).read_text()),
    'metrics_json': os.fspath(paths.eval_metrics(generator.step)),
    'report_md': os.fspath(paths.eval_report(generator.step)),
    'step': generator.step,
  }


def _score_share(
  generator: inference.LoadedGenerator,
  classifier: era_model.TrainedEraClassifier,
  summary: TrainingSummary,
  reference: EvalSet | None,
  *,
  rows: np.ndarray,
  n_iter: int,
  seed: int,
  batch_size: int,
  listen: bool = False,
  griffin_lim: vocoders.Vocoder | None = None,
  vocoders_built: dict[str, vocoders.Vocoder] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Rendered]]:
  """`score_rows` of every system on this process's rows ('<system>/<name>' -> array), and the
  first few mels and clips of each for TensorBoard. Nothing for a process without rows. `listen`:
  score the clips with the independent ear too. `griffin_lim` renders the audio of those metrics
  (else `score_rows` does, the same way); each of `vocoders_built` adds its `vocoder_rows`
  ('vocoder:<name>:<system>/<metric>'), Griffin-Lim's the values `score_rows` computed."""
  if reference is None:
    return {}, {}
  mels = {
    'real': reference.mels,
    'model': generator.generate(
      reference.paintings, reference.eras, batch_size=batch_size, progress='generate mels'
    ),
    'retrieval': retrieval_mels(summary, reference.paintings),
    'era_mean': era_mean_mels(summary, reference.eras),
  }
  scored, examples = {'eras/era': reference.eras}, {}
  params = generator.meta.mel_params
  for name, system_mels in mels.items():
    gl_clips = None if griffin_lim is None else griffin_lim.render(system_mels, rows).clips
    arrays, clips = score_rows(
      reference,
      system_mels,
      generator.meta.mel_params,
      classifier,
      real=name == 'real',
      indices=rows,
      n_iter=n_iter,
      seed=seed,
      batch_size=batch_size,
      mesh=generator.mesh,
      listen=listen,
      clips=gl_clips,
    )
    scored |= {f'{name}/{k}': v for k, v in arrays.items()}
    examples[name] = Rendered(system_mels[:TENSORBOARD_EXAMPLES], clips[:TENSORBOARD_EXAMPLES])
    for vocoder_name, vocoder in (vocoders_built or {}).items():
      if vocoder_name == vocoders.DEFAULT:  # the clips just scored: their values, not again
        vocoded = {
          k: arrays[k]
          for k in metrics.DESCRIPTORS + ('chroma',) + AUDIO_NOTE_METRICS
          if k in arrays
        }
        vocoded['mel_consistency'] = arrays['griffin_lim_consistency']
      else:
        vocoded = vocoder_rows(
          reference,
          system_mels,
          np.asarray(vocoder.render(system_mels, rows).clips, np.float32),
          params,
          batch_size=batch_size,
          mesh=generator.mesh,
          listen=listen,
        )
      scored |= {f'{_VOCODER_ROWS}{vocoder_name}:{name}/{k}': v for k, v in vocoded.items()}
  return scored, examples


def _score_all(
  merged: dict[str, np.ndarray], era_names: Sequence[str], vocoder_names: Sequence[str] = ()
) -> dict[str, Any]:
  """The metrics of 'real' and of every system from the rows of the whole set, and the
  audio-side metrics of each of `vocoder_names` ('vocoders')."""
  by_system = {
    s: {k.split('/', 1)[1]: v for k, v in merged.items() if k.startswith(f'{s}/')}
    for s in ('real',) + SYSTEMS
  }
  eras = merged['eras/era']
  result: dict[str, Any] = {
    'intervals': {
      'method': 'percentile bootstrap over the examples',
      'confidence': CONFIDENCE,
      'num_resamples': BOOTSTRAP_RESAMPLES,
      'seed': BOOTSTRAP_SEED,
    },
    'real': score_real(eras, by_system['real'], era_names),
  }
  for name in SYSTEMS:
    result[name] = score_system(eras, by_system['real'], by_system[name], era_names)
    # The ceiling next to every system, so each block reads on its own.
    result[name]['era_accuracy_real'] = result['real']['era_accuracy']
  if vocoder_names:
    result['vocoder_names'] = list(vocoder_names)
    result['vocoders'] = {}
  for vocoder_name in vocoder_names:
    prefix = f'{_VOCODER_ROWS}{vocoder_name}:'
    rows = {
      s: {
        k[len(prefix) + len(s) + 1 :]: v for k, v in merged.items() if k.startswith(f'{prefix}{s}/')
      }
      for s in ('real',) + SYSTEMS
    }
    result['vocoders'][vocoder_name] = score_vocoder(rows, by_system['real']['has_notes'])
  return result


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
  """'<system>/<metric>' -> value for every finite scalar of the systems and 'real', and
  '<system>/<metric>_ci95_low', '_ci95_high' for its interval; a vocoder's metrics as
  'vocoder_<name>/<system>/<metric>'. Counts (`<metric>_n`) stay in the
  JSON: they are not scores to plot."""
  blocks = [(group, result.get(group, {})) for group in ('real',) + SYSTEMS]
  for vocoder_name, vocoder_blocks in result.get('vocoders', {}).items():
    blocks += [
      (f'vocoder_{vocoder_name}/{group}', vocoder_blocks[group])
      for group in ('real',) + SYSTEMS
      if group in vocoder_blocks
    ]
  out = {}
  for group, block in blocks:
    for key, value in block.items():
      if key.endswith('_ci95') and len(value) == 2:
        for bound, end in zip(('low', 'high'), value):
          if isinstance(end, (int, float)) and math.isfinite(end):
            out[f'{group}/{key}_{bound}'] = float(end)
      elif key.endswith('_n'):
        continue
      elif isinstance(value, (int, float)) and math.isfinite(value):
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
# The per-era tables, one per metric, when the result has the metric.
PER_ERA_ROWS = (
  (
    'era_accuracy',
    'frechet_distance',
    'kernel_inception_distance',
    'diversity',
    'l1_db',
  )
  + NOTE_METRICS
  + AUDIO_NOTE_REPORT[:2]
)


def _with_interval(block: dict[str, Any], key: str) -> str:
  """'0.43 [0.38, 0.48]': the value and, when it has one, its interval."""
  value = _fmt(block.get(key))
  interval = block.get(f'{key}_ci95')
  if interval is None or value == '–':
    return value
  return f'{value} [{_fmt(interval[0])}, {_fmt(interval[1])}]'


def _count(blocks: Sequence[dict[str, Any]], key: str, default: Any) -> str:
  """How many examples `key` is over: its `<key>_n` in the first block that has one."""
  return _fmt(next((b[f'{key}_n'] for b in blocks if f'{key}_n' in b), default))


def _interval_note(result: dict[str, Any]) -> list[str]:
  intervals = result.get('intervals')
  if not intervals:  # a result written before the intervals were
    return []
  return [
    f'Intervals: value [low, high], the {intervals["confidence"]:.0%} {intervals["method"]} '
    f'({intervals["num_resamples"]} resamples, seed {intervals["seed"]}); n: the examples a '
    "value is over. Every mean over examples has one, and KID (a resample's repeated examples "
    'left out of its within-set sums). Resamples only redraw the examples there are: where all '
    'score alike (n = 1, an accuracy of 0 or 1) the interval has zero width, so read it with n. '
    'The Fréchet distance, chroma distance and diversity have '
    'none: resampling repeats examples, which these plug-in set statistics read as a smaller '
    'or collapsed set, so their resampled values sit off the estimate.',
    '',
    'The Fréchet distance is biased at small n (two samples of one distribution score well '
    'above 0, the more so the fewer the examples, so a per-era value does not compare with the '
    'overall one): compare it only at equal n. KID (cubic polynomial kernel) is unbiased: ~0 '
    'for two samples of one distribution at any n.',
    '',
  ]


def _two_ears(listened: bool) -> str:
  """The line under the table that says which ear wrote which note rows."""
  mel_ear = (
    "Notes are scored against the painting's own by two ears: `onset_*` reads them off the mel "
    "image (this project's transcriber: what the generator drew)"
  )
  if not listened:
    return mel_ear + '; the independent ear (basic-pitch, on the audio) did not run (see the log).'
  return (
    mel_ear + ', `audio_*` is basic-pitch (Spotify; neither written nor tuned here) listening to '
    "the Griffin-Lim audio: what a listener gets. The `real` column is each ear's ceiling; the "
    'two may disagree (docs/evaluation.md, "The independent ear").'
  )


def render_report(result: dict[str, Any]) -> str:
  columns = SYSTEMS + ('real',)
  rows = list(IMAGE_METRICS) + [
    'griffin_lim_consistency',
    'era_accuracy',
    'frechet_distance',
    'kernel_inception_distance',
    'diversity',
    'diversity_ratio',
    'chroma_distance',
  ]
  rows += [f'{d}/difference' for d in metrics.DESCRIPTORS]
  rows += [k for k in NOTE_METRICS + AUDIO_NOTE_REPORT if k in result['model']]
  lines = [
    f'# Evaluation: step {result["step"]} ({result.get("weights", "raw")} weights), '
    f'split `{result["split"]}` ({result["num_examples"]} examples)',
    '',
    "Model vs baselines (retrieval: nearest training painting's mel; era_mean: the era's "
    'mean training mel) and the real mels (ceilings and floors). Audio metrics use the '
    f'Griffin-Lim reconstruction ({result["griffin_lim_iters"]} iterations) of every mel. '
    'Metric definitions: docs/evaluation.md.',
    '',
    *_interval_note(result),
    '| metric | better | n | ' + ' | '.join(columns) + ' |',
    '| --- | --- | ---: |' + ' ---: |' * len(columns),
  ]
  blocks = [result.get(c, {}) for c in columns]
  for row in rows:
    better = '≈ 0' if row.endswith('/difference') else _ARROWS[DIRECTIONS[row]]
    count = _count(blocks, row, result['num_examples'])
    values = [_with_interval(b, row) for b in blocks]
    lines.append(f'| {row} | {better} | {count} | ' + ' | '.join(values) + ' |')
  if 'onset_f1' in result['model']:
    lines += ['', _two_ears(listened=AUDIO_NOTE_REPORT[0] in result['model'])]
  lines += _vocoder_tables(result, columns)
  lines += ['', '## Per era', '']
  eras = [e for e in result['era_names'] if e in result['real']['per_era']]
  for row in PER_ERA_ROWS:
    if not any(row in result[c]['per_era'].get(e, {}) for c in columns for e in eras):
      continue
    lines += [
      f'### {row} {_ARROWS[DIRECTIONS[row]]}',
      '',
      '| era | n | ' + ' | '.join(columns) + ' |',
      '| --- | ---: |' + ' ---: |' * len(columns),
    ]
    for era in eras:
      era_blocks = [result[c]['per_era'].get(era, {}) for c in columns]
      count = _count(era_blocks, row, result['real']['per_era'][era]['count'])
      values = [_with_interval(b, row) for b in era_blocks]
      lines.append(f'| {era} | {count} | ' + ' | '.join(values) + ' |')
    lines.append('')
  lines += _confusion_tables(result, columns)
  info = result.get('classifier', {})
  lines += [
    f'Era classifier: trained on {info.get("train_examples", "?")} real '
    f'{info.get("train_split", "train")} mels; validation accuracy '
    f'{_fmt(info.get("validation_accuracy"))}.',
    '',
  ]
  return '\n'.join(lines)


# What the report says of a vocoder, from its `about`, in this order.
_ABOUT_KEYS = ('method', 'iterations', 'soundfont', 'program', 'workdir', 'step', 'weights')


def _describe_vocoder(about: dict[str, Any]) -> str:
  return '; '.join(
    f'{k} {about[k]}' if k != 'method' else about[k] for k in _ABOUT_KEYS if k in about
  )


def _vocoder_tables(result: dict[str, Any], columns: Sequence[str]) -> list[str]:
  """One table per scored vocoder: the audio-side metrics of every system's mels as its audio."""
  scored = result.get('vocoders', {})
  if not scored:
    return []
  lines = [
    '',
    '## Audio by vocoder',
    '',
    "Every system's mels (and the real ones) as each vocoder's audio: `mel_consistency`, how far "
    "the audio's mel is from the mel it was made from (spectral convergence; the measure of "
    '`griffin_lim_consistency`), the audio descriptors against the real mels through the same '
    "vocoder, and basic-pitch's note scores where it listened.",
  ]
  for name in result.get('vocoder_names', list(scored)):
    blocks = [scored[name].get(c, {}) for c in columns]
    rows = list(VOCODER_METRICS) + [k for k in AUDIO_NOTE_REPORT if k in scored[name]['model']]
    lines += [
      '',
      f'### {name}',
      '',
      _describe_vocoder(scored[name].get('about', {})),
      '',
      '| metric | better | n | ' + ' | '.join(columns) + ' |',
      '| --- | --- | ---: |' + ' ---: |' * len(columns),
    ]
    for row in rows:
      better = '≈ 0' if row.endswith('/difference') else _ARROWS[DIRECTIONS[row]]
      count = _count(blocks, row, result['num_examples'])
      values = [_with_interval(b, row) for b in blocks]
      lines.append(f'| {row} | {better} | {count} | ' + ' | '.join(values) + ' |')
  return lines


def _confusion_tables(result: dict[str, Any], columns: Sequence[str]) -> list[str]:
  """The era classifier's confusion matrix on each system's mels (rows: true era)."""
  groups = [c for c in columns if 'era_confusion' in result.get(c, {})]
  if not groups:
    return []
  lines = [
    '## Era classifier confusion',
    '',
    "Rows: the painting's era; columns: the era the classifier heard in the mel. On the real mels "
    'it is the ceiling of what the generated ones can show.',
    '',
  ]
  for group in groups:
    confusion = result[group]['era_confusion']
    names = confusion['era_names']
    lines += [
      f'### {group}',
      '',
      '| true \\ predicted | ' + ' | '.join(names) + ' |',
      '| --- |' + ' ---: |' * len(names),
    ]
    for name, counts in zip(names, confusion['counts']):
      lines.append(f'| {name} | ' + ' | '.join(str(c) for c in counts) + ' |')
    lines.append('')
  return lines
