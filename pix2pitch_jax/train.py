r"""Train a model on a records dataset (thin main; the library is `pix2pitch_jax.training`).

    pix2pitch-train --config=experiments/demo.py --workdir=runs/demo \
        --config.data_dir=runs/demo/data [--config.num_train_steps=2000 ...]

(`python -m pix2pitch_jax.train` is the same.) Re-running the same command resumes from the
newest checkpoint in `--workdir`. Multi-host: start the same command on every host with
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (or PIX2PITCH_DISTRIBUTED=1 on SLURM /
Cloud TPU); see docs/training.md.
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

from pix2pitch_jax.core import cli

# lock_config=False: a mistyped key (--config.model.lambda_l1) is added rather than refused deep
# inside flag parsing with a traceback; `configs.check_known_keys` then names it in one line.
_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'experiments/<name>.py', lock_config=False
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs, config.json.')
flags.mark_flags_as_required(['config', 'workdir'])


def main() -> None:
  workdir = _WORKDIR.value
  if workdir is None:  # absl enforces mark_flags_as_required before main runs
    raise app.UsageError('--workdir is required')
  from pix2pitch_jax.runtime import sharding  # JAX only after flag parsing

  sharding.maybe_initialize_distributed()  # before any other JAX call
  from pix2pitch_jax.training import trainer  # only after distributed init

  summary = trainer.train_and_evaluate(_CONFIG.value, workdir)
  logging.info('summary: %s', json.dumps(summary, default=str))


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
