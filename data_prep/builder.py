"""Build a Pix2Pitch dataset: the library behind `python -m data_prep.build`.

    report = build_from_sources('wikiart/', 'maestro-v3.0.0/', 'data/p2p256', clips_per_painting=2)
    report = demos.build_demo('synesthesia', 'data/syn')   # data_prep/demos.py

Stages: scan sources (cheap) -> map labels to eras -> probe recordings in parallel (decode once;
reject bad files with a reason) -> assign splits and pair -> plan shards deterministically ->
write the shards that do not exist yet, in parallel -> TFDS metadata + report.

Resume: the plan depends only on the inputs and options (recorded as a fingerprint in
`<out>/.data_prep/`), so a re-run skips every shard whose final file exists; shards are written
atomically (records.write_shard), so an interrupted run leaves no broken shard. A complete
directory is recognised from its fingerprint and returned without touching any file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from data_prep import clips, eras, midi, music, paintings, pairing, workers
from data_prep import report as report_lib
from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.data import records

WORK_DIR = '.data_prep'


class BuildError(RuntimeError):
  """The build cannot proceed (conflicting output directory, nothing to pair, --strict skip)."""


@dataclasses.dataclass(frozen=True)
class BuildOptions:
  """Every option of a build; the fields after `seed` do not change the dataset's content."""

  image_size: int = 256
  sample_rate: int = 22_050
  clip_seconds: float = 10.0
  n_fft: int | None = None  # None: spectrogram.default_mel_params(image_size, sample_rate)
  fmin: float = 0.0  # lowest mel band edge (Hz)
  fmax: float | None = None  # highest mel band edge (Hz); None: sample_rate / 2
  clip_hop_seconds: float | None = None  # None: clip_seconds (back-to-back clips)
  silence_db: float = -60.0
  max_clips_per_recording: int | None = None
  clips_per_painting: int = 1
  val_fraction: float = 0.1
  test_fraction: float = 0.1
  era_set: str = 'thesis'
  era_overrides: str | None = None
  paintings_format: str = 'auto'
  music_format: str = 'auto'
  image_mode: str = 'crop'
  shard_size: int = 500
  max_paintings: int | None = None
  # Also store each clip's waveform (records.AUDIO_DTYPE PCM) beside its mel: a neural vocoder's
  # training data.
  store_audio: bool = False
  seed: int = 0
  workers: int | None = None
  strict: bool = False
  overwrite: bool = False
  progress: bool = True

  def __post_init__(self):
    problems = []
    if (
      not 0 <= self.val_fraction < 1
      or not 0 <= self.test_fraction < 1
      or self.val_fraction + self.test_fraction >= 1
    ):
      problems.append('val_fraction and test_fraction must be in [0, 1) with a sum below 1')
    if self.clips_per_painting < 1 or self.shard_size < 1:
      problems.append('clips_per_painting and shard_size must be >= 1')
    if self.clip_hop_seconds is not None and self.clip_hop_seconds <= 0:
      problems.append('clip_hop_seconds must be positive')
    if self.image_mode not in ('crop', 'scale'):
      problems.append(f'image_mode must be crop or scale, got {self.image_mode!r}')
    if problems:
      raise ValueError('; '.join(problems))
    _ = self.mel_params  # validates image_size, sample_rate, clip_seconds, n_fft

  @property
  def mel_params(self) -> spectrogram.MelParams:
    n_fft = self.n_fft or spectrogram.default_mel_params(self.image_size, self.sample_rate).n_fft
    return spectrogram.MelParams(
      sample_rate=self.sample_rate,
      image_size=self.image_size,
      clip_seconds=float(self.clip_seconds),
      n_fft=n_fft,
      fmin=float(self.fmin),
      fmax=None if self.fmax is None else float(self.fmax),
    )

  @property
  def clip_settings(self) -> clips.ClipSettings:
    return clips.ClipSettings(
      self.clip_seconds,
      self.clip_hop_seconds or self.clip_seconds,
      self.silence_db,
      self.max_clips_per_recording,
    )

  def content_fields(self) -> dict[str, Any]:
    """The options that determine the dataset's content (the resume fingerprint)."""
    d = dataclasses.asdict(self)
    for runtime_only in ('workers', 'strict', 'overwrite', 'progress'):
      d.pop(runtime_only)
    if not self.store_audio:  # builds from before the option keep their fingerprint
      d.pop('store_audio')
    return d


