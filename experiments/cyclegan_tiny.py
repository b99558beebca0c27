"""Tests / smoke runs: CycleGAN at 32x32, two residual blocks, a few steps (seconds on a CPU).

    pix2pitch-train --config=experiments/cyclegan_tiny.py --workdir=/tmp/cg_tiny \
        --config.data_dir=<a 32x32 dataset>
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('cyclegan_base.py', __file__))
  config.image_size = 32
  config.batch_size = 8  # one example per device on 8 virtual CPU devices
  config.num_train_steps = 4
  config.checkpoint_every_steps = 2
  config.keep_checkpoints = 3
  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.num_images = 2
  config.model.ngf = 8
  config.model.ndf = 8
  config.model.n_layers_D = 2
  config.model.ema_decay = 0.9  # exercises the moving average's item
  config.cyclegan.resnet_blocks = 2
  # XLA compiles the native convolutions in half the time of the CPU-fast 'gemm' formulation
  # (53 s vs 104 s for this step on a loaded 2-core CPU); at 32x32 running time does not matter.
  config.model.conv_impl = 'native'
  config.cyclegan.pool_size = 10
  config.input.workers = 0
  return config
