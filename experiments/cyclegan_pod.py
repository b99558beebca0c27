"""Multi-host / multi-GPU CycleGAN at 256x256: data-parallel over every device of every host.

Global batch 64 (e.g. 8 x H100: 8 per GPU), bfloat16 compute with float32 parameters. Instance
norm is per example, so nothing about the model depends on the device count; each image pool
holds 64 generated images per domain (one global batch) and lives replicated on every device.
CycleGAN's lr of 2e-4 is tuned at batch 1; 4e-4 at batch 64 is an untuned starting point for a
sweep. Launch the same command on every host; see docs/training.md.
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('cyclegan_256.py', __file__))
  config.batch_size = 64
  config.dtype = 'bfloat16'
  config.num_train_steps = 20_000
  config.optimizer.lr = 4e-4
  config.cyclegan.pool_size = 64
  config.checkpoint_every_steps = 1000
  config.eval_every_steps = 2000
  config.log_every_steps = 50
  return config
