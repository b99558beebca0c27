"""`pix2pitch-demo` (and `python -m pix2pitch_jax.demo`): build a demo corpus, train, evaluate,
generate galleries. The pipeline is `pix2pitch_jax.demo.pipeline.run_demo`."""

from absl import flags

from pix2pitch_jax.core import cli
from pix2pitch_jax.demo import pipeline

_DEMO = flags.DEFINE_enum(
  'demo', 'synesthesia', pipeline.DEMOS, 'Which built-in demo corpus to use.'
)
_WORKDIR = flags.DEFINE_string('workdir', 'runs/demo', 'Where the demo writes everything.')
_CONFIG = flags.DEFINE_string(
  'config',
  None,
  'Training config file (a get_config() module); '
  'default: the packaged demo config (experiments/demo.py).',
)
_NUM_STEPS = flags.DEFINE_integer(
  'num_train_steps', None, "Override the config's number of training steps."
)
_GALLERY_SIZE = flags.DEFINE_integer(
  'gallery_size',
  24,
  'How many test examples get audio in the gallery (squiggles: test notes in the video).',
)


def main() -> None:
  overrides = {} if _NUM_STEPS.value is None else {'num_train_steps': _NUM_STEPS.value}
  pipeline.run_demo(
    _DEMO.value,
    _WORKDIR.value,
    config_path=_CONFIG.value,
    config_overrides=overrides,
    gallery_size=_GALLERY_SIZE.value,
  )


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
