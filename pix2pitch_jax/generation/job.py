"""Batch generation: any images -> mel images -> WAV files, spectrogram PNGs and a gallery page.

    generate(workdir, out_dir, images_dir='photos/')      # any images, any size or mode
    generate(workdir, out_dir, split='test')              # a dataset split, with references

Output (flat, one stem per input):
    <out>/<stem>.wav             generated audio (Griffin-Lim of the generated mel)
    <out>/<stem>_<vocoder>.wav   the same mel through another vocoder (`vocoders=`: midi, neural)
    <out>/<stem>.mid             the MIDI route's notes, to open in a DAW or notation program
    <out>/<stem>_mel.png         the generated mel, colour-mapped, low frequencies at the bottom
    <out>/<stem>_painting.png    the painting as the model saw it (square, S x S)
    <out>/<stem>_reference.wav   split only: Griffin-Lim of the dataset's mel, for comparison
    <out>/<stem>_reference_mel.png
    <out>/<stem>_compare.wav     with compare_workdir=: the same painting through a second model
    <out>/<stem>_compare_mel.png   (e.g. the unpaired CycleGAN beside pix2pix), first vocoder
    <out>/index.html             the listening page (gallery.py)
    <out>/manifest.json          what was generated from what, and what was skipped and why
    <out>/.generation/<key>/     what is finished: one record per chunk of items (see below)

Inputs are numbered in listing order (every file of the folder, sorted; or the split's examples)
and input i gets its Griffin-Lim phase from fold_in(seed, i): the audio of an input depends on the
seed, not on the batch or the host that computed it. Each mel goes through every vocoder asked for
(`vocoders.py`: griffin_lim, midi, neural); the page shows one player per rendering, and the
manifest says which vocoder and soundfont made which file. Generation and Griffin-Lim run in
fixed-size batches sharded over the process's devices (`inference`).

On many hosts (`jax.distributed`, started by the main) every process lists the same inputs, takes
inputs i with i % process_count == process_index and writes their files into the shared output
folder; then process 0 merges the records into one manifest and one page. A record lists the
items of a chunk once all their files are in place (each file is written under a temporary name
and renamed), so a run that is killed and started again, with any number of hosts, skips every
finished input and redoes at most the chunk each host was in. Records live under a key of the
settings (checkpoint step, seed, Griffin-Lim iterations, vocoders, era, source): other settings
start over.

The workdir, the images folder and the output folder may be local or URIs
(`gs://bucket/...`): every file goes through `etils.epath`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from tqdm import tqdm

from pix2pitch_jax import inference, vocoders
from pix2pitch_jax.audio import spectrogram, wav
from pix2pitch_jax.core import cli
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import batching, images, records
from pix2pitch_jax.generation import gallery
from pix2pitch_jax.runtime import sharding

DEFAULT_BATCH_SIZE = inference.DEFAULT_BATCH_SIZE
RECORDS_DIR = '.generation'
CHUNK_BATCHES = 4  # batches per record: how much work a kill can cost


# ------------------------------------------------------------------------------------------------
# Inputs.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedInput:
  """One input of the listing, before anything is decoded."""

  index: int  # position in the listing: its Griffin-Lim phase is fold_in(seed, index)
  stem: str  # file-name stem of its outputs, unique in the output folder
  source: str  # the input file, or the painting id of a split example


@dataclasses.dataclass
class GenerationInput:
  """One painting to turn into music, wherever it came from."""

  stem: str
  source: str
  painting: np.ndarray  # uint8 (S, S, 3)
  era: int | None = None  # the dataset label, for split examples
  reference_mel: np.ndarray | None = None  # the dataset's mel, for split examples
  index: int = 0


def _safe_stem(text: str, taken: set[str]) -> str:
  stem = re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('._') or 'input'
  stem = stem[:80]
  unique, n = stem, 1
  while unique in taken:
    n += 1
    unique = f'{stem}_{n}'
  taken.add(unique)
  return unique


def _image_files(images_dir: str | os.PathLike) -> tuple[epath.Path, list[epath.Path]]:
  root = workdir_lib.as_path(images_dir)
  if not root.is_dir():
    raise FileNotFoundError(f'--images={images_dir} is not a directory')
  hidden = lambda p: any(part.startswith('.') for part in p.relative_to(root).parts)
  # walk(), not rglob: epath refuses recursive patterns; walk() lists a local folder or a bucket.
  found = (folder / name for folder, _, names in root.walk() for name in names)
  return root, sorted((p for p in found if not hidden(p)), key=lambda p: p.relative_to(root).parts)


def plan_image_folder(
  images_dir: str | os.PathLike, image_size: int, max_examples: int | None = None
) -> list[PlannedInput]:
  """Every file under `images_dir` (recursively, hidden ones excepted), numbered in order.

  Files that turn out not to be images are skipped when they are read. With `max_examples` the
  listing ends at the N-th file that decodes (each process finds it by decoding in order), so a
  trial run is a prefix of the full run and a later full run reuses its outputs.
  """
  root, files = _image_files(images_dir)
  if max_examples is not None:
    readable, end = 0, 0
    while end < len(files) and readable < max_examples:
      readable += _load_image(files[end], image_size)[0] is not None
      end += 1
    files = files[:end]
  taken: set[str] = set()
  return [
    PlannedInput(i, _safe_stem(str(path.relative_to(root).with_suffix('')), taken), str(path))
    for i, path in enumerate(files)
  ]


def plan_split(
  data_dir: str | os.PathLike, split: str, max_examples: int | None = None
) -> list[PlannedInput]:
  """The examples of a dataset split (or its first `max_examples`), named by painting id."""
  ids = records.read_split(data_dir, split, max_examples=max_examples, fields=('painting_id',))
  taken: set[str] = set()
  return [PlannedInput(i, _safe_stem(pid, taken), pid) for i, pid in enumerate(ids['painting_id'])]


def _load_image(path: str | os.PathLike, image_size: int) -> tuple[np.ndarray | None, str]:
  """The painting, or None and why the file cannot be one."""
  try:
    # Read through epath, so a folder in a bucket works like a local one.
    return images.load_painting(workdir_lib.as_path(path).read_bytes(), image_size), ''
  except (OSError, ValueError) as e:  # images.UnreadableImageError is an OSError
    return None, f'{type(e).__name__}: {e}'


def _load_chunk(
  chunk: Sequence[PlannedInput], *, source: records.DecodedSource | None, image_size: int
) -> tuple[list[GenerationInput], list[tuple[PlannedInput, str]]]:
  """Decode a chunk of the listing (from the split `source`, else from image files): its inputs
  and its unreadable files with the reason."""
  inputs, skipped = [], []
  for item in chunk:
    if source is not None:
      ex = source[item.index]
      inputs.append(
        GenerationInput(
          item.stem,
          item.source,
          np.asarray(ex['painting'], np.uint8),
          int(ex['era']),
          np.asarray(ex['mel'], np.float32),
          item.index,
        )
      )
      continue
    painting, reason = _load_image(item.source, image_size)
    if painting is None:
      logging.warning('Skipping %s: %s', item.source, reason)
      skipped.append((item, reason))
    else:
      inputs.append(GenerationInput(item.stem, item.source, painting, index=item.index))
  return inputs, skipped


# ------------------------------------------------------------------------------------------------
# Records of finished items.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Records:
  """What the records of one settings key say: finished entries, skipped inputs, write counts."""

  entries: dict[str, tuple[str, dict[str, Any]]]  # stem -> (source, GalleryEntry fields)
  skipped: dict[str, tuple[str, str]]  # stem -> (source, reason)
  writes: dict[str, int]  # stem -> how many records list it as generated

  def done(self, item: PlannedInput) -> bool:
    found = self.entries.get(item.stem)
    return found is not None and found[0] == item.source


def read_records(folder: str | os.PathLike) -> Records:
  """Every record in `folder` (a settings key under `<out>/.generation/`)."""
  out = Records({}, {}, {})
  path_of_folder = workdir_lib.as_path(folder)
  if not path_of_folder.exists():
    return out
  for path in sorted(path_of_folder.glob('chunk-*.json')):
    record = json.loads(path.read_text())
    for item in record['entries']:
      out.entries[item['stem']] = (item['source'], item['entry'])
      out.writes[item['stem']] = out.writes.get(item['stem'], 0) + 1
    for item in record['skipped']:
      out.skipped[item['stem']] = (item['source'], item['reason'])
  return out


def _write_record(
  folder: epath.Path,
  entries: Sequence[tuple[GenerationInput, gallery.GalleryEntry]],
  skipped: Sequence[tuple[PlannedInput, str]],
) -> None:
  stems = [x.stem for x, _ in entries] + [item.stem for item, _ in skipped]
  # Named by content: a later run never lists an item again, so never reuses a name.
  name = f'chunk-{hashlib.sha1(json.dumps(stems).encode()).hexdigest()[:20]}.json'
  record = {
    'process': jax.process_index(),
    'processes': jax.process_count(),
    'entries': [
      {'stem': x.stem, 'source': x.source, 'index': x.index, 'entry': dataclasses.asdict(e)}
      for x, e in entries
    ],
    'skipped': [
      {'stem': item.stem, 'source': item.source, 'index': item.index, 'reason': reason}
      for item, reason in skipped
    ],
  }
  _write_atomic(folder / name, json.dumps(record, indent=1).encode())


def _write_atomic(path: epath.Path, data: bytes) -> None:
  """No half-written file after a kill; one temporary name per process (workdir_lib)."""
  workdir_lib.write_bytes_atomic(path, data, tmp_suffix=f'.tmp-{jax.process_index()}')


def _settings_key(settings: dict[str, Any]) -> str:
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


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


def _era_classifier(workdir: str | os.PathLike):
  """The era classifier the evaluation job cached in the workdir, or None."""
  try:
    return inference.load_era_classifier(workdir_lib.Workdir(workdir).era_classifier)
  except FileNotFoundError:
    logging.info(
      'No era classifier in %s (the evaluation job trains one): showing labels only.', workdir
    )
    return None


@dataclasses.dataclass(frozen=True)
class _Settings:
  """What every chunk of a run is generated with."""

  workdir: str
  generator: inference.LoadedGenerator
  classifier: Any
  out_dir: epath.Path
  records_dir: epath.Path
  seed: int
  griffin_lim_iters: int
  batch_size: int
  era: str | None
  vocoders: dict[str, vocoders.Vocoder]  # name -> built vocoder, in the order asked for
  model: str = ''  # the generator's label on the page, when it is compared
  compare: Any = None  # a second generator (inference.LoadedGenerator) for every painting
  compare_workdir: str = ''
  compare_model: str = ''


def model_label(generator: Any, workdir: str | os.PathLike) -> str:
  """'pix2pix p256 @ 1000': how the page and the manifest name a model beside another."""
  family = getattr(generator.config, 'family', 'pix2pix')
  return f'{family} {workdir_lib.as_path(workdir).name} @ {generator.step}'


def _load_compare(
  compare_workdir: str | os.PathLike | None,
  generator: Any,
  workdir: str | os.PathLike,
  weights: str,
) -> dict[str, Any]:
  """The `_Settings` fields of a comparison with `compare_workdir`'s generator (checked to draw
  mels the main one's audio fits), or {} without one."""
  if compare_workdir is None:
    return {}
  compare = inference.load_generator(str(compare_workdir), weights=weights)
  if compare.meta.mel_params != generator.meta.mel_params:
    raise cli.UserInputError(
      f'--compare_workdir={compare_workdir} makes mels with other parameters than --workdir '
      '(image size, sample rate or clip length): their music cannot be compared'
    )
  if compare.era_conditioned:
    raise cli.UserInputError(
      f'--compare_workdir={compare_workdir} is era-conditioned: give it as --workdir'
    )
  return dict(
    model=model_label(generator, workdir),
    compare=compare,
    compare_workdir=os.fspath(workdir_lib.as_path(compare_workdir)),
    compare_model=model_label(compare, compare_workdir),
  )


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
  weights: str = 'ema',
  vocoder_names: Sequence[str] = (vocoders.DEFAULT,),
  vocoder_workdir: str | os.PathLike | None = None,
  compare_workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
  """Turn a folder of images or a dataset split into WAVs, spectrogram PNGs and index.html.

  `era` (a name from the dataset's eras) conditions an era-conditioned generator on images from a
  folder; split examples use their own label. `batch_size` is per process (rounded up to its
  device count). `weights`: the generator's moving average ('ema', when the run kept one) or its
  weights ('raw'); `inference.load_generator`. `vocoder_names`: every way to turn the mels into
  sound (`vocoders.py`); the first is the card's main player; `vocoder_workdir`: the trained
  neural vocoder (default `<workdir>/vocoder`). `compare_workdir`: a second run (its newest
  checkpoint; e.g. a CycleGAN beside a pix2pix one) whose mel of every painting goes on the card
  beside the first, through the first vocoder, each labelled with its model (`model_label`). In a
  multi-process job every process calls this with the same arguments.

  Returns {'index_html', 'manifest', 'out_dir', 'step', 'count', 'skipped': [(path, reason)],
  'generated_now': inputs this process generated in this call (finished ones are skipped)}.
  """
  if (images_dir is None) == (split is None):
    raise ValueError('give exactly one of images_dir= and split=')
  vocoder_names = vocoders.check_names(vocoder_names)
  if images_dir is not None:
    _image_files(images_dir)  # a missing folder is an error before any restore
  generator = inference.load_generator(str(workdir), checkpoint, weights=weights)
  era_names = generator.meta.era_names
  if era is not None and era not in era_names:
    raise ValueError(f"era {era!r} is not one of the dataset's eras {tuple(era_names)}")
  if images_dir is not None and era is None and generator.era_conditioned:
    raise ValueError(f'this generator is era-conditioned: give an era, one of {tuple(era_names)}')
  compared = _load_compare(compare_workdir, generator, workdir, weights)  # {} without one
  data_dir = str(generator.config.data_dir)
  if images_dir is not None:
    plan = plan_image_folder(images_dir, generator.image_size, max_examples)
    source = {'images': os.fspath(workdir_lib.as_path(images_dir))}
  elif split is not None:
    plan = plan_split(data_dir, split, max_examples)
    source = {'split': split, 'data_dir': data_dir}
  else:  # excluded by the check above
    raise ValueError('give exactly one of images_dir= and split=')
  context = vocoders.VocoderContext.for_generator(
    generator,
    workdir=workdir,
    seed=seed,
    griffin_lim_iters=griffin_lim_iters,
    batch_size=batch_size,
    vocoder_workdir=vocoder_workdir,
  )
  # Built before anything is generated: a missing vocoder or soundfont stops here, in one line.
  built = {name: vocoders.build(name, context) for name in vocoder_names}
  out = workdir_lib.as_path(out_dir)
  key = _settings_key(
    dict(
      source,
      workdir=os.fspath(workdir_lib.as_path(workdir)),
      step=generator.step,
      weights=generator.weights,
      seed=seed,
      griffin_lim_iters=griffin_lim_iters,
      era=era,
      mel_params=generator.meta.mel_params.to_dict(),
      vocoders={name: v.about for name, v in built.items()},
      **({'compare': [compared['compare_workdir'], compared['compare'].step]} if compared else {}),
    )
  )
  settings = _Settings(
    workdir=os.fspath(workdir),
    generator=generator,
    classifier=_era_classifier(workdir),
    out_dir=out,
    records_dir=out / RECORDS_DIR / key,
    seed=seed,
    griffin_lim_iters=griffin_lim_iters,
    batch_size=batch_size,
    era=era,
    vocoders=built,
    **compared,
  )
  generated = _generate_share(settings, plan, split=split)
  sharding.barrier('generation: every share written')
  title = f'Pix2Pitch: {"split " + split if split else images_dir}'
  result = _merge(settings, plan, what=images_dir or split, title=title)
  return dict(result, generated_now=generated)


