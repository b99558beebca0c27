"""Turn images (paintings, photos, sketches; any size or mode) or a dataset split into music.

    python -m pix2pitch_jax.generate --workdir=runs/p256 --images=my_photos/ --out=listen/
    python -m pix2pitch_jax.generate --workdir=runs/p256 --split=test --out=listen_test/

Writes <out>/<name>.wav, <name>_mel.png, <name>_painting.png (and, for a split, the reference
<name>_reference.wav) plus <out>/index.html, a page to look and listen. --vocoder picks how the
mel becomes sound, one or more of: griffin_lim (the default), midi (notes -> <name>.mid ->
FluidSynth with the best General MIDI soundfont installed: <name>_midi.wav), neural (a trained
vocoder: <name>_neural.wav):

    python -m pix2pitch_jax.generate --workdir=runs/p256 --split=test --out=listen/ \
        --vocoder=griffin_lim,midi

--compare_workdir puts a second run's music beside the first on every painting's card (e.g. the
unpaired CycleGAN beside pix2pix: <name>_compare.wav, <name>_compare_mel.png), each labelled with
the model that made it. --direction=sound_to_picture turns a CycleGAN run the other way: for the
clips of a split, the clip's mel beside the picture the model draws of it, and a player of the
clip:

    python -m pix2pitch_jax.generate --workdir=runs/p256 --compare_workdir=runs/cg --split=test \
        --out=listen_both/
    python -m pix2pitch_jax.generate --workdir=runs/cg --direction=sound_to_picture --split=test \
        --out=pictures_test/
 Files that are not
readable images are reported and skipped. Same seed, same audio. Stopped and started again, it
skips the inputs it has finished.

On many hosts, start the same command on every host with JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID (or PIX2PITCH_DISTRIBUTED=1 on SLURM / Cloud TPU) and an --out
every host can write (a shared file system or a gs:// bucket): each host generates its share and
process 0 writes one index.html and manifest.json; see docs/evaluation.md.
"""

from absl import flags

from pix2pitch_jax.core import cli

_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Training workdir (config.json, checkpoints/).', required=True
)
_IMAGES = flags.DEFINE_string('images', None, 'Folder of images (searched recursively).')
_SPLIT = flags.DEFINE_string('split', None, 'Or: a split of the training dataset, e.g. test.')
_OUT = flags.DEFINE_string('out', None, 'Output folder.', required=True)
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest' or a step number.")
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', None, 'Use only the first N inputs.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the Griffin-Lim initial phases.')
_GL_ITERS = flags.DEFINE_integer('griffin_lim_iters', 64, 'Griffin-Lim iterations per clip.')
_BATCH_SIZE = flags.DEFINE_integer(
  'batch_size', 8, 'Batch size per process (rounded up to its device count).'
)
_ERA = flags.DEFINE_string(
  'era',
  None,
  'For --images with an era-conditioned generator: the era '
  'to condition on (a name from the dataset).',
)

_VOCODER = flags.DEFINE_list(
  'vocoder',
  ['griffin_lim'],
  'How the generated mel becomes sound; one or more, comma-separated, the first is the main '
  'player: griffin_lim, midi (notes -> .mid -> FluidSynth; soundfont: $PIX2PITCH_SOUNDFONT or '
  'the best installed), neural (a trained vocoder).',
)

_WEIGHTS = flags.DEFINE_enum(
  'weights',
  'ema',
  ['ema', 'raw'],
  "The generator's moving-average weights (when training kept them; else its weights) or raw.",
)

_VOCODER_WORKDIR = flags.DEFINE_string(
  'vocoder_workdir',
  None,
  'With --vocoder=neural: the training workdir of a vocoder '
  '(--config=experiments/vocoder_demo.py); default: <workdir>/vocoder.',
)

_COMPARE_WORKDIR = flags.DEFINE_string(
  'compare_workdir',
  None,
  'A second training workdir (its newest checkpoint): its music of every painting beside the '
  "first's, through the first --vocoder (e.g. a cyclegan run beside a pix2pix one).",
)

_DIRECTION = flags.DEFINE_enum(
  'direction',
  'painting_to_music',
  ['painting_to_music', 'sound_to_picture'],
  'painting_to_music: images or a split -> music. sound_to_picture (a cyclegan workdir, with '
  "--split): each clip's mel beside the picture the model draws of it, and the clip.",
)

flags.mark_flags_as_mutual_exclusive(['images', 'split'], required=True)


def main() -> None:
  from pix2pitch_jax.runtime import sharding  # JAX only after flag parsing

  sharding.maybe_initialize_distributed()  # before any other JAX call
  from pix2pitch_jax.generation import job as generation_job
  from pix2pitch_jax.generation import sound_gallery

  if _DIRECTION.value == 'sound_to_picture':
    if _SPLIT.value is None or _COMPARE_WORKDIR.value is not None:
      raise cli.UserInputError(
        '--direction=sound_to_picture takes --split (and no --compare_workdir)'
      )
    result = sound_gallery.draw(
      _WORKDIR.value,
      _OUT.value,
      split=_SPLIT.value,
      checkpoint=cli.parse_checkpoint(_CHECKPOINT.value),
      max_examples=_MAX_EXAMPLES.value,
      seed=_SEED.value,
      griffin_lim_iters=_GL_ITERS.value,
      batch_size=_BATCH_SIZE.value,
      weights=_WEIGHTS.value,
    )
    if sharding.is_main_process():
      print(f'{result["count"]} picture(s) from step {result["step"]}; open {result["index_html"]}')
    return
  result = generation_job.generate(
    _WORKDIR.value,
    _OUT.value,
    images_dir=_IMAGES.value,
    split=_SPLIT.value,
    checkpoint=cli.parse_checkpoint(_CHECKPOINT.value),
    max_examples=_MAX_EXAMPLES.value,
    seed=_SEED.value,
    griffin_lim_iters=_GL_ITERS.value,
    batch_size=_BATCH_SIZE.value,
    era=_ERA.value,
    weights=_WEIGHTS.value,
    vocoder_names=_VOCODER.value,
    vocoder_workdir=_VOCODER_WORKDIR.value,
    compare_workdir=_COMPARE_WORKDIR.value,
  )
  if not sharding.is_main_process():
    return
  for path, reason in result['skipped']:
    print(f'skipped {path}: {reason}')
  print(f'{result["count"]} clip(s) from step {result["step"]}; open {result["index_html"]}')


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
