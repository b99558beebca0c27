"""Evaluation of a CycleGAN run (sound <-> picture): did it learn the intuitive mapping?

Unpaired training can learn any mapping that matches the two distributions. On a held-out split
whose clips and pictures are paired by a known rule (the `squiggles` corpus: pitch -> height,
loudness -> size, timbre -> colour, brightness -> spikiness), the pictures the model draws for
the clips should follow it. Measured here, for one checkpoint:

* **Rule correlations**: Spearman's rho between each audio feature measured on the input mel and
  the visual feature it should drive, measured on the generated picture
  (`squiggle_features`), with a 95 % bootstrap interval; next to an *untrained* generator of the
  same architecture (what the architecture alone gives), a *shuffled* baseline (the model's own
  pictures in a random order: chance, with the same picture distribution) and, where the split
  is paired, the *real* pictures (the ceiling). The full matrix of audio x visual correlations
  of the model is in the JSON.
* **Cycle consistency**: L1 (in [-1, 1] units) of mel -> picture -> mel and of
  picture -> mel -> picture, for the model and the untrained generators.
* **Diversity**: mean L1 distance between random pairs of generated pictures (mels), over the
  same figure for the split's real ones: near 0 is a collapsed generator, near 1 is as varied as
  the data.

The image -> sound direction is also scored by the standard evaluation job (`evaluation.job`,
which restores a CycleGAN run's picture -> mel generator through `inference.load_generator`): on
`synesthesia` used unpaired, that gives the onset F1 of the sound drawn from each painting.

Writes <workdir>/eval/cyclegan_metrics_<step>.json and cyclegan_report_<step>.md.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import nnx

from pix2pitch_jax import inference
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import squiggle_features as features
from pix2pitch_jax.models import cyclegan, pix2pix
from pix2pitch_jax.runtime import sharding

BOOTSTRAP_RESAMPLES = 1000
DIVERSITY_PAIRS = 500
UNTRAINED_SEED = 12_345  # the untrained baseline's init, unlike any run's seed by accident
SYSTEMS = ('model', 'untrained', 'shuffled', 'real')


def untrained_translators(loaded: inference.LoadedTranslator) -> dict[str, Any]:
  """Both directions freshly initialised (the architecture alone), on `loaded`'s mesh."""
  out = {}
  for direction in cyclegan.DIRECTIONS:
    module = cyclegan.make_generator(
      loaded.config, direction, nnx.Rngs(params=jax.random.key(UNTRAINED_SEED))
    )
    graphdef, variables = pix2pix.split_variables(module)
    out[direction] = inference.LoadedTranslator(
      config=loaded.config,
      step=0,
      meta=loaded.meta,
      direction=direction,
      graphdef=graphdef,
      variables=jax.device_put(variables, sharding.replicated(loaded.mesh)),
      mesh=loaded.mesh,
      weights='raw',
    )
  return out