def _generate_share(s: _Settings, plan: Sequence[PlannedInput], *, split: str | None) -> int:
  """Generate this process's unfinished inputs of `plan`, a record per chunk; how many."""
  s.records_dir.mkdir(parents=True, exist_ok=True)
  finished = read_records(s.records_dir)
  todo = [plan[i] for i in sharding.host_rows(len(plan)) if not finished.done(plan[i])]
  generator = s.generator
  logging.info(
    'Generating music for %d of %d input(s) (process %d of %d) with the step-%d generator.',
    len(todo),
    len(plan),
    jax.process_index(),
    jax.process_count(),
    generator.step,
  )
  source = None if split is None else records.open_split(generator.config.data_dir, split)
  devices = 1 if generator.mesh is None else generator.mesh.size
  chunk_size = CHUNK_BATCHES * batching.round_up(s.batch_size, devices)
  with tqdm(total=len(todo), desc='generate', unit='input', disable=not todo) as bar:
    for start in range(0, len(todo), chunk_size):
      chunk = todo[start : start + chunk_size]
      inputs, skipped = _load_chunk(chunk, source=source, image_size=generator.image_size)
      entries = _generate_chunk(s, inputs) if inputs else []
      _write_record(s.records_dir, entries, skipped)
      bar.update(len(chunk))
  return len(todo)


