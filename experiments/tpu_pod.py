"""Multi-host / multi-GPU: pix2pix-256 data-parallel over every device of every host.

Global batch 256 sharded over all devices (e.g. a v5e-64 pod slice: 4 per chip; 8 x H100:
32 per GPU), bfloat16 compute with float32 parameters, BatchNorm statistics over the global
batch. Scaling pix2pix's lr (2e-4 at batch 1) linearly to batch 256 would destabilise the GAN;
8e-4 is an untuned starting point for a sweep. Set `--config.fsdp=True` to shard parameters and
Adam state over the data axis when memory, not compute, is the limit (512^2, big ngf).

Launch the same command on every host; see docs/training.md (JAX_COORDINATOR_ADDRESS, ...).
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('pix2pix_256_22k.py', __file__))
  config.batch_size = 256
  config.dtype = 'bfloat16'
  config.fsdp = False
  config.num_train_steps = 40_000
  config.optimizer.lr = 8e-4
  config.checkpoint_every_steps = 1000
  config.eval_every_steps = 2000
  config.log_every_steps = 50
  config.input.shuffle_buffer = 0
  return config
