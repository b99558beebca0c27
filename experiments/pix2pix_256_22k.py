"""Thesis model: 256x256 mels of 10 s clips at 22 050 Hz, the pix2pix recipe as published.

U-Net-256 (8 down-steps) + 70x70 PatchGAN, batch 1, BatchNorm, vanilla GAN + 100 L1,
Adam 2e-4 / 0.5, 100 epochs constant + 100 decaying (pix2pix defaults) expressed in steps
for a ~2 000-pair training split at batch 1.
"""

from pix2pitch_jax.core import configs

TRAIN_EXAMPLES = 2000  # steps per epoch at batch 1; adjust to your dataset's train split


def get_config():
  config = configs.default_config()
  config.image_size = 256
  config.batch_size = 1
  # n_epochs + n_epochs_decay = 100 + 100: decay starts at num_train_steps // 2 (the default).
  config.num_train_steps = 200 * TRAIN_EXAMPLES
  config.checkpoint_every_steps = 5 * TRAIN_EXAMPLES
  config.keep_checkpoints = 3
  config.log_every_steps = 100
  config.eval_every_steps = 5 * TRAIN_EXAMPLES
  config.eval_max_examples = 256
  return config
