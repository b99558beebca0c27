r"""Build a Pix2Pitch dataset (thin CLI over data_prep.builder).

  python -m data_prep.build --paintings=wikiart/ --music=maestro-v3.0.0/ --out=data/p2p256
  python -m data_prep.build --demo=synesthesia --out=data/syn
  python -m data_prep.build --unpaired --paintings=photos/ --music=maestro-v3.0.0/ --out=data/un

See docs/data_prep.md for the source layouts, the era tables and the on-disk format.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from data_prep import builder, demos, music, paintings, unpaired
from pix2pitch_jax.core import cli

_PAINTINGS = flags.DEFINE_string(
  'paintings', None, 'Root of the paintings (see --paintings_format).'
)
_MUSIC = flags.DEFINE_string('music', None, 'Root of the music (see --music_format).')
_DEMO = flags.DEFINE_enum(
  'demo',
  None,
  list(demos.DEMOS),
  'Build a built-in demo corpus instead of reading --paintings/--music.',
)
_OUT = flags.DEFINE_string('out', None, 'Output dataset directory (created; resumable).')
_UNPAIRED = flags.DEFINE_bool(
  'unpaired',
  False,
  'Build an unpaired dataset from --paintings (any folder of images) and --music: no eras, no '
  'pairing, 1 s clips by default (data_prep/unpaired.py).',
)
_PAINTINGS_FORMAT = flags.DEFINE_enum(
  'paintings_format', 'auto', list(paintings.FORMATS), 'Layout of --paintings; auto detects it.'
)
_MUSIC_FORMAT = flags.DEFINE_enum(
  'music_format', 'auto', list(music.FORMATS), 'Layout of --music; auto detects it.'
)
_IMAGE_SIZE = flags.DEFINE_integer(
  'image_size',
  None,
  'Side S of paintings and mel images (power of two). Default 256; demos 128 (squiggles 64).',
)
_SAMPLE_RATE = flags.DEFINE_integer('sample_rate', 22_050, 'Audio sample rate (Hz).')
_CLIP_SECONDS = flags.DEFINE_float(
  'clip_seconds', None, 'Clip length in s. Default 10; demos 4; squiggles and --unpaired 1.'
)
_N_FFT = flags.DEFINE_integer(
  'n_fft', None, 'STFT size; default from audio.default_mel_params (demos 2048; squiggles 16 x S).'
)
_FMIN = flags.DEFINE_float('fmin', None, 'Lowest mel band edge in Hz (0; synesthesia 400).')
_FMAX = flags.DEFINE_float(
  'fmax', None, 'Highest mel band edge in Hz (sample_rate / 2; synesthesia 2400).'
)
_CLIP_HOP = flags.DEFINE_float(
  'clip_hop_seconds', None, 'Step between clip starts in a recording; default = clip_seconds.'
)
_SILENCE_DB = flags.DEFINE_float(
  'silence_db', -60.0, 'Clips quieter than this RMS dBFS (after peak normalisation) are skipped.'
)
_MAX_CLIPS = flags.DEFINE_integer(
  'max_clips_per_recording', None, 'Use at most this many (evenly spaced) clips per recording.'
)
_K = flags.DEFINE_integer('clips_per_painting', None, 'K: clips paired with each painting (1).')
_VAL = flags.DEFINE_float(
  'val_fraction',
  None,
  'Fraction of paintings/recordings per era in validation (0.1; synesthesia 0.125).',
)
_TEST = flags.DEFINE_float('test_fraction', None, 'Same for test.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the pairing (splits depend only on ids).')
_ERA_SET = flags.DEFINE_string(
  'era_set',
  None,
  "Named era set ('thesis', 'music21', 'all') or a "
  'comma list of eras. Default thesis; eras demo music21.',
)
_ERA_OVERRIDES = flags.DEFINE_string(
  'era_overrides', None, 'JSON file merged over data_prep/eras.json.'
)
_IMAGE_MODE = flags.DEFINE_enum(
  'image_mode',
  'crop',
  ['crop', 'scale'],
  'crop: shorter side to S then centre crop; scale: squash to S x S (the thesis).',
)
_SHARD_SIZE = flags.DEFINE_integer('shard_size', None, 'Examples per shard (500; demos 64).')
_MAX_PAINTINGS = flags.DEFINE_integer(
  'max_paintings',
  None,
  'Use only the first N paintings (quick trial runs); for demos, the corpus size.',
)
_STORE_AUDIO = flags.DEFINE_bool(
  'store_audio',
  None,
  'Also store each clip as 16-bit PCM (what a neural vocoder trains on; ~2 bytes a sample). '
  'Default off; on for the demos.',
)
_WORKERS = flags.DEFINE_integer('workers', None, 'Worker processes; default = CPU cores.')
_STRICT = flags.DEFINE_bool(
  'strict', False, 'Fail on the first skipped input instead of listing it in the report.'
)
_OVERWRITE = flags.DEFINE_bool(
  'overwrite', False, 'Replace a different build found in --out (else it is an error).'
)

for _name in (
  'image_size',
  'clip_seconds',
  'n_fft',
  'fmax',
  'clip_hop_seconds',
  'max_clips_per_recording',
  'clips_per_painting',
  'shard_size',
  'max_paintings',
  'workers',
  'sample_rate',
):
  flags.register_validator(_name, lambda v: v is None or v > 0, f'--{_name} must be positive')
for _name in ('val_fraction', 'test_fraction'):
  flags.register_validator(_name, lambda v: v is None or 0 <= v < 1, f'--{_name} must be in [0, 1)')
flags.mark_flag_as_required('out')


def _options() -> dict:
  """Flags the user set (None = keep the builder's or the demo's default)."""
  names = (
    'image_size',
    'sample_rate',
    'clip_seconds',
    'n_fft',
    'fmin',
    'fmax',
    'clip_hop_seconds',
    'silence_db',
    'max_clips_per_recording',
    'clips_per_painting',
    'val_fraction',
    'test_fraction',
    'seed',
    'era_set',
    'era_overrides',
    'image_mode',
    'shard_size',
    'store_audio',
    'workers',
    'strict',
    'overwrite',
  )
  fl = flags.FLAGS
  return {n: fl[n].value for n in names if fl[n].value is not None}


def main() -> None:
  paintings_dir, music_dir, out_dir = _PAINTINGS.value, _MUSIC.value, _OUT.value
  if _DEMO.value and (paintings_dir or music_dir):
    raise app.UsageError('give either --demo or --paintings and --music, not both')
  if _DEMO.value and _UNPAIRED.value:
    raise app.UsageError('--unpaired builds from --paintings and --music, not from --demo')
  if not _DEMO.value and not (paintings_dir and music_dir):
    raise app.UsageError('give --paintings and --music (or --demo=synesthesia|eras|squiggles)')
  if out_dir is None:  # absl enforces mark_flag_as_required('out') before main runs
    raise app.UsageError('--out is required')
  options = _options()
  pairing_only = sorted({'clips_per_painting', 'era_set'} & set(options))
  if _UNPAIRED.value and pairing_only:
    raise app.UsageError(
      f'--unpaired uses no eras and no pairing: drop --{", --".join(pairing_only)}'
    )
  try:
    if _DEMO.value:
      report = demos.build_demo(_DEMO.value, out_dir, num_paintings=_MAX_PAINTINGS.value, **options)
    else:
      if paintings_dir is None or music_dir is None:  # excluded by the checks above
        raise app.UsageError('give --paintings and --music (or --demo=synesthesia|eras|squiggles)')
      build = (
        unpaired.build_unpaired_from_sources if _UNPAIRED.value else builder.build_from_sources
      )
      report = build(
        paintings_dir,
        music_dir,
        out_dir,
        paintings_format=_PAINTINGS_FORMAT.value,
        music_format=_MUSIC_FORMAT.value,
        max_paintings=_MAX_PAINTINGS.value,
        **options,
      )
  except (builder.BuildError, ValueError, FileNotFoundError, TypeError) as e:
    raise app.UsageError(str(e)) from None
  counts = {split: c['examples'] for split, c in report['counts'].items()}
  t = report['throughput']
  logging.info(
    'dataset in %s: %s; %d skipped (%s); %.1f clips/s; report %s/summary.md',
    _OUT.value,
    counts,
    len(report['skipped']),
    report['skipped_by_reason'] or 'none',
    t['clips_per_s'],
    _OUT.value,
  )
  print(
    json.dumps(
      dict(
        out=_OUT.value,
        examples=counts,
        skipped=len(report['skipped']),
        clips_per_s=t['clips_per_s'],
        resumed=report.get('resumed', False),
      )
    )
  )


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
