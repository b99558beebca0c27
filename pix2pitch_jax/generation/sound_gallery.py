"""Sound -> picture cards: a CycleGAN's pictures of a dataset split's clips, on the listening page.

    draw(workdir, out_dir, split='test')   # a cyclegan workdir; e.g. the squiggles test split

Output (flat, one stem per clip, named by its painting id as in `job.plan_split`):
    <out>/<stem>.wav           the clip: the dataset's own audio where it stores it, else
                               Griffin-Lim of the clip's mel (fold_in(seed, i), as generation)
    <out>/<stem>_mel.png       the clip's mel, colour-mapped, low frequencies at the bottom
    <out>/<stem>_picture.png   the picture the model's mel -> picture generator drew of it
    <out>/index.html           the page (gallery.py, cards of direction `sound_to_picture`)
    <out>/manifest.json        what was drawn from what, with which checkpoint

The clips of a split are few and cheap to draw, so there are no records and no resume: on many
hosts every process draws them all and process 0 writes the files. The workdir and the output
folder may be local or URIs (`etils.epath`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from etils import epath

from pix2pitch_jax import inference
from pix2pitch_jax.audio import spectrogram, wav
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import images, records
from pix2pitch_jax.generation import gallery, job
from pix2pitch_jax.models import cyclegan
from pix2pitch_jax.runtime import sharding


def draw(
  workdir: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  split: str = 'test',
  checkpoint: str | int = 'latest',
  max_examples: int | None = None,
  seed: int = 0,
  griffin_lim_iters: int = 64,
  batch_size: int = inference.DEFAULT_BATCH_SIZE,
  weights: str = 'ema',
) -> dict[str, Any]:
  """Draw a picture of every clip of `split` with `workdir`'s sound -> picture generator and write
  the clips, mels, pictures, index.html and manifest.json to `out_dir`.

  Returns {'index_html', 'manifest', 'out_dir', 'step', 'count', 'clip_audio'} ('clip_audio':
  'dataset' or 'griffin_lim', where the players' sound came from).
  """
  translator = inference.load_translator(
    workdir, cyclegan.MEL_TO_PICTURE, checkpoint, weights=weights
  )
  data_dir = str(translator.config.data_dir)
  plan = job.plan_split(data_dir, split, max_examples)
  stores_audio = translator.meta.stores_audio
  fields = ('mel', 'era', 'painting_id') + (('audio',) if stores_audio else ())
  data = records.read_split(data_dir, split, max_examples=max_examples, fields=fields)
  params = translator.meta.mel_params
  mels = data['mel']
  pictures = translator.pictures(mels, batch_size=batch_size, progress='mel -> picture')
  if stores_audio:
    clips = records.pcm_to_audio(data['audio'])
  else:
    clips = inference.mels_to_audio(
      mels,
      params,
      n_iter=griffin_lim_iters,
      seed=seed,
      batch_size=batch_size,
      mesh=translator.mesh,
      progress=None,
    )
  out = workdir_lib.as_path(out_dir)
  entries = [
    gallery.GalleryEntry(
      title=item.stem,
      source=item.source,
      painting=f'{item.stem}_picture.png',
      spectrogram=f'{item.stem}_mel.png',
      audio=f'{item.stem}.wav',
      era_label=translator.meta.era_names[int(data['era'][item.index])],
      direction=gallery.SOUND_TO_PICTURE,
      model=job.model_label(translator, workdir),
    )
    for item in plan
  ]
  clip_audio = 'dataset' if stores_audio else 'griffin_lim'
  manifest = out / workdir_lib.GALLERY_MANIFEST
  index_html = out / workdir_lib.GALLERY_INDEX
  if sharding.is_main_process():
    out.mkdir(parents=True, exist_ok=True)
    for entry, mel, picture, clip in zip(entries, mels, pictures, clips):
      _write(out / entry.spectrogram, images.png_bytes(spectrogram.colorize_mel(mel)))
      _write(out / entry.painting, images.png_bytes(picture))
      _write(out / entry.audio, wav.wav_bytes(clip, params.sample_rate))
    heard = (
      'the clips as stored' if stores_audio else f'Griffin-Lim ({griffin_lim_iters} iterations)'
    )
    subtitle = (
      f'{os.fspath(workdir)} · step {translator.step} ({translator.weights} weights) · sound -> '
      f'picture · {len(entries)} clip(s) of {params.clip_seconds:g} s from split {split} · {heard}'
    )
    page = gallery.render_gallery(
      entries, title=f'Pix2Pitch: pictures of split {split}', subtitle=subtitle
    )
    _write(index_html, page.encode('utf-8'))
    manifest_data = {
      'workdir': os.fspath(workdir),
      'direction': gallery.SOUND_TO_PICTURE,
      'model': job.model_label(translator, workdir),
      'step': translator.step,
      'weights': translator.weights,
      'split': split,
      'data_dir': data_dir,
      'clip_audio': clip_audio,
      'seed': seed,
      'griffin_lim_iters': None if stores_audio else griffin_lim_iters,
      'mel_params': params.to_dict(),
      'entries': [dataclasses.asdict(e) for e in entries],
    }
    _write(manifest, json.dumps(manifest_data, indent=2).encode())
  sharding.barrier('sound gallery written')
  return {
    'index_html': os.fspath(index_html),
    'manifest': os.fspath(manifest),
    'out_dir': os.fspath(out),
    'step': translator.step,
    'count': len(entries),
    'clip_audio': clip_audio,
  }


def _write(path: epath.Path, data: bytes) -> None:
  workdir_lib.write_bytes_atomic(path, data)