def make_options(**options) -> BuildOptions:
  unknown = set(options) - {f.name for f in dataclasses.fields(BuildOptions)}
  if unknown:
    raise TypeError(f'unknown build options {sorted(unknown)}')
  return BuildOptions(**options)


# ---------------------------------------------------------------------------------------------
# Entry points.


def build_from_sources(
  paintings_dir: str | os.PathLike,
  music_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  **options,
) -> dict:
  """Build from a user's paintings and music (layouts in docs/data_prep.md); returns the report."""
  opts = make_options(**options)
  tables = eras.load_tables(opts.era_overrides)
  era_set = tables.resolve_era_set(opts.era_set)
  pscan = paintings.scan_paintings(paintings_dir, opts.paintings_format, tables.artgan_styles)
  mscan = music.scan_music(music_dir, opts.music_format)
  fingerprint_ = fingerprint(
    opts,
    repr(dataclasses.astuple(tables)),
    [_file_key(i.painting_id, i.ref) for i in pscan.items],
    [_file_key(r.source_id, r) for r in mscan.recordings],
  )
  painting_era = tables.style_era if pscan.format in ('wikiart', 'parquet') else tables.label_era
  sources = SourceSet(
    name=f'{pscan.format}+{mscan.format}',
    formats={'paintings': pscan.format, 'music': mscan.format},
    paintings=[(i.painting_id, i.label, i.ref) for i in pscan.items][: opts.max_paintings],
    recordings=mscan.recordings,
    painting_era=painting_era,
    recording_era=tables.label_era,
    ignored=_ignored_list(pscan.ignored, 'painting file')
    + _ignored_list(mscan.ignored, 'music file'),
  )
  return build_paired(sources, out_dir, opts, era_set, fingerprint_)


# ---------------------------------------------------------------------------------------------
# Paired builds (real sources and the eras demo).


@dataclasses.dataclass
class SourceSet:
  """Scanned inputs of a paired build, with how each maps to an era."""

  name: str
  formats: dict[str, str]
  paintings: list[tuple[str, str, Any]]  # (painting_id, label, ref)
  recordings: list[music.Recording]
  painting_era: Callable[[str], str | None]
  recording_era: Callable[[str], str | None]
  ignored: list[dict[str, str]] = dataclasses.field(default_factory=list)
  # MIDI recordings: the instruments to play each one with, from its (era, source_id); None keeps
  # the programmes the file names.
  render_ensemble: Callable[[str, str], midi.Ensemble | None] = lambda era, source_id: None
  render_max_seconds: float | None = None


def build_paired(
  sources: SourceSet, out_dir, opts: BuildOptions, era_set: Sequence[str], fingerprint: str
) -> dict:
  """Paintings and recordings mapped to eras, paired within splits, written as a dataset."""
  workspace, done = open_workspace(out_dir, fingerprint, opts.overwrite)
  if done is not None:
    return done
  n_workers = workers.resolve_workers(opts.workers)
  start = time.perf_counter()

  kept_paintings, unmapped_p, outside_p = eras.partition_by_era(
    sources.paintings, lambda p: sources.painting_era(p[1]), lambda p: p[1], era_set
  )
  kept_recordings, unmapped_r, outside_r = eras.partition_by_era(
    sources.recordings, lambda r: sources.recording_era(r.label), lambda r: r.label, era_set
  )
  skipped = list(sources.ignored)
  skipped += [
    dict(kind='painting', id=p[0], reason=f'no era for label {p[1]!r}')
    for p in sources.paintings
    if sources.painting_era(p[1]) is None
  ]
  skipped += [
    dict(kind='recording', id=r.source_id, reason=f'no era for label {r.label!r}')
    for r in sources.recordings
    if sources.recording_era(r.label) is None
  ]
  if opts.strict and skipped:
    raise BuildError(f'{len(skipped)} inputs skipped under --strict, first: {skipped[0]}')

  probes = _probe(kept_recordings, sources, opts, workspace, n_workers)
  skipped += [
    dict(kind='recording', id=r.source_id, reason=probes[r.source_id].probe.reason)
    for r, _ in kept_recordings
    if not probes[r.source_id].probe.ok
  ]
  usable = [(r, era) for r, era in kept_recordings if probes[r.source_id].probe.ok]
  # Splits are dealt among usable recordings only, so a bad file never empties a split.
  rec_split = pairing.assign_splits(
    _ids_by_era((r.source_id, e) for r, e in usable), opts.val_fraction, opts.test_fraction
  )
  candidates, clips_available = [], 0
  for recording, era in usable:
    result = probes[recording.source_id]
    for offset in result.probe.offsets_s:
      ref = clips.AudioClip(result.audio_path, offset, result.probe.gain)
      candidates.append(
        (pairing.Candidate(recording.source_id, offset, ref), era, rec_split[recording.source_id])
      )
    clips_available += len(result.probe.offsets_s)
  if opts.strict and skipped:
    raise BuildError(f'{len(skipped)} inputs skipped under --strict, first: {skipped[0]}')

  pnt_split = pairing.assign_splits(
    _ids_by_era((p[0], e) for p, e in kept_paintings), opts.val_fraction, opts.test_fraction
  )
  planned = [(p[0], p[2], era, pnt_split[p[0]]) for p, era in kept_paintings]
  examples, unpaired = pairing.pair(
    planned, candidates, era_set, opts.clips_per_painting, opts.seed
  )
  skipped += [dict(kind='painting', id=pid, reason=reason) for pid, reason in unpaired]
  if not any(examples.values()):
    raise BuildError(
      'nothing to write: no painting could be paired with a clip of its era '
      f'(see skipped reasons: {report_lib.reason_counts(skipped)})'
    )
  inputs = dict(
    paintings_found=len(sources.paintings),
    paintings_used=len(kept_paintings) - len(unpaired),
    recordings_found=len(sources.recordings),
    recordings_used=len(usable),
    clips_available=clips_available,
    clips_skipped_silent=sum(p.probe.silent_clips for p in probes.values()),
  )
  extra = dict(
    unmapped={'paintings': unmapped_p, 'recordings': unmapped_r},
    outside_era_set={'paintings': outside_p, 'recordings': outside_r},
    inputs=inputs,
  )
  return write_dataset(
    workspace,
    examples,
    opts,
    era_names=tuple(era_set),
    source=sources.name,
    formats=sources.formats,
    fingerprint=fingerprint,
    skipped=skipped,
    extra=extra,
    n_workers=n_workers,
    start=start,
  )


