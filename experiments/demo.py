"""Demo: the built-in demo corpora (128x128 mels of 4 s clips) on a 2-core CPU in ~7 minutes.

A half-width pix2pix (ngf = ndf = 32, 7 U-Net levels at 128^2) at batch 4. Measured on 2 CPU
cores (synesthesia corpus, 602 training pairs): 3.4-3.8 steps/s alone, 2.2 steps/s while
another job shares the cores; 800 steps took 8.5 min wall-clock under that contention
(validation L1 0.103 at step 200, 0.093 at 400 and 800). 1 000 steps = 4 000 examples,
~6-8 minutes including compilation and the evaluations.

    python -m pix2pitch_jax.train --config=experiments/demo.py --workdir=runs/demo \
        --config.data_dir=runs/demo/data
"""

from pix2pitch_jax import trainer


def get_config():
  config = trainer.default_config()
  config.image_size = 128
  config.batch_size = 4
  config.num_train_steps = 1000
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.eval_max_examples = 64
  config.model.ngf = 32
  config.model.ndf = 32
  config.input.workers = 0
  return config