def _generate_chunk(
  s: _Settings, inputs: Sequence[GenerationInput]
) -> list[tuple[GenerationInput, gallery.GalleryEntry]]:
  """Generate and write the files of a chunk of inputs; their gallery entries."""
  generator, params = s.generator, s.generator.meta.mel_params
  eras = _conditioning_eras(inputs, s.era, generator.meta.era_names)
  mels = generator.generate(np.stack([x.painting for x in inputs]), eras, batch_size=s.batch_size)
  indices = np.asarray([x.index for x in inputs])
  renderings = {name: v.render(mels, indices) for name, v in s.vocoders.items()}
  audio_kw: dict[str, Any] = dict(
    n_iter=s.griffin_lim_iters,
    seed=s.seed,
    batch_size=s.batch_size,
    mesh=generator.mesh,
    indices=indices,
    progress=None,
  )
  references = None
  if inputs[0].reference_mel is not None:
    references = inference.mels_to_audio(
      np.stack([_reference_mel(x) for x in inputs]), params, **audio_kw
    )
  compared = None
  if s.compare is not None:
    paintings = np.stack([x.painting for x in inputs])
    compare_mels = s.compare.generate(paintings, batch_size=s.batch_size)
    first = next(iter(s.vocoders))
    compared = (first, compare_mels, s.vocoders[first].render(compare_mels, indices).clips)
  predicted = None
  if s.classifier is not None:
    predicted = [s.classifier.era_names[i] for i in s.classifier.predict(mels)]
  entries = [
    (
      x,
      _write_outputs(
        s.out_dir,
        x,
        mel=mels[i],
        renderings={name: _one_clip(r, i) for name, r in renderings.items()},
        reference_clip=None if references is None else references[i],
        params=params,
        era_names=generator.meta.era_names,
        predicted_era=None if predicted is None else predicted[i],
      ),
    )
    for i, x in enumerate(inputs)
  ]
  if compared is None:
    return entries
  return [(x, _write_comparison(s, x, e, compared, i)) for i, (x, e) in enumerate(entries)]