def _probe(
  kept_recordings, sources: SourceSet, opts: BuildOptions, workspace: Workspace, n_workers: int
) -> dict[str, workers.ProbeResult]:
  """Probe every recording (MIDI rendered first, into the workspace), reusing cached probes."""
  settings = opts.clip_settings
  jobs = []
  for recording, era in kept_recordings:
    render_to = None
    ensemble = sources.render_ensemble(era, recording.source_id) if recording.is_midi else None
    if recording.is_midi:
      key = hashlib.sha1(
        f'{recording.source_id}|{opts.sample_rate}|{sources.render_max_seconds}|'
        f'{ensemble and ensemble.key}|{midi.soundfont_name()}'.encode()
      ).hexdigest()[:16]
      render_to = str(workspace.path / 'rendered' / f'{key}.wav')
    jobs.append(
      workers.ProbeJob(
        recording.source_id,
        recording.path,
        settings,
        render_to,
        opts.sample_rate,
        sources.render_max_seconds,
        ensemble,
      )
    )
  cached = workspace.load_probes(settings)
  todo = [job for job in jobs if job.source_id not in cached]
  for result in workers.parallel_map(
    workers.run_probe, todo, n_workers, desc='probe recordings', unit='file', progress=opts.progress
  ):
    cached[result.source_id] = result
  workspace.save_probes(settings, cached)
  return cached


# ---------------------------------------------------------------------------------------------
# Writing (shared with the synesthesia demo).


