"""Unpaired datasets from real sources: any folder of images and any music source, no pairing.

    report = build_unpaired_from_sources('photos/', 'maestro-v3.0.0/', 'data/unpaired')

For a model that learns without pairs (the CycleGAN of DESIGN.md §6), a dataset is two sides,
pictures and mel clips. It is written in the ordinary record format (`painting` and `mel` in
every record, `records.make_features`), so every reader works on it, but the pairing inside a
record carries no meaning, and `pix2pitch_meta.json` says so: `extra.paired` is false.

- Images: any layout `paintings.scan_paintings` reads; in a plain folder, images at the root count
  too. Labels and eras are not used: nothing maps to no era.
- Music: any layout `music.scan_music` reads (plain folders, MAESTRO, MusicNet, MIDI rendered
  with FluidSynth), cut into clips of `clip_seconds` (1 s by default, as in the reference; 10 s
  works) every `clip_hop_seconds`, silent clips dropped, as for paired builds.
- Splits: images and recordings are split by the stable hash of their id (a recording with all
  its clips in one split), with `val_fraction` and `test_fraction`.
- Every image is decoded once up front (in the workers), so an unreadable one is reported once,
  with its reason, and never reaches a record; recordings are probed as in paired builds.
- Records: per split, the images and the clips are shuffled independently (with `seed`) and the
  shorter side is repeated, in its shuffled order, until it matches the longer: a split has
  max(images, clips) records. `extra.unpaired.distinct` gives the distinct images and clips of
  each split, `extra.unpaired.fill` the rule. The class label (`era`) is the single class 'all'.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from data_prep import builder, clips, eras, music, paintings, pairing, workers
from data_prep import report as report_lib

ERA_NAMES = ('all',)
DEFAULT_CLIP_SECONDS = 1.0
FILL = (
  'per split, images and clips are shuffled independently and the shorter side is repeated in '
  'its shuffled order until it matches the longer: max(images, clips) records'
)
_PROBE_SIZE = 16  # decoding at a small size still reads every byte (JPEG: a scaled-down draft)


def build_unpaired_from_sources(
  paintings_dir: str | os.PathLike,
  music_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  **options,
) -> dict:
  """Build an unpaired dataset (see the module docstring); returns the report."""
  options.setdefault('clip_seconds', DEFAULT_CLIP_SECONDS)
  opts = builder.make_options(**options)
  tables = eras.load_tables(opts.era_overrides)
  pscan = paintings.scan_paintings(
    paintings_dir, opts.paintings_format, tables.artgan_styles, labelled=False
  )
  mscan = music.scan_music(music_dir, opts.music_format, labelled=False)
  items = pscan.items[: opts.max_paintings]
  fingerprint = builder.fingerprint(
    opts,
    'unpaired',
    [builder._file_key(i.painting_id, i.ref) for i in items],
    [builder._file_key(r.source_id, r) for r in mscan.recordings],
  )
  workspace, done = builder.open_workspace(out_dir, fingerprint, opts.overwrite)
  if done is not None:
    return done
  n_workers = workers.resolve_workers(opts.workers)
  start = time.perf_counter()
  skipped = builder._ignored_list(pscan.ignored, 'painting file') + builder._ignored_list(
    mscan.ignored, 'music file'
  )
  _check_strict(opts, skipped)

  image_reasons = _probe_images(items, opts, workspace, n_workers)
  skipped += [
    dict(kind='painting', id=i.painting_id, reason=image_reasons[i.painting_id])
    for i in items
    if image_reasons[i.painting_id]
  ]
  usable_images = [i for i in items if not image_reasons[i.painting_id]]
  sources = builder.SourceSet(
    name=f'unpaired:{pscan.format}+{mscan.format}',
    formats={'paintings': pscan.format, 'music': mscan.format},
    paintings=[],
    recordings=mscan.recordings,
    painting_era=lambda label: ERA_NAMES[0],
    recording_era=lambda label: ERA_NAMES[0],
  )
  probes = builder._probe(
    [(r, ERA_NAMES[0]) for r in mscan.recordings], sources, opts, workspace, n_workers
  )
  skipped += [
    dict(kind='recording', id=r.source_id, reason=probes[r.source_id].probe.reason)
    for r in mscan.recordings
    if not probes[r.source_id].probe.ok
  ]
  _check_strict(opts, skipped)
  usable_recordings = [r for r in mscan.recordings if probes[r.source_id].probe.ok]

  image_split = pairing.assign_splits(
    {'all': [i.painting_id for i in usable_images]}, opts.val_fraction, opts.test_fraction
  )
  recording_split = pairing.assign_splits(
    {'all': [r.source_id for r in usable_recordings]}, opts.val_fraction, opts.test_fraction
  )
  examples: dict[str, list[pairing.Example]] = {}
  distinct: dict[str, dict[str, int]] = {}
  for split in pairing.SPLITS:
    split_images = [i for i in usable_images if image_split[i.painting_id] == split]
    split_clips = [
      (r.source_id, clips.AudioClip(probes[r.source_id].audio_path, offset, probe.gain), offset)
      for r in usable_recordings
      if recording_split[r.source_id] == split
      for probe in [probes[r.source_id].probe]
      for offset in probe.offsets_s
    ]
    if not split_images or not split_clips:
      if split_images or split_clips:
        skipped.append(
          dict(
            kind='split',
            id=split,
            reason=f'one side empty: {len(split_images)} images, {len(split_clips)} clips',
          )
        )
      continue
    distinct[split] = dict(paintings=len(split_images), clips=len(split_clips))
    examples[split] = _fill(split_images, split_clips, split, opts.seed)
  if 'train' not in examples:
    raise builder.BuildError(
      f'nothing to write: the train split needs at least one readable image and one usable '
      f'clip (found {len(usable_images)} images, {len(usable_recordings)} recordings; skipped: '
      f'{report_lib.reason_counts(skipped)})'
    )
  inputs = dict(
    paintings_found=len(pscan.items),
    paintings_used=len(usable_images),
    recordings_found=len(mscan.recordings),
    recordings_used=len(usable_recordings),
    clips_available=sum(len(probes[r.source_id].probe.offsets_s) for r in usable_recordings),
    clips_skipped_silent=sum(p.probe.silent_clips for p in probes.values()),
  )
  return builder.write_dataset(
    workspace,
    examples,
    opts,
    era_names=ERA_NAMES,
    source=sources.name,
    formats=sources.formats,
    fingerprint=fingerprint,
    skipped=skipped,
    extra=dict(inputs=dict(inputs, distinct=distinct)),
    n_workers=n_workers,
    start=start,
    meta_extra=dict(paired=False, unpaired=dict(distinct=distinct, fill=FILL)),
    description='Unpaired images and log-mel clips: the pairing inside a record means nothing.',
  )


def _fill(
  images: Sequence[paintings.PaintingItem],
  split_clips: Sequence[tuple[str, clips.AudioClip, float]],
  split: str,
  seed: int,
) -> list[pairing.Example]:
  """max(len) records: both sides shuffled independently, the shorter one cycled."""
  image_order = _shuffled(len(images), seed, f'{split}/images')
  clip_order = _shuffled(len(split_clips), seed, f'{split}/clips')
  out = []
  for k in range(max(len(images), len(split_clips))):
    image = images[image_order[k % len(images)]]
    source_id, clip, offset = split_clips[clip_order[k % len(split_clips)]]
    out.append(pairing.Example(image.painting_id, image.ref, source_id, clip, offset, 0))
  return out


def _shuffled(n: int, seed: int, what: str) -> np.ndarray:
  return np.random.default_rng([seed, pairing.stable_hash(what, 'unpaired') % 2**32]).permutation(n)


@dataclasses.dataclass(frozen=True)
class ImageProbeJob:
  painting_id: str
  ref: Any  # paintings.FilePainting | paintings.ParquetPainting
  mode: str


def probe_image(job: ImageProbeJob) -> str:
  """'' when the image decodes, else the reason (the report's wording for paired builds)."""
  try:
    job.ref.load(_PROBE_SIZE, job.mode)
  except OSError as e:  # images.UnreadableImageError, FileNotFoundError
    return f'painting unreadable: {e}'
  return ''


def _probe_images(items, opts, workspace: builder.Workspace, n_workers: int) -> dict[str, str]:
  """painting_id -> '' or the reason it cannot be read; cached in the workspace for re-runs."""
  path = workspace.path / 'image_probes.json'
  cached: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
  todo = [ImageProbeJob(i.painting_id, i.ref, opts.image_mode) for i in items]
  todo = [job for job in todo if job.painting_id not in cached]
  reasons = workers.parallel_map(
    probe_image, todo, n_workers, desc='probe images', unit='image', progress=opts.progress
  )
  cached.update({job.painting_id: reason for job, reason in zip(todo, reasons)})
  builder._write_json(path, cached)
  return cached


def _check_strict(opts: builder.BuildOptions, skipped: list[dict]) -> None:
  if opts.strict and skipped:
    raise builder.BuildError(f'{len(skipped)} inputs skipped under --strict, first: {skipped[0]}')
