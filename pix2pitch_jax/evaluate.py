"""Evaluate a trained generator: every metric, next to the baselines, for one checkpoint.

    python -m pix2pitch_jax.evaluate --workdir=runs/p256 [--checkpoint=latest|STEP] [--split=test]

Writes <workdir>/eval/metrics_<step>.json and report_<step>.md and TensorBoard scalars under
<workdir>/tensorboard/eval; trains and caches the era classifier in <workdir>/era_classifier/ on
first use. Metrics and outputs: docs/evaluation.md. The audio metrics use Griffin-Lim; --vocoder
scores the audio of each vocoder listed as well (`vocoders` in the JSON, "Audio by vocoder" in the
report):

    python -m pix2pitch_jax.evaluate --workdir=runs/p256 --vocoder=griffin_lim,midi,neural \
        [--vocoder_workdir=runs/vocoder]

For a CycleGAN run (`family='cyclegan'`) it first writes cyclegan_metrics_<step>.json and
cyclegan_report_<step>.md: whether the pictures it draws follow the sound (rank correlations
against an untrained and a shuffled baseline), cycle consistency both ways and diversity; then,
unless --image_to_sound=false, the metrics above for its picture -> sound direction (onset F1 on
synesthesia used unpaired).

On many hosts, start the same command on every host with JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID (or PIX2PITCH_DISTRIBUTED=1): each host scores its share of
the examples and process 0 writes the one report (docs/evaluation.md).
"""

from absl import flags

from pix2pitch_jax.core import cli

_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Training workdir (config.json, checkpoints/).', required=True
)
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest' or a step number.")
_SPLIT = flags.DEFINE_string('split', 'test', 'Dataset split to evaluate on.')
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', None, 'Evaluate on the first N examples.')
_BATCH_SIZE = flags.DEFINE_integer(
  'batch_size', 8, 'Batch size per process (rounded up to its device count).'
)
_GL_ITERS = flags.DEFINE_integer('griffin_lim_iters', 32, 'Griffin-Lim iterations per clip.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the Griffin-Lim initial phases.')

_VOCODER = flags.DEFINE_list(
  'vocoder',
  ['griffin_lim'],
  "Vocoders whose audio is scored (audio descriptors, basic-pitch's notes, mel consistency), "
  'comma-separated: griffin_lim, midi (notes -> .mid -> FluidSynth; soundfont: '
  '$PIX2PITCH_SOUNDFONT or the best installed), neural (a trained vocoder).',
)
_VOCODER_WORKDIR = flags.DEFINE_string(
  'vocoder_workdir',
  None,
  'With --vocoder=neural: the training workdir of a vocoder '
  '(--config=experiments/vocoder_demo.py); default: <workdir>/vocoder.',
)

_IMAGE_TO_SOUND = flags.DEFINE_bool(
  'image_to_sound',
  True,
  'For a cyclegan run: also score its picture -> mel generator with the metrics above.',
)
_WEIGHTS = flags.DEFINE_enum(
  'weights',
  'ema',
  ['ema', 'raw'],
  "The generator's moving-average weights (when training kept them; else its weights) or raw.",
)


def main() -> None:
  from pix2pitch_jax.runtime import sharding  # JAX only after flag parsing

  sharding.maybe_initialize_distributed()  # before any other JAX call
  from pix2pitch_jax import inference
  from pix2pitch_jax.evaluation import cyclegan_eval
  from pix2pitch_jax.evaluation import job as evaluation_job

  if inference.is_cyclegan(inference.read_config(_WORKDIR.value)):
    cycle = cyclegan_eval.evaluate(
      _WORKDIR.value,
      cli.parse_checkpoint(_CHECKPOINT.value),
      _SPLIT.value,
      _MAX_EXAMPLES.value,
      weights=_WEIGHTS.value,
      batch_size=_BATCH_SIZE.value,
      seed=_SEED.value,
    )
    if sharding.is_main_process():
      print(cyclegan_eval.render_report(cycle['metrics']))
      print(f'metrics: {cycle["metrics_json"]}\nreport:  {cycle["report_md"]}')
    if not _IMAGE_TO_SOUND.value:
      return
  result = evaluation_job.evaluate(
    _WORKDIR.value,
    cli.parse_checkpoint(_CHECKPOINT.value),
    _SPLIT.value,
    _MAX_EXAMPLES.value,
    batch_size=_BATCH_SIZE.value,
    griffin_lim_iters=_GL_ITERS.value,
    seed=_SEED.value,
    weights=_WEIGHTS.value,
    vocoder_names=_VOCODER.value,
    vocoder_workdir=_VOCODER_WORKDIR.value,
  )
  if not sharding.is_main_process():
    return
  print(evaluation_job.render_report(result['metrics']))  # what report_md holds, wherever it is
  print(f'metrics: {result["metrics_json"]}\nreport:  {result["report_md"]}')


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