def write_dataset(
  workspace: Workspace,
  examples: Mapping[str, Sequence[pairing.Example]],
  opts: BuildOptions,
  *,
  era_names: tuple[str, ...],
  source: str,
  formats: Mapping[str, str],
  fingerprint: str,
  skipped: list[dict],
  extra: Mapping[str, Any],
  n_workers: int,
  start: float,
  meta_extra: Mapping[str, Any] | None = None,
  description: str = '',
) -> dict:
  """Write the planned shards that are missing, then metadata and the report.

  `meta_extra` is merged into `pix2pitch_meta.json`'s `extra` (e.g. `paired: false` for an
  unpaired dataset); `description` replaces the TFDS description of a paired dataset.
  """
  plans = pairing.plan_shards(examples, opts.shard_size)
  jobs = [
    workers.ShardJob(
      str(records.shard_path(workspace.out, p.split, p.index, p.num_shards)),
      p.split,
      p.examples,
      opts.mel_params,
      era_names,
      opts.image_mode,
      opts.strict,
      opts.store_audio,
    )
    for p in plans
  ]
  todo = [
    job for job in jobs if workspace.shard_result(job.path) is None or not os.path.exists(job.path)
  ]
  write_start = time.perf_counter()
  try:
    workers.parallel_map(
      workers.run_shard,
      todo,
      n_workers,
      desc='write shards',
      unit='clip',
      weight=lambda job: len(job.examples),
      on_result=workspace.save_shard,
      progress=opts.progress,
    )
  except workers.SkipIsFatal as e:
    raise BuildError(str(e)) from None
  write_seconds = time.perf_counter() - write_start
  results: dict[str, dict] = {}
  for job in jobs:
    result = workspace.shard_result(job.path)
    if result is None:  # every shard was either reused or just written and saved
      raise BuildError(f'shard {job.path} has no saved result in {workspace.path}')
    results[job.path] = result
  for job in jobs:
    skipped += [
      dict(kind='example', id=f'{pid} + {cid}', reason=reason)
      for pid, cid, reason in results[job.path]['skipped']
    ]
  if opts.strict and skipped:
    raise BuildError(f'{len(skipped)} inputs skipped under --strict, first: {skipped[0]}')
  meta = records.DatasetMeta(
    opts.mel_params,
    era_names,
    source=source,
    extra=dict(options=opts.content_fields(), fingerprint=fingerprint, **(meta_extra or {})),
    stores_audio=opts.store_audio,
  )
  records.write_metadata(workspace.out, meta, description)
  written_now = sum(results[job.path]['written'] for job in todo)
  report = dict(
    source=source,
    out_dir=str(workspace.out),
    formats=dict(formats),
    era_names=list(era_names),
    fingerprint=fingerprint,
    mel_params=opts.mel_params.to_dict(),
    options=dict(
      opts.content_fields(), clip_hop_seconds=opts.clip_hop_seconds or opts.clip_seconds
    ),
    counts=_split_counts(jobs, results, era_names),
    skipped=skipped,
    skipped_by_reason=report_lib.reason_counts(skipped),
    shards=dict(planned=len(jobs), written=len(todo), reused=len(jobs) - len(todo)),
    throughput=dict(
      examples_written=written_now,
      seconds=round(write_seconds, 3),
      clips_per_s=round(written_now / max(write_seconds, 1e-9), 2),
      workers=n_workers,
      total_seconds=round(time.perf_counter() - start, 3),
    ),
    **{'unmapped': {}, 'outside_era_set': {}, 'inputs': {}, **extra},
  )
  report_lib.write(workspace.out, report)
  workspace.mark_complete(fingerprint, report)
  return report


def _split_counts(jobs, results, era_names) -> dict[str, dict]:
  counts: dict[str, dict[str, Any]] = {}
  for job in jobs:
    c = counts.setdefault(job.split, dict(examples=0, by_era={}, paintings=set(), recordings=set()))
    c['examples'] += results[job.path]['written']
    for era, n in results[job.path]['by_era'].items():
      c['by_era'][era] = c['by_era'].get(era, 0) + n
    c['paintings'].update(ex.painting_id for ex in job.examples)
    c['recordings'].update(ex.clip_source_id for ex in job.examples)
  for c in counts.values():
    c['paintings'], c['recordings'] = len(c['paintings']), len(c['recordings'])
    c['by_era'] = {e: c['by_era'][e] for e in era_names if e in c['by_era']}
  return counts


# ---------------------------------------------------------------------------------------------
# The output directory's bookkeeping.


def open_workspace(
  out_dir: str | os.PathLike, fingerprint: str, overwrite: bool
) -> tuple[Workspace, dict | None]:
  """The workspace of a build, and its stored report when `out_dir` already holds this exact
  build (then nothing is to be done); otherwise the workspace is claimed for this plan."""
  workspace = Workspace(out_dir)
  done = workspace.completed_report(fingerprint)
  if done is None:
    workspace.claim(fingerprint, overwrite)
  return workspace, done


