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

The workdir, the images folder and the output folder may be local or URIs (`gs://bucket/...`):
every file goes through `etils.epath`.

Deterministic for a given seed: the Griffin-Lim phase of input i is drawn from fold_in(seed, i).
Generation and Griffin-Lim run in fixed-size batches sharded over all local devices
(`inference`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from etils import epath

from pix2pitch_jax import inference
from pix2pitch_jax.audio import spectrogram, wav
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import records
from pix2pitch_jax.generation import gallery

DEFAULT_BATCH_SIZE = inference.DEFAULT_BATCH_SIZE


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


def read_image_folder(
  images_dir: str | os.PathLike,
  image_size: int,
  max_examples: int | None = None,
) -> tuple[list[GenerationInput], list[tuple[str, str]]]:
  """Every file under `images_dir` (recursively, hidden ones excepted) that decodes as an image.

  Returns the inputs and the skipped files with the reason; a bad file never stops the run.
  """
  from pix2pitch_jax.data import images

  root = workdir_lib.as_path(images_dir)
  if not root.is_dir():
    raise FileNotFoundError(f'--images={images_dir} is not a directory')
  hidden = lambda p: any(part.startswith('.') for part in p.relative_to(root).parts)
  # walk(), not rglob: epath refuses recursive patterns; walk() lists a local folder or a bucket.
  found = (folder / name for folder, _, names in root.walk() for name in names)
  files = sorted((p for p in found if not hidden(p)), key=lambda p: p.relative_to(root).parts)
  inputs: list[GenerationInput] = []
  skipped: list[tuple[str, str]] = []
  taken: set[str] = set()
  for path in files:
    if max_examples is not None and len(inputs) >= max_examples:
      break
    try:
      # Read through epath, so a folder in a bucket works like a local one.
      painting = images.load_painting(path.read_bytes(), image_size)
    except (OSError, ValueError) as e:  # images.UnreadableImageError is an OSError
      logging.warning('Skipping %s: %s', path, e)
      skipped.append((str(path), f'{type(e).__name__}: {e}'))
      continue
    rel = path.relative_to(root).with_suffix('')
    inputs.append(GenerationInput(_safe_stem(str(rel), taken), str(path), painting))
  return inputs, skipped


def read_split(
  data_dir: str | os.PathLike, split: str, max_examples: int | None = None
) -> list[GenerationInput]:
  """The examples of a dataset split, with their era labels and reference mels."""
  data = records.read_split(
    data_dir, split, max_examples=max_examples, fields=('painting', 'mel', 'era', 'painting_id')
  )
  taken: set[str] = set()
  return [
    GenerationInput(
      _safe_stem(pid, taken), pid, data['painting'][i], int(data['era'][i]), data['mel'][i]
    )
    for i, pid in enumerate(data['painting_id'])
  ]


# ------------------------------------------------------------------------------------------------
# The job.
# ------------------------------------------------------------------------------------------------


def _reference_mel(x: GenerationInput) -> np.ndarray:
  """The dataset's mel of a split example (inputs from an image folder have none)."""
  if x.reference_mel is None:
    raise ValueError(f'{x.source} has no reference mel: only split examples have one')
  return x.reference_mel


def _conditioning_eras(
  inputs: Sequence[GenerationInput], era: str | None, era_names: Sequence[str]
) -> np.ndarray | None:
  """Era indices to condition on: the labels of split examples, else `era` for all, else None."""
  if era is not None:
    if era not in era_names:
      raise ValueError(f"era {era!r} is not one of the dataset's eras {tuple(era_names)}")
    return np.full(len(inputs), list(era_names).index(era), np.int32)
  if all(x.era is not None for x in inputs):
    return np.asarray([x.era for x in inputs], np.int32)
  return None


def _predicted_eras(workdir: str | os.PathLike, mels: np.ndarray) -> list[str] | None:
  """Era names the cached era classifier hears in the mels; None when there is no classifier."""
  try:
    classifier = inference.load_era_classifier(workdir_lib.Workdir(workdir).era_classifier)
  except FileNotFoundError:
    logging.info(
      'No era classifier in %s (the evaluation job trains one): showing labels only.', workdir
    )
    return None
  return [classifier.era_names[i] for i in classifier.predict(mels)]


def generate(
  workdir: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  images_dir: str | os.PathLike | None = None,
  split: str | None = None,
  checkpoint: str | int = 'latest',
  max_examples: int | None = None,
  seed: int = 0,
  griffin_lim_iters: int = 64,
  batch_size: int = DEFAULT_BATCH_SIZE,
  era: str | None = None,
) -> dict[str, Any]:
  """Turn a folder of images or a dataset split into WAVs, spectrogram PNGs and index.html.

  `era` (a name from the dataset's eras) conditions an era-conditioned generator on images from a
  folder; split examples use their own label.

  Returns {'index_html', 'manifest', 'out_dir', 'step', 'count', 'skipped': [(path, reason)]}.
  """
  if (images_dir is None) == (split is None):
    raise ValueError('give exactly one of images_dir= and split=')
  work, out = workdir_lib.as_path(workdir), workdir_lib.as_path(out_dir)
  generator = inference.load_generator(work, checkpoint)
  params, era_names = generator.meta.mel_params, generator.meta.era_names
  if images_dir is not None:
    inputs, skipped = read_image_folder(images_dir, generator.image_size, max_examples)
  elif split is not None:
    inputs, skipped = read_split(generator.config.data_dir, split, max_examples), []
  else:  # excluded by the check above
    raise ValueError('give exactly one of images_dir= and split=')
  if not inputs:
    raise ValueError(
      f'nothing to generate from {images_dir or split!r}: '
      f'{len(skipped)} file(s) skipped, none readable'
    )
  logging.info(
    'Generating music for %d painting(s) with the step-%d generator.', len(inputs), generator.step
  )

  mesh = generator.mesh
  eras = _conditioning_eras(inputs, era, era_names)
  mels = generator.generate(
    np.stack([x.painting for x in inputs]), eras, batch_size=batch_size, progress='generate mels'
  )
  clips = inference.mels_to_audio(
    mels, params, n_iter=griffin_lim_iters, seed=seed, batch_size=batch_size, mesh=mesh
  )
  references = None
  if split is not None:
    references = inference.mels_to_audio(
      np.stack([_reference_mel(x) for x in inputs]),
      params,
      n_iter=griffin_lim_iters,
      seed=seed,
      batch_size=batch_size,
      mesh=mesh,
    )
  predicted = _predicted_eras(work, mels)

  out.mkdir(parents=True, exist_ok=True)
  entries = []
  for i, x in enumerate(inputs):
    entries.append(
      _write_outputs(
        out,
        x,
        mel=mels[i],
        clip=clips[i],
        reference_clip=None if references is None else references[i],
        params=params,
        era_names=era_names,
        predicted_era=None if predicted is None else predicted[i],
      )
    )
  title = f'Pix2Pitch: {"split " + split if split else images_dir}'
  subtitle = (
    f'{work} · step {generator.step} · {len(entries)} clip(s) of '
    f'{params.clip_seconds:g} s at {params.sample_rate} Hz · Griffin-Lim '
    f'{griffin_lim_iters} iterations · seed {seed}'
  )
  index_html = gallery.write_gallery(out, entries, title=title, subtitle=subtitle, skipped=skipped)
  manifest = out / workdir_lib.GALLERY_MANIFEST
  manifest.write_text(
    json.dumps(
      {
        'workdir': os.fspath(work),
        'step': generator.step,
        'seed': seed,
        'griffin_lim_iters': griffin_lim_iters,
        'mel_params': params.to_dict(),
        'entries': [dataclasses.asdict(e) for e in entries],
        'skipped': [{'path': p, 'reason': r} for p, r in skipped],
      },
      indent=2,
    )
  )
  return {
    'index_html': str(index_html),
    'manifest': str(manifest),
    'out_dir': os.fspath(out),
    'step': generator.step,
    'count': len(entries),
    'skipped': skipped,
  }


def _write_outputs(
  out_dir: epath.Path,
  x: GenerationInput,
  *,
  mel: np.ndarray,
  clip: np.ndarray,
  reference_clip: np.ndarray | None,
  params: spectrogram.MelParams,
  era_names: Sequence[str],
  predicted_era: str | None,
) -> gallery.GalleryEntry:
  files = {
    'painting': f'{x.stem}_painting.png',
    'spectrogram': f'{x.stem}_mel.png',
    'audio': f'{x.stem}.wav',
  }
  gallery.save_png(x.painting, out_dir / files['painting'])
  gallery.save_mel_png(mel, out_dir / files['spectrogram'])
  wav.write_wav(out_dir / files['audio'], clip, params.sample_rate)
  if reference_clip is not None:
    files['reference_audio'] = f'{x.stem}_reference.wav'
    files['reference_spectrogram'] = f'{x.stem}_reference_mel.png'
    wav.write_wav(out_dir / files['reference_audio'], reference_clip, params.sample_rate)
    gallery.save_mel_png(_reference_mel(x), out_dir / files['reference_spectrogram'])
  return gallery.GalleryEntry(
    title=x.stem,
    source=x.source,
    era_predicted=predicted_era,
    era_label=None if x.era is None else era_names[x.era],
    **files,
  )