def _write_comparison(
  s: _Settings, x: GenerationInput, entry: gallery.GalleryEntry, compared, i: int
) -> gallery.GalleryEntry:
  """Write the second model's mel and audio of input `x`; its entry with both models named."""
  vocoder, mels, clips = compared
  files = {
    'spectrogram': f'{x.stem}_compare_mel.png',
    'audio': vocoders.audio_file_name(f'{x.stem}_compare', vocoder),
  }
  _write_atomic(
    s.out_dir / files['spectrogram'], images.png_bytes(spectrogram.colorize_mel(mels[i]))
  )
  sample_rate = s.generator.meta.mel_params.sample_rate
  _write_atomic(s.out_dir / files['audio'], wav.wav_bytes(clips[i], sample_rate))
  comparison = dict(files, model=s.compare_model, workdir=s.compare_workdir, vocoder=vocoder)
  return dataclasses.replace(entry, model=s.model, comparisons=[comparison])


def _one_clip(rendering: vocoders.Rendering, i: int) -> tuple[np.ndarray, bytes | None]:
  """Clip `i` of a vocoder's batch, and its MIDI file when the vocoder made one."""
  return rendering.clips[i], None if rendering.midi is None else rendering.midi[i]


def _merge(s: _Settings, plan: Sequence[PlannedInput], *, what: Any, title: str) -> dict[str, Any]:
  """One manifest and one page for the whole listing, from every process's records; written by
  process 0, returned by every process."""
  found = read_records(s.records_dir)
  entries: list[gallery.GalleryEntry] = []
  skipped: list[tuple[str, str]] = []
  missing = []
  for item in plan:
    if found.done(item):
      entries.append(gallery.GalleryEntry(**found.entries[item.stem][1]))
    elif item.stem in found.skipped:
      skipped.append((item.source, found.skipped[item.stem][1]))
    else:
      missing.append(item.source)
  if missing:
    raise RuntimeError(
      f'{len(missing)} input(s) were neither generated nor skipped (first: {missing[0]}); '
      f'records in {s.records_dir}: did a process fail?'
    )
  if not entries:
    raise ValueError(
      f'nothing to generate from {what!r}: {len(skipped)} file(s) skipped, none readable'
    )
  generator, params = s.generator, s.generator.meta.mel_params
  manifest = s.out_dir / workdir_lib.GALLERY_MANIFEST
  index_html = s.out_dir / workdir_lib.GALLERY_INDEX
  if sharding.is_main_process():
    subtitle = (
      f'{s.workdir} · step {generator.step} ({generator.weights} weights) · {len(entries)} '
      f'clip(s) of {params.clip_seconds:g} s at {params.sample_rate} Hz · '
      f'{" · ".join(_vocoder_label(n, v.about) for n, v in s.vocoders.items())} · seed {s.seed}'
    )
    if s.compare is not None:
      subtitle += f' · {s.model} beside {s.compare_model}'
    page = gallery.render_gallery(entries, title=title, subtitle=subtitle, skipped=skipped)
    _write_atomic(index_html, page.encode('utf-8'))
    manifest_data = {
      'workdir': s.workdir,
      'step': generator.step,
      'weights': generator.weights,
      'seed': s.seed,
      'griffin_lim_iters': s.griffin_lim_iters,
      # Which vocoder (and soundfont) made which file: entries list their renderings by name.
      'vocoders': {name: v.about for name, v in s.vocoders.items()},
      'mel_params': params.to_dict(),
      **({} if s.compare is None else _compare_manifest(s)),
      'entries': [dataclasses.asdict(e) for e in entries],
      'skipped': [{'path': p, 'reason': r} for p, r in skipped],
    }
    _write_atomic(manifest, json.dumps(manifest_data, indent=2).encode())
    for stale in (s.out_dir / RECORDS_DIR).iterdir():
      if stale.name != s.records_dir.name:  # records of other settings: their files are gone
        stale.rmtree()
  return {
    'index_html': os.fspath(index_html),
    'manifest': os.fspath(manifest),
    'out_dir': os.fspath(s.out_dir),
    'step': generator.step,
    'count': len(entries),
    'skipped': skipped,
  }


