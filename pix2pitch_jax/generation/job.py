"""Batch generation: any images -> mel images -> WAV files, spectrogram PNGs and a gallery page.

    generate(workdir, out_dir, images_dir='photos/')      # any images, any size or mode
    generate(workdir, out_dir, split='test')              # a dataset split, with references

Output (flat, one stem per input):
    <out>/<stem>.wav             generated audio (Griffin-Lim of the generated mel)
    <out>/<stem>_mel.png         the generated mel, colour-mapped, low frequencies at the bottom
    <out>/<stem>_painting.png    the painting as the model saw it (square, S x S)
    <out>/<stem>_reference.wav   split only: Griffin-Lim of the dataset's mel, for comparison
    <out>/<stem>_reference_mel.png
    <out>/index.html             the listening page (gallery.py)
    <out>/manifest.json          what was generated from what, and what was skipped and why

Deterministic for a given seed: the Griffin-Lim phase of input i is drawn from fold_in(seed, i).
The batched helpers here (`map_in_batches`, `generate_mels`, `mels_to_audio`) are shared with the
evaluation job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import logging

from pix2pitch_jax.audio import inverse, spectrogram
from pix2pitch_jax.generation import gallery

DEFAULT_BATCH_SIZE = 8


# ------------------------------------------------------------------------------------------------
# Batched, sharded helpers (also used by evaluation).
# ------------------------------------------------------------------------------------------------


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def map_in_batches(fn: Callable[..., Any], arrays: dict[str, np.ndarray], batch_size: int,
                   mesh: jax.sharding.Mesh | None = None, progress: str | None = None) -> Any:
  """Apply `fn(**batch)` over the leading axis of `arrays` in fixed-size batches.

  Every batch has the same size (the last is padded by repeating its final row, and the padding
  is dropped from the output), so a jitted `fn` compiles once. With a mesh the batch size is
  rounded up to a multiple of the device count and each batch is sharded over the 'data' axis.
  `fn` may return an array or a pytree of arrays; the result is the same structure of numpy
  arrays concatenated over all rows.
  """
  from pix2pitch_jax.runtime import sharding
  n = len(next(iter(arrays.values())))
  if not n:
    raise ValueError('map_in_batches needs at least one row')
  if mesh is not None:
    batch_size = _round_up(batch_size, mesh.size)
  starts = range(0, n, batch_size)
  if progress:
    from tqdm import tqdm
    starts = tqdm(starts, desc=progress, unit='batch', leave=False)
  outputs = []
  for start in starts:
    stop = min(start + batch_size, n)
    batch = {k: _pad_rows(v[start:stop], batch_size) for k, v in arrays.items()}
    if mesh is not None:
      batch = sharding.shard_batch(batch, mesh)
    result = jax.device_get(fn(**batch))
    outputs.append(jax.tree.map(lambda x, rows=stop - start: np.asarray(x)[:rows], result))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  x = np.asarray(x)
  if len(x) == rows:
    return x
  return np.concatenate([x, np.repeat(x[-1:], rows - len(x), axis=0)])


def generate_mels(generator: Any, paintings: np.ndarray, eras: np.ndarray | None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """uint8 paintings (N, S, S, 3) (+ eras (N,)) -> generated mel images (N, S, S) in [-1, 1].

  `generator` is an `inference.LoadedGenerator`, which pads and shards each batch itself.
  """
  arrays = {'paintings': np.asarray(paintings, np.uint8)}
  if eras is not None:
    arrays['eras'] = np.asarray(eras, np.int32)
  return map_in_batches(lambda paintings, eras=None: generator.generate(paintings, eras),
                        arrays, batch_size, progress='generate mels').astype(np.float32)


def mels_to_audio(mels: np.ndarray, params: spectrogram.MelParams, *, n_iter: int = 64, seed: int = 0,
                  batch_size: int = DEFAULT_BATCH_SIZE, mesh: jax.sharding.Mesh | None = None,
                  ) -> np.ndarray:
  """Mel images (N, S, S) -> audio (N, clip_samples); clip i's initial phase from fold_in(seed, i).

  The phase depends only on the seed and the clip's index, not on the batch it landed in.
  """
  def to_audio(mels, index):
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(index)
    return inverse.mel_image_to_audio(mels, params, n_iter=n_iter, key=keys)

  arrays = {'mels': np.asarray(mels, np.float32), 'index': np.arange(len(mels), dtype=np.int32)}
  return map_in_batches(to_audio, arrays, batch_size, mesh, progress='Griffin-Lim')


# ------------------------------------------------------------------------------------------------
# Inputs.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GenerationInput:
  """One painting to turn into music, wherever it came from."""

  stem: str  # file-name stem of its outputs, unique in the output folder
  source: str  # the input file, or the painting id of a split example
  painting: np.ndarray  # uint8 (S, S, 3)
  era: int | None = None  # the dataset label, for split examples
  reference_mel: np.ndarray | None = None  # the dataset's mel, for split examples


def _safe_stem(text: str, taken: set[str]) -> str:
  stem = re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('._') or 'input'
  stem = stem[:80]
  unique, n = stem, 1
  while unique in taken:
    n += 1
    unique = f'{stem}_{n}'
  taken.add(unique)
  return unique


def read_image_folder(images_dir: str | os.PathLike, image_size: int,
                      max_examples: int | None = None,
                      ) -> tuple[list[GenerationInput], list[tuple[str, str]]]:
  """Every file under `images_dir` (recursively, hidden ones excepted) that decodes as an image.

  Returns the inputs and the skipped files with the reason; a bad file never stops the run.
  """
  from pix2pitch_jax.data import images
  root = pathlib.Path(images_dir)
  if not root.is_dir():
    raise FileNotFoundError(f'--images={images_dir} is not a directory')
  hidden = lambda p: any(part.startswith('.') for part in p.relative_to(root).parts)
  files = sorted(p for p in root.rglob('*') if p.is_file() and not hidden(p))
  inputs, skipped, taken = [], [], set()
  for path in files:
    if max_examples is not None and len(inputs) >= max_examples:
      break
    try:
      painting = images.load_painting(path, image_size)
    except (OSError, ValueError) as e:  # images.UnreadableImageError is an OSError
      logging.warning('Skipping %s: %s', path, e)
      skipped.append((str(path), f'{type(e).__name__}: {e}'))
      continue
    rel = path.relative_to(root).with_suffix('')
    inputs.append(GenerationInput(_safe_stem(str(rel), taken), str(path), painting))
  return inputs, skipped


def read_split(data_dir: str | os.PathLike, split: str,
               max_examples: int | None = None) -> list[GenerationInput]:
  """The examples of a dataset split, with their era labels and reference mels."""
  from pix2pitch_jax.data import records
  source = records.open_split(data_dir, split)
  n = len(source) if max_examples is None else min(len(source), max_examples)
  inputs, taken = [], set()
  for i in range(n):
    example = source[i]
    inputs.append(GenerationInput(
        _safe_stem(example['painting_id'], taken), example['painting_id'],
        np.asarray(example['painting'], np.uint8), int(example['era']),
        np.asarray(example['mel'], np.float32)))
  return inputs


# ------------------------------------------------------------------------------------------------
# The job.
# ------------------------------------------------------------------------------------------------


def write_wav(path: str | os.PathLike, clip: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM WAV; clips peaking above full scale are scaled down rather than clipped."""
  import soundfile
  clip = np.asarray(clip, np.float32)
  peak = float(np.max(np.abs(clip))) if clip.size else 0.0
  if peak > 0.999:
    clip = clip * (0.999 / peak)
  soundfile.write(str(path), clip, sample_rate, subtype='PCM_16')