def bootstrap_spearman(
  a: np.ndarray, b: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
  """95 % percentile bootstrap interval of Spearman's rho over rows (NaN when undefined)."""
  rng = np.random.default_rng(seed)
  n = len(a)
  values = [features.spearman(a[i], b[i]) for i in rng.integers(0, n, (resamples, n))]
  finite = np.asarray([v for v in values if math.isfinite(v)])
  if len(finite) < resamples // 2:
    return math.nan, math.nan
  low, high = np.percentile(finite, [2.5, 97.5])
  return float(low), float(high)


def pairwise_diversity(images: np.ndarray, *, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> float:
  """Mean L1 distance (per value) between random distinct pairs of images."""
  n = len(images)
  if n < 2:
    return math.nan
  rng = np.random.default_rng(seed)
  i = rng.integers(0, n, pairs)
  j = (i + rng.integers(1, n, pairs)) % n  # never i itself
  flat = np.asarray(images, np.float32).reshape(n, -1)
  return float(np.mean([np.abs(flat[x] - flat[y]).mean() for x, y in zip(i, j)]))


def to_unit(pictures: np.ndarray) -> np.ndarray:
  """uint8 pictures -> float32 in [-1, 1] (the scale of the mels and of the model)."""
  return np.asarray(pictures, np.float32) / 127.5 - 1.0


def _l1_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).reshape(len(a), -1).mean(1)


def score(
  mels: np.ndarray,
  pictures: np.ndarray,
  translators: dict[str, Any],
  untrained: dict[str, Any],
  params,
  *,
  real_pairs: bool,
  seed: int = 0,
  batch_size: int = 8,
) -> dict[str, Any]:
  """Every metric of the module docstring on one split (mels (N,S,S), pictures (N,S,S,3))."""
  to_picture, to_mel = translators[cyclegan.MEL_TO_PICTURE], translators[cyclegan.PICTURE_TO_MEL]
  drawn = to_picture.pictures(mels, batch_size=batch_size, progress='mel -> picture')
  drawn_untrained = untrained[cyclegan.MEL_TO_PICTURE].pictures(mels, batch_size=batch_size)
  order = np.random.default_rng(seed).permutation(len(mels))
  systems = {'model': drawn, 'untrained': drawn_untrained, 'shuffled': drawn[order]}
  if real_pairs:
    systems['real'] = pictures
  audio = features.mel_features(mels, params)
  visual = {name: features.picture_features(p) for name, p in systems.items()}
  rule: dict[str, Any] = {}
  for name, (a, v) in zip(features.RULE_NAMES, features.RULE):
    rule[name] = {system: features.spearman(audio[a], visual[system][v]) for system in systems}
    rule[name]['model_interval'] = bootstrap_spearman(audio[a], visual['model'][v], seed=seed)
    rule[name]['audio_feature'], rule[name]['visual_feature'] = a, v
  matrix = {
    a: {v: features.spearman(audio[a], visual['model'][v]) for v in features.PICTURE_FEATURES}
    for a in features.MEL_FEATURES
  }
  no_ink = {system: float(np.isnan(visual[system]['ink_area']).mean()) for system in systems}

  # Cycle consistency, both ways, model and untrained.
  cycle: dict[str, dict[str, float]] = {}
  drawn_mels = to_mel.mels(pictures, batch_size=batch_size, progress='picture -> mel')
  for system, (m2p, p2m), first, first_mels in (
    ('model', (to_picture, to_mel), drawn, drawn_mels),
    (
      'untrained',
      (untrained[cyclegan.MEL_TO_PICTURE], untrained[cyclegan.PICTURE_TO_MEL]),
      drawn_untrained,
      None,
    ),
  ):
    if first_mels is None:
      first_mels = p2m.mels(pictures, batch_size=batch_size)
    mel_cycle = _l1_rows(p2m.mels(first, batch_size=batch_size), mels)
    picture_cycle = _l1_rows(
      to_unit(m2p.pictures(first_mels, batch_size=batch_size)), to_unit(pictures)
    )
    cycle[system] = {
      'mel_picture_mel': float(mel_cycle.mean()),
      'picture_mel_picture': float(picture_cycle.mean()),
    }

  real_picture_div = pairwise_diversity(to_unit(pictures), seed=seed)
  real_mel_div = pairwise_diversity(mels, seed=seed)
  diversity = {
    'pictures': pairwise_diversity(to_unit(drawn), seed=seed) / real_picture_div,
    'mels': pairwise_diversity(drawn_mels, seed=seed) / real_mel_div,
    'real_pictures_l1': real_picture_div,
    'real_mels_l1': real_mel_div,
  }
  return {
    'n': len(mels),
    'systems': list(systems),
    'rule_correlations': rule,
    'model_correlation_matrix': matrix,
    'no_ink_fraction': no_ink,
    'cycle_l1': cycle,
    'diversity_ratio': diversity,
    'pictures': drawn,  # for the caller; not written to JSON
  }


def evaluate(
  workdir: str | os.PathLike,
  checkpoint: str | int = 'latest',
  split: str = 'test',
  max_examples: int | None = None,
  *,
  weights: str = 'ema',
  batch_size: int = 8,
  seed: int = 0,
) -> dict[str, Any]:
  """Score a CycleGAN run's checkpoint on `split`; returns {'metrics', 'metrics_json',
  'report_md'} (the metrics also written under <workdir>/eval/)."""
  translators = {
    d: inference.load_translator(workdir, d, checkpoint, num_devices=None, weights=weights)
    for d in cyclegan.DIRECTIONS
  }
  loaded = translators[cyclegan.MEL_TO_PICTURE]
  data = records.read_split(loaded.config.data_dir, split, max_examples=max_examples)
  extra = loaded.meta.extra
  # The pairs of a split mean something where the dataset says so: every split of a paired
  # dataset, the listed splits of an unpaired one (squiggles: validation and test).
  real_pairs = split in extra.get('paired_splits', ()) or extra.get('paired', True) is not False
  metrics = score(
    data['mel'],
    data['painting'],
    translators,
    untrained_translators(loaded),
    loaded.meta.mel_params,
    real_pairs=real_pairs,
    seed=seed,
    batch_size=batch_size,
  )
  metrics.pop('pictures')
  metrics.update(
    step=loaded.step, split=split, weights=loaded.weights, data_dir=str(loaded.config.data_dir)
  )
  out = workdir_lib.Workdir(workdir).eval_dir
  out.mkdir(parents=True, exist_ok=True)
  metrics_json = out / f'cyclegan_metrics_{loaded.step}.json'
  report_md = out / f'cyclegan_report_{loaded.step}.md'
  if sharding.is_main_process():
    metrics_json.write_text(json.dumps(_json_safe(metrics), indent=2, sort_keys=True))
    report_md.write_text(render_report(metrics))
  logging.info('CycleGAN evaluation of step %d written to %s', loaded.step, metrics_json)
  return {'metrics': metrics, 'metrics_json': str(metrics_json), 'report_md': str(report_md)}


def _json_safe(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_json_safe(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _fmt(value: Any) -> str:
  return '–' if value is None or not math.isfinite(value) else f'{value:+.2f}'


def render_report(m: dict[str, Any]) -> str:
  """The metrics as a Markdown report."""
  systems = m['systems']
  lines = [
    f'# CycleGAN evaluation: step {m["step"]}, split `{m["split"]}` (n = {m["n"]}, '
    f'{m["weights"]} weights)',
    '',
    '## Does the picture follow the sound? Spearman rho, audio feature -> visual feature',
    '',
    '| rule | model [95 % interval] | ' + ' | '.join(s for s in systems if s != 'model') + ' |',
    '| --- | ---: | ' + ' | '.join('---:' for s in systems if s != 'model') + ' |',
  ]
  for name, row in m['rule_correlations'].items():
    low, high = row['model_interval']
    others = ' | '.join(_fmt(row[s]) for s in systems if s != 'model')
    lines.append(f'| {name} | **{_fmt(row["model"])}** [{_fmt(low)}, {_fmt(high)}] | {others} |')
  lines += [
    '',
    'untrained: a freshly initialised generator of the same architecture; shuffled: the '
    "model's pictures in a random order (chance); real: the split's own pictures (the ceiling, "
    'where the split is paired). Pictures with no ink have no visual features: '
    + ', '.join(f'{s} {100 * f:.0f} %' for s, f in m['no_ink_fraction'].items())
    + '.',
    '',
    '## Cycle consistency (L1 in [-1, 1] units)',
    '',
    '| | mel -> picture -> mel | picture -> mel -> picture |',
    '| --- | ---: | ---: |',
  ]
  for system, row in m['cycle_l1'].items():
    lines.append(f'| {system} | {row["mel_picture_mel"]:.3f} | {row["picture_mel_picture"]:.3f} |')
  d = m['diversity_ratio']
  lines += [
    '',
    '## Diversity (generated / real mean pairwise L1; ~0 is a collapsed generator)',
    '',
    f'pictures {d["pictures"]:.2f}, mels {d["mels"]:.2f}',
    '',
  ]
  return '\n'.join(lines)
