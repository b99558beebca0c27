"""Demo: the built-in demo corpora (128x128 mels of 4 s clips) on a 2-core CPU in ~7 minutes.

A half-width pix2pix (ngf = ndf = 32, 7 U-Net levels at 128^2) at batch 4 runs at ~2 steps/s on
2 CPU cores (measured, see docs/training.md); 800 steps = 3 200 examples, enough for the L1 term
to learn the painting -> mel mapping of the synthetic demo corpus.

    python -m pix2pitch_jax.train --config=experiments/demo.py --workdir=runs/demo \
        --config.data_dir=runs/demo/data
"""

from pix2pitch_jax import trainer


def get_config():
  config = trainer.default_config()
  config.image_size = 128
  config.batch_size = 4
  config.num_train_steps = 800
  config.checkpoint_every_steps = 200
  config.keep_checkpoints = 2
  config.log_every_steps = 50
  config.eval_every_steps = 200
  config.eval_max_examples = 64
  config.model.ngf = 32
  config.model.ndf = 32
  config.input.workers = 0
  return config
