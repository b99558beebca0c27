"""The built-in demo, end to end: build a demo corpus, train, evaluate, generate a gallery.

    pix2pitch-demo --demo=synesthesia --workdir=runs/demo     (or python -m pix2pitch_jax.demo)

`squiggles` is the unpaired demo: a CycleGAN, its rule correlations (against an untrained
generator and shuffled pairs) and, instead of galleries, a video the visualiser draws for a song
of test-split notes (<workdir>/visuals/).

Every stage is resumable, so an interrupted demo (Ctrl-C) continues where it stopped when the same
command runs again: the corpus builder skips finished shards, training resumes from its latest
checkpoint, and evaluation and generation are skipped when their outputs for the final checkpoint
already exist.

Workdir layout:
    <workdir>/data/              the demo corpus (ArrayRecord + TFDS metadata + summary)
    <workdir>/train/             training workdir (config.json, checkpoints/, tensorboard/, ...)
    <workdir>/train/eval/        metrics_<step>.json and report_<step>.md
    <workdir>/gallery/test/      WAVs, spectrogram PNGs and index.html for the test split
    <workdir>/gallery/outside/   the same for images outside the training style
    <workdir>/outside_images/    those images (a photo-like scene, a sketch, odd sizes and modes)
    <workdir>/visuals/           squiggles: the test notes' song (WAV), its video and index.html
    <workdir>/demo_summary.json  where everything is, and the headline figures

The demo's folder is local: its corpus is ArrayRecord files, which are read from local disk (a
training workdir of your own may be a `gs://` URI; see docs/training.md, "Cloud storage").
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from etils import epath

from pix2pitch_jax.core import cli, configs
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.demo import config as demo_config

DEMOS = ('synesthesia', 'eras', 'squiggles')


def _stage(name: str, fn: Callable[[], Any]) -> Any:
  """Runs one stage with a start line, an elapsed-time line, and its result returned."""
  print(f'[demo] {name} ...', flush=True)
  start = time.perf_counter()
  result = fn()
  print(f'[demo] {name} done in {time.perf_counter() - start:.1f} s', flush=True)
  return result


def write_outside_style_images(out_dir: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """A few images unlike any training painting: a photo-like scene, a pen sketch, odd formats.

  They are drawn here (nothing is downloaded) and cover the thesis' out-of-style test: what does
  the model make of a photo or a sketch? They also exercise odd sizes and modes (L, RGBA, P).
  """
  from PIL import Image, ImageDraw, ImageFilter

  out_dir.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)

  # Photo-like: sky gradient, sun, hills, sensor noise, slight blur; landscape format.
  h, w = 300, 480
  y = np.linspace(0, 1, h)[:, None, None]
  sky = (1 - y) * np.array([90, 150, 235]) + y * np.array([200, 225, 250])
  photo = np.broadcast_to(sky, (h, w, 3)).copy()
  xs = np.arange(w)
  for k, (amp, base, col) in enumerate([(25, 190, (70, 120, 60)), (35, 230, (40, 90, 40))]):
    ridge = base + amp * np.sin(xs / (60 + 25 * k) + k)
    mask = np.arange(h)[:, None] > ridge[None, :]
    photo[mask] = col
  photo += rng.normal(0, 6, photo.shape)
  img = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
  ImageDraw.Draw(img).ellipse((360, 40, 420, 100), fill=(255, 230, 120))
  img.filter(ImageFilter.GaussianBlur(1.2)).save(out_dir / 'photo_landscape.jpg', quality=90)

  # Sketch: dark pen lines on paper, grayscale ('L'), portrait format.
  sketch = Image.new('L', (240, 320), 245)
  draw = ImageDraw.Draw(sketch)
  for _ in range(40):
    x0, y0 = int(rng.integers(0, 240)), int(rng.integers(0, 320))
    dx, dy = int(rng.integers(-60, 60)), int(rng.integers(-60, 60))
    draw.line(
      (x0, y0, x0 + dx, y0 + dy),
      fill=int(rng.integers(10, 80)),
      width=int(rng.integers(1, 3)),
    )
  sketch.save(out_dir / 'pen_sketch.png')

  # Transparent RGBA poster and a palette ('P') image, small and non-square.
  poster = Image.new('RGBA', (200, 130), (0, 0, 0, 0))
  pd = ImageDraw.Draw(poster)
  for i in range(6):
    pd.rectangle((i * 30, 10 + 15 * i, i * 30 + 40, 120), fill=(255 - 40 * i, 40 * i, 160, 200))
  poster.save(out_dir / 'poster_rgba.png')
  Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).convert(
    'P', palette=Image.Palette.ADAPTIVE, colors=8
  ).save(out_dir / 'palette_noise.png')
  return out_dir


def _load_train_config(
  demo: str, config_path: str | None, data_dir: pathlib.Path, overrides: dict[str, Any]
):
  """The config file's get_config() (default: the packaged demo config's recipe for `demo`),
  pointed at the demo corpus, with dotted-key overrides."""
  config = (
    demo_config.get_config(demo) if config_path is None else configs.load_config_file(config_path)
  )
  config.data_dir = str(data_dir)
  return configs.apply_overrides(config, overrides)


def _finished_evaluation(train_dir: workdir_lib.Workdir, step: int) -> dict[str, Any] | None:
  """The evaluation of checkpoint `step` if an earlier run of the demo already wrote it."""
  metrics_json, report_md = train_dir.eval_metrics(step), train_dir.eval_report(step)
  if not (metrics_json.exists() and report_md.exists()):
    return None
  return {
    'metrics': json.loads(metrics_json.read_text()),
    'metrics_json': str(metrics_json),
    'report_md': str(report_md),
    'step': step,
  }


def _finished_gallery(
  out_dir: epath.Path, step: int, vocoder_names: tuple[str, ...] = ('griffin_lim',)
) -> dict[str, Any] | None:
  """The gallery in `out_dir` if it was generated from checkpoint `step` with these vocoders."""
  manifest = out_dir / workdir_lib.GALLERY_MANIFEST
  index_html = out_dir / workdir_lib.GALLERY_INDEX
  if not (manifest.exists() and index_html.exists()):
    return None
  written = json.loads(manifest.read_text())
  if (
    written.get('step') != step or tuple(written.get('vocoders', ('griffin_lim',))) != vocoder_names
  ):
    return None
  return {'index_html': str(index_html), 'manifest': str(manifest), 'step': step}


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
  """The few figures a newcomer looks at first, when the report has them."""
  keys = (
    'onset_f1',
    'onset_pitch_f1',
    'audio_onset_f1',  # the independent ear, on the audio
    'audio_onset_pitch_f1',
    'era_accuracy',
    'era_accuracy_real',
    'l1_db',
    'spectral_convergence',
  )
  out = {}
  for group in ('model', 'retrieval', 'era_mean', 'real'):
    sub = metrics.get(group, {})
    if isinstance(sub, dict):
      out[group] = {k: sub[k] for k in keys if k in sub}
      out[group] |= {f'{k}_ci95': sub[f'{k}_ci95'] for k in keys if f'{k}_ci95' in sub}
  return out


def _era_accuracy_per_era(metrics: dict[str, Any]) -> dict[str, Any]:
  """Per era: the era classifier's accuracy on the model's mels and on the real ones (the
  ceiling), each [value, interval low, interval high], and n: what the eras demo is about."""
  out = {}
  real_eras = metrics.get('real', {}).get('per_era', {})
  for era in metrics.get('era_names', sorted(real_eras)):  # the dataset's order of eras
    real = real_eras.get(era, {})
    model = metrics.get('model', {}).get('per_era', {}).get(era, {})
    if 'era_accuracy' not in real or 'era_accuracy' not in model:
      continue
    out[era] = {
      group: [block['era_accuracy'], *block.get('era_accuracy_ci95', [None, None])]
      for group, block in (('model', model), ('real', real))
    }
    out[era]['n'] = real.get('era_accuracy_n', real.get('count'))
  return out


def _accuracy_lines(per_era: dict[str, Any]) -> list[str]:
  """'  baroque      model 0.83 [0.50, 1.00]   real 1.00 [1.00, 1.00]   n=6' per era."""
  if not per_era:
    return []

  def shown(figures: list[Any]) -> str:
    value, low, high = figures
    return f'{value:.2f}' + (f' [{low:.2f}, {high:.2f}]' if None not in (low, high) else '')

  lines = [
    "  era accuracy per era (the era classifier on the model's mels and on the real music's,",
    '  the ceiling; 95 % intervals):',
  ]
  for era, figures in per_era.items():
    lines.append(
      f'    {era:<14} model {shown(figures["model"]):<19} real {shown(figures["real"]):<19} '
      f'n={figures["n"]}'
    )
  return lines


def _figure(figures: dict[str, Any], key: str) -> str:
  """'onset_f1=0.938 [0.921, 0.953]': a headline figure with its interval when it has one."""
  interval = figures.get(f'{key}_ci95')
  shown = f'{key}={figures[key]:.3f}'
  if isinstance(interval, (list, tuple)) and all(isinstance(x, float) for x in interval):
    shown += f' [{interval[0]:.3f}, {interval[1]:.3f}]'
  return shown


def run_demo(
  demo: str,
  workdir: str | pathlib.Path,
  *,
  config_path: str | None = None,
  config_overrides: dict[str, Any] | None = None,
  build_options: dict[str, Any] | None = None,
  gallery_size: int = 24,
) -> dict[str, Any]:
  """Builds, trains, evaluates and generates; returns (and writes) the demo summary.

  `config_overrides` maps dotted config keys to values (`{'num_train_steps': 100}`) and
  `build_options` goes to `data_prep.demos.build_demo` (`{'num_paintings': 24}`); tests use
  both to run the whole pipeline at toy size.
  """
  # JAX is imported only after the corpus is built: data_prep's workers fork cheaply from a
  # process without JAX, and must be spawned (seconds each) from one with it.
  from data_prep import demos

  if demo not in DEMOS:
    raise ValueError(f'unknown demo {demo!r}; choose one of {DEMOS}')
  if workdir_lib.is_uri(workdir):
    raise cli.UserInputError(
      f'the demo builds its corpus in its own folder, which must be local (got {workdir}); '
      'train on a gs:// workdir with pix2pitch-train instead'
    )
  layout = workdir_lib.DemoDir(workdir)
  data_dir, train_dir = layout.data, layout.train
  start = time.perf_counter()

  config = _load_train_config(demo, config_path, data_dir, config_overrides or {})
  report = _stage(
    f'build the {demo!r} demo corpus',
    lambda: demos.build_demo(
      demo, str(data_dir), image_size=config.image_size, **(build_options or {})
    ),
  )
  from pix2pitch_jax.evaluation import job as evaluation_job
  from pix2pitch_jax.generation import job as generation_job
  from pix2pitch_jax.training import trainer

  train_summary = _stage('train', lambda: trainer.train_and_evaluate(config, str(train_dir.root)))
  step = int(train_summary['step'])
  if train_summary.get('preempted'):
    print(
      f'[demo] interrupted at step {step}; the checkpoint is saved. Run the same command '
      'again to continue.',
      flush=True,
    )
    raise SystemExit(130)  # the shell's code for "stopped by Ctrl-C"
  if config.family == 'cyclegan':
    return _finish_cyclegan(
      demo, layout, report, train_summary, song_clips=gallery_size, start=start
    )
  # Evaluation and galleries of the final checkpoint are kept across re-runs of the demo.
  eval_result = _finished_evaluation(train_dir, step) or _stage(
    'evaluate on the test split', lambda: evaluation_job.evaluate(str(train_dir.root), split='test')
  )
  test_dir, outside_dir = layout.test_gallery, layout.outside_gallery
  # The test gallery also plays each painting's notes through the MIDI route (and offers the
  # .mid) when FluidSynth is installed; `make setup` installs it.
  test_vocoders = ('griffin_lim', 'midi') if shutil.which('fluidsynth') else ('griffin_lim',)
  test_gallery = _finished_gallery(test_dir, step, test_vocoders) or _stage(
    'generate the test-split gallery',
    lambda: generation_job.generate(
      str(train_dir.root),
      str(test_dir),
      split='test',
      max_examples=gallery_size,
      vocoder_names=test_vocoders,
    ),
  )
  outside = write_outside_style_images(pathlib.Path(layout.outside_images))
  outside_gallery = _finished_gallery(outside_dir, step) or _stage(
    'generate music for images outside the training style',
    lambda: generation_job.generate(str(train_dir.root), str(outside_dir), images_dir=str(outside)),
  )
  summary = {
    'demo': demo,
    'workdir': str(layout.root),
    'data_dir': str(data_dir),
    'tensorboard': str(train_dir.tensorboard),
    'dataset_counts': report.get('counts', {}) if isinstance(report, dict) else {},
    'train': {k: v for k, v in train_summary.items() if isinstance(v, (int, float, str))},
    'metrics_json': str(eval_result.get('metrics_json', '')),
    'report_md': str(eval_result.get('report_md', '')),
    'headline': _headline(eval_result.get('metrics', eval_result)),
    'era_accuracy_per_era': _era_accuracy_per_era(eval_result.get('metrics', eval_result)),
    'gallery_test': str(test_gallery.get('index_html', '')),
    'gallery_outside': str(outside_gallery.get('index_html', '')),
    'wall_s': round(time.perf_counter() - start, 1),
  }
  layout.summary_json.write_text(json.dumps(summary, indent=2, default=str))
  _print_summary(summary)
  return summary


def _finished_cyclegan_evaluation(train_dir: workdir_lib.Workdir, step: int) -> dict | None:
  metrics_json = train_dir.eval_dir / f'cyclegan_metrics_{step}.json'
  report_md = train_dir.eval_dir / f'cyclegan_report_{step}.md'
  if not (metrics_json.exists() and report_md.exists()):
    return None
  metrics = json.loads(metrics_json.read_text())
  return {'metrics': metrics, 'metrics_json': str(metrics_json), 'report_md': str(report_md)}


def _render_song_video(layout: workdir_lib.DemoDir, step: int, song_clips: int) -> dict[str, str]:
  """The visualiser's video of the first `song_clips` test notes played one after another."""
  import soundfile

  from data_prep import demo_squiggles
  from pix2pitch_jax.data import records
  from pix2pitch_jax.generation import visualiser

  out = pathlib.Path(layout.root / 'visuals')
  out.mkdir(parents=True, exist_ok=True)
  name = f'squiggles_test_step{step}'
  video, page = out / f'{name}.mp4', out / 'index.html'
  if video.exists() and page.exists():
    return {'video': str(video), 'index_html': str(page)}
  params = records.read_meta(layout.data).mel_params
  song = demo_squiggles.split_song(
    layout.data, 'test', song_clips, params.sample_rate, params.clip_samples
  )
  wav = out / f'{name}.wav'
  soundfile.write(wav, song, params.sample_rate)
  result = visualiser.visualise(str(layout.train.root), wav, out)
  return {'video': str(result.video), 'index_html': str(result.index_html)}


