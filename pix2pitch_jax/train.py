r"""Train pix2pix on a records dataset (thin main; the library is `pix2pitch_jax.trainer`).

    python -m pix2pitch_jax.train --config=experiments/demo.py --workdir=runs/demo \
        --config.data_dir=runs/demo/data [--config.num_train_steps=2000 ...]

Re-running the same command resumes from the newest checkpoint in `--workdir`. Multi-host: start
the same command on every host with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
(or PIX2PITCH_DISTRIBUTED=1 on SLURM / Cloud TPU); see docs/training.md.
"""

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from pix2pitch_jax import logs, sharding

_CONFIG = config_flags.DEFINE_config_file('config', None, 'experiments/<name>.py',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs, config.json.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_library_logs()
  sharding.maybe_initialize_distributed()  # before any other jax call
  from pix2pitch_jax import trainer  # noqa: PLC0415 -- after distributed init
  try:
    summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ValueError as e:
    if str(e).startswith('Bad config'):
      sys.exit(f'error: {e}')
    raise
  logging.info('summary: %s', json.dumps(summary, default=str))


if __name__ == '__main__':
  app.run(main)