def _conditioning_eras(inputs: Sequence[GenerationInput], era: str | None,
                       era_names: Sequence[str]) -> np.ndarray | None:
  """Era indices to condition on: the labels of split examples, else `era` for all, else None."""
  if era is not None:
    if era not in era_names:
      raise ValueError(f'era {era!r} is not one of the dataset\'s eras {tuple(era_names)}')
    return np.full(len(inputs), list(era_names).index(era), np.int32)
  if all(x.era is not None for x in inputs):
    return np.asarray([x.era for x in inputs], np.int32)
  return None


def _predicted_eras(workdir: pathlib.Path, mels: np.ndarray) -> list[str] | None:
  """Era names the cached era classifier hears in the mels; None when there is no classifier."""
  from pix2pitch_jax.evaluation import era_classifier
  try:
    classifier = era_classifier.load_era_classifier(workdir / 'era_classifier')
  except FileNotFoundError:
    logging.info('No era classifier in %s (the evaluation job trains one): showing labels only.',
                 workdir)
    return None
  return [classifier.era_names[i] for i in classifier.predict(mels)]


def generate(workdir: str | os.PathLike, out_dir: str | os.PathLike, *,
             images_dir: str | os.PathLike | None = None, split: str | None = None,
             checkpoint: str | int = 'latest', max_examples: int | None = None, seed: int = 0,
             griffin_lim_iters: int = 64, batch_size: int = DEFAULT_BATCH_SIZE,
             era: str | None = None) -> dict[str, Any]:
  """Turn a folder of images or a dataset split into WAVs, spectrogram PNGs and index.html.

  `era` (a name from the dataset's eras) conditions an era-conditioned generator on images from a
  folder; split examples use their own label.

  Returns {'index_html', 'manifest', 'out_dir', 'step', 'count', 'skipped': [(path, reason)]}.
  """
  from pix2pitch_jax import inference
  from pix2pitch_jax.runtime import sharding
  if (images_dir is None) == (split is None):
    raise ValueError('give exactly one of images_dir= and split=')
  workdir, out_dir = pathlib.Path(workdir), pathlib.Path(out_dir)
  generator = inference.load_generator(str(workdir), checkpoint)
  params, era_names = generator.meta.mel_params, generator.meta.era_names
  if images_dir is not None:
    inputs, skipped = read_image_folder(images_dir, generator.image_size, max_examples)
  else:
    inputs, skipped = read_split(generator.config.data_dir, split, max_examples), []
  if not inputs:
    raise ValueError(f'nothing to generate from {images_dir or split!r}: '
                     f'{len(skipped)} file(s) skipped, none readable')
  logging.info('Generating music for %d painting(s) with the step-%d generator.', len(inputs),
               generator.step)

  mesh = sharding.make_mesh()
  eras = _conditioning_eras(inputs, era, era_names)
  mels = generate_mels(generator, np.stack([x.painting for x in inputs]), eras, batch_size)
  clips = mels_to_audio(mels, params, n_iter=griffin_lim_iters, seed=seed, batch_size=batch_size,
                        mesh=mesh)
  references = None
  if split is not None:
    references = mels_to_audio(np.stack([x.reference_mel for x in inputs]), params,
                               n_iter=griffin_lim_iters, seed=seed, batch_size=batch_size,
                               mesh=mesh)
  predicted = _predicted_eras(workdir, mels)

  out_dir.mkdir(parents=True, exist_ok=True)
  entries = []
  for i, x in enumerate(inputs):
    entries.append(_write_outputs(out_dir, x, mels[i], clips[i],
                                  None if references is None else references[i], params,
                                  era_names, None if predicted is None else predicted[i]))
  title = f'Pix2Pitch: {"split " + split if split else images_dir}'
  subtitle = (f'{workdir} · step {generator.step} · {len(entries)} clip(s) of '
              f'{params.clip_seconds:g} s at {params.sample_rate} Hz · Griffin-Lim '
              f'{griffin_lim_iters} iterations · seed {seed}')
  index_html = gallery.write_gallery(out_dir, entries, title=title, subtitle=subtitle,
                                     skipped=skipped)
  manifest = out_dir / 'manifest.json'
  manifest.write_text(json.dumps({
      'workdir': str(workdir), 'step': generator.step, 'seed': seed,
      'griffin_lim_iters': griffin_lim_iters, 'mel_params': params.to_dict(),
      'entries': [dataclasses.asdict(e) for e in entries],
      'skipped': [{'path': p, 'reason': r} for p, r in skipped]}, indent=2))
  return {'index_html': str(index_html), 'manifest': str(manifest), 'out_dir': str(out_dir),
          'step': generator.step, 'count': len(entries), 'skipped': skipped}


def _write_outputs(out_dir: pathlib.Path, x: GenerationInput, mel: np.ndarray, clip: np.ndarray,
                   reference_clip: np.ndarray | None, params: spectrogram.MelParams,
                   era_names: Sequence[str], predicted_era: str | None) -> gallery.GalleryEntry:
  from PIL import Image
  files = {'painting': f'{x.stem}_painting.png', 'spectrogram': f'{x.stem}_mel.png',
           'audio': f'{x.stem}.wav'}
  Image.fromarray(x.painting, mode='RGB').save(out_dir / files['painting'])
  gallery.save_mel_png(mel, out_dir / files['spectrogram'])
  write_wav(out_dir / files['audio'], clip, params.sample_rate)
  if reference_clip is not None:
    files['reference_audio'] = f'{x.stem}_reference.wav'
    files['reference_spectrogram'] = f'{x.stem}_reference_mel.png'
    write_wav(out_dir / files['reference_audio'], reference_clip, params.sample_rate)
    gallery.save_mel_png(x.reference_mel, out_dir / files['reference_spectrogram'])
  return gallery.GalleryEntry(
      title=x.stem, source=x.source, era_predicted=predicted_era,
      era_label=None if x.era is None else era_names[x.era], **files)