def _finish_cyclegan(
  demo: str,
  layout: workdir_lib.DemoDir,
  report: Any,
  train_summary: dict[str, Any],
  *,
  song_clips: int,
  start: float,
) -> dict[str, Any]:
  """squiggles: the rule correlations of the final checkpoint, and the visualiser's video."""
  from pix2pitch_jax.evaluation import cyclegan_eval, squiggle_features

  train_dir, step = layout.train, int(train_summary['step'])
  evaluation = _finished_cyclegan_evaluation(train_dir, step) or _stage(
    'evaluate on the test split (rule correlations)',
    lambda: cyclegan_eval.evaluate(str(train_dir.root), split='test'),
  )
  visuals = _stage(
    f'render the visualiser video of {song_clips} test notes',
    lambda: _render_song_video(layout, step, song_clips),
  )
  # As written (intervals as lists, NaN as null), so a re-run that reads them back agrees.
  metrics = json.loads(epath.Path(evaluation['metrics_json']).read_text())
  summary = {
    'demo': demo,
    'workdir': str(layout.root),
    'data_dir': str(layout.data),
    'tensorboard': str(train_dir.tensorboard),
    'dataset_counts': report.get('counts', {}) if isinstance(report, dict) else {},
    'train': {k: v for k, v in train_summary.items() if isinstance(v, (int, float, str))},
    'metrics_json': str(evaluation['metrics_json']),
    'report_md': str(evaluation['report_md']),
    'rule_correlations': {
      rule: {s: row.get(s) for s in ('model', 'model_interval', 'untrained', 'shuffled', 'real')}
      for rule in squiggle_features.RULE_NAMES  # the rule's order (the JSON's keys are sorted)
      for row in [metrics['rule_correlations'][rule]]
    },
    'video': visuals['video'],
    'visuals_page': visuals['index_html'],
    'wall_s': round(time.perf_counter() - start, 1),
  }
  layout.summary_json.write_text(json.dumps(summary, indent=2, default=str))
  _print_cyclegan_summary(summary)
  return summary