def _write_outputs(
  out_dir: epath.Path,
  x: GenerationInput,
  *,
  mel: np.ndarray,
  renderings: dict[str, tuple[np.ndarray, bytes | None]],
  reference_clip: np.ndarray | None,
  params: spectrogram.MelParams,
  era_names: Sequence[str],
  predicted_era: str | None,
) -> gallery.GalleryEntry:
  files: dict[str, Any] = {'painting': f'{x.stem}_painting.png', 'spectrogram': f'{x.stem}_mel.png'}
  contents = {
    'painting': images.png_bytes(x.painting),
    'spectrogram': images.png_bytes(spectrogram.colorize_mel(mel)),
  }
  played = []
  for name, (clip, midi) in renderings.items():
    rendering = {'vocoder': name, 'audio': vocoders.audio_file_name(x.stem, name)}
    contents[rendering['audio']] = wav.wav_bytes(clip, params.sample_rate)
    if midi is not None:
      rendering['midi'] = f'{x.stem}.mid'
      contents[rendering['midi']] = midi
    played.append(rendering)
  files['audio'] = played[0]['audio']
  if reference_clip is not None:
    files['reference_audio'] = f'{x.stem}_reference.wav'
    files['reference_spectrogram'] = f'{x.stem}_reference_mel.png'
    contents['reference_audio'] = wav.wav_bytes(reference_clip, params.sample_rate)
    contents['reference_spectrogram'] = images.png_bytes(
      spectrogram.colorize_mel(_reference_mel(x))
    )
  for name, data in contents.items():
    _write_atomic(out_dir / files.get(name, name), data)
  return gallery.GalleryEntry(
    title=x.stem,
    source=x.source,
    era_predicted=predicted_era,
    era_label=None if x.era is None else era_names[x.era],
    renderings=played,
    **files,
  )


def _compare_manifest(s: _Settings) -> dict[str, Any]:
  """Which model made which mel, when a second model is compared."""
  return {
    'model': s.model,
    'compare': {
      'workdir': s.compare_workdir,
      'model': s.compare_model,
      'step': s.compare.step,
      'weights': s.compare.weights,
    },
  }


def _vocoder_label(name: str, about: dict[str, Any]) -> str:
  """'griffin_lim (64 iterations)', 'midi (FluidR3_GM.sf2)': the page's line about the audio."""
  if 'soundfont' in about:
    return f'{name} ({about["soundfont"]})'
  if 'iterations' in about:
    return f'{name} ({about["iterations"]} iterations)'
  return name