class Workspace:
  """`<out>/.data_prep/`: the fingerprint, per-shard results, probe cache and rendered audio."""

  def __init__(self, out_dir: str | os.PathLike):
    self.out = pathlib.Path(out_dir)
    self.path = self.out / WORK_DIR

  def completed_report(self, fingerprint: str) -> dict | None:
    """The stored report if `out` is a complete build of this exact plan, else None."""
    marker = self.path / 'complete.json'
    if not marker.exists():
      return None
    done = json.loads(marker.read_text())
    names = {p.name for paths in records.finished_shards(self.out).values() for p in paths}
    if done['fingerprint'] != fingerprint or not set(done['shards']) <= names:
      return None
    report = json.loads((self.out / report_lib.REPORT_JSON).read_text())
    report['resumed'] = True
    return report

  def claim(self, fingerprint: str, overwrite: bool) -> None:
    """Make `out` ours for this plan: refuse (or wipe, with overwrite) a different build."""
    plan_file = self.path / 'fingerprint'
    previous = plan_file.read_text().strip() if plan_file.exists() else None
    has_shards = self.out.exists() and bool(records.finished_shards(self.out))
    if (previous or has_shards) and previous != fingerprint:
      if not overwrite:
        raise BuildError(
          f'{self.out} holds a build with other inputs or options; use a new '
          '--out or pass --overwrite to replace it'
        )
      self._wipe()
    self.path.mkdir(parents=True, exist_ok=True)
    (self.path / 'complete.json').unlink(missing_ok=True)
    for stale in self.out.glob(f'.{records.DATASET_NAME}-*.tmp-*'):
      stale.unlink()  # partial shards of an interrupted run
    plan_file.write_text(fingerprint)

  def _wipe(self) -> None:
    for paths in records.finished_shards(self.out).values():
      for p in paths:
        p.unlink()
    for name in (
      'dataset_info.json',
      'features.json',
      records.META_FILE,
      report_lib.REPORT_JSON,
      report_lib.SUMMARY_MD,
    ):
      (self.out / name).unlink(missing_ok=True)
    shutil.rmtree(self.path, ignore_errors=True)

  def shard_result(self, shard_path: str) -> dict | None:
    path = self.path / 'shards' / f'{pathlib.Path(shard_path).name}.json'
    return json.loads(path.read_text()) if path.exists() else None

  def save_shard(self, result: workers.ShardResult) -> None:
    folder = self.path / 'shards'
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(
      folder / f'{pathlib.Path(result.path).name}.json',
      dict(
        written=result.written,
        skipped=[list(s) for s in result.skipped],
        by_era=result.by_era,
        seconds=result.seconds,
      ),
    )

  def load_probes(self, settings: clips.ClipSettings) -> dict[str, workers.ProbeResult]:
    path = self.path / 'probes.json'
    if not path.exists():
      return {}
    data = json.loads(path.read_text())
    if data.get('settings') != dataclasses.asdict(settings):
      return {}
    return {
      sid: workers.ProbeResult(
        sid,
        r['audio_path'],
        clips.Probe(
          reason=r['reason'],
          duration_s=r['duration_s'],
          gain=r['gain'],
          offsets_s=tuple(r['offsets_s']),
          silent_clips=r['silent_clips'],
        ),
      )
      for sid, r in data['probes'].items()
    }

  def save_probes(
    self, settings: clips.ClipSettings, probes: Mapping[str, workers.ProbeResult]
  ) -> None:
    _write_json(
      self.path / 'probes.json',
      dict(
        settings=dataclasses.asdict(settings),
        probes={
          sid: dict(audio_path=r.audio_path, **dataclasses.asdict(r.probe))
          for sid, r in probes.items()
        },
      ),
    )

  def mark_complete(self, fingerprint: str, report: Mapping[str, Any]) -> None:
    shards = [p.name for paths in records.finished_shards(self.out).values() for p in paths]
    _write_json(self.path / 'complete.json', dict(fingerprint=fingerprint, shards=shards))


# ---------------------------------------------------------------------------------------------
# Helpers.


def fingerprint(opts: BuildOptions, *parts) -> str:
  """Hash of everything a dataset's content depends on: options plus JSON-able input listings."""
  h = hashlib.sha256()
  h.update(json.dumps(opts.content_fields(), sort_keys=True, default=str).encode())
  h.update(json.dumps(parts, sort_keys=True, default=repr).encode())
  return h.hexdigest()[:24]


def _file_key(item_id: str, ref) -> list:
  path = getattr(ref, 'path', None)
  if path is None:
    return [item_id]
  try:
    st = os.stat(path)
    return [item_id, st.st_size, st.st_mtime_ns]
  except (TypeError, OSError):
    return [item_id]


def _ids_by_era(pairs) -> dict[str, list[str]]:
  out: dict[str, list[str]] = {}
  for item_id, era in pairs:
    out.setdefault(era, []).append(item_id)
  return out


def _ignored_list(ignored: Mapping[str, list[str]], kind: str) -> list[dict[str, str]]:
  return [
    dict(kind=kind, id=entry, reason=reason)
    for reason, entries in ignored.items()
    for entry in entries
  ]


def _write_json(path: pathlib.Path, data: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
  os.replace(tmp, path)