def _print_cyclegan_summary(summary: dict[str, Any]) -> None:
  def shown(value: Any) -> str:
    return '   -  ' if value is None else f'{value:+.2f}'

  lines = [
    '',
    f'Pix2Pitch demo ({summary["demo"]}) finished in {summary["wall_s"]:.0f} s '
    f'(step {summary["train"].get("step")}).',
    '  does the picture follow the sound? Spearman rho on the test split:',
    f'    {"rule":<28} {"model [95 %]":<22} untrained shuffled real',
  ]
  for rule, row in summary['rule_correlations'].items():
    low, high = row['model_interval'] or (None, None)
    model = f'{shown(row["model"])} [{shown(low)}, {shown(high)}]'
    lines.append(
      f'    {rule:<28} {model:<22} {shown(row["untrained"]):>9} {shown(row["shuffled"]):>8} '
      f'{shown(row["real"]):>5}'
    )
  lines += [
    f'  metrics report : {summary["report_md"]}',
    f'  video          : {summary["video"]}',
    f'  video page     : {summary["visuals_page"]}',
    f'  tensorboard    : {_tensorboard_command()} --logdir {summary["tensorboard"]}',
  ]
  print('\n'.join(lines), flush=True)


def _print_summary(summary: dict[str, Any]) -> None:
  lines = [
    '',
    f'Pix2Pitch demo ({summary["demo"]}) finished in {summary["wall_s"]:.0f} s.',
    f'  metrics report : {summary["report_md"]}',
    f'  metrics (json) : {summary["metrics_json"]}',
    f'  listening page : {summary["gallery_test"]}',
    f'  outside style  : {summary["gallery_outside"]}',
    f'  tensorboard    : {_tensorboard_command()} --logdir {summary["tensorboard"]}',
  ]
  for group, figures in summary['headline'].items():
    if figures:
      shown = ', '.join(_figure(figures, k) for k, v in figures.items() if isinstance(v, float))
      lines.append(f'  {group:<14} : {shown}')
  lines += _accuracy_lines(summary.get('era_accuracy_per_era', {}))
  print('\n'.join(lines), flush=True)


def _tensorboard_command() -> str:
  """`tensorboard` as this Python's environment installed it (the venv's, when not activated)."""
  beside = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
  return beside if os.path.exists(beside) else (shutil.which('tensorboard') or 'tensorboard')
