"""Smoke test / CI: the demo's pix2pix recipe (`eras`: GAN + L1, so G and D both train) shrunk
to 32x32 and a few steps (seconds on a CPU).

    python -m pix2pitch_jax.train --config=experiments/tiny.py --workdir=/tmp/tiny \
        --config.data_dir=<a 32x32 dataset>
"""

from pix2pitch_jax.demo.config import get_config as demo_config


def get_config():
  config = demo_config('eras')
  config.image_size = 32
  config.batch_size = 8  # one example per device on 8 virtual CPU devices
  config.num_train_steps = 4
  config.checkpoint_every_steps = 2
  config.keep_checkpoints = 3
  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.eval_max_examples = 0
  config.num_images = 2
  config.model.ngf = 8
  config.model.ndf = 8
  # XLA:CPU compiles the native convolutions faster than the CPU-fast 'gemm' formulation (this
  # step: 19 s vs 33 s on 2 cores, a whole 2-step run 43 s vs 64 s); at 32x32 running time does
  # not matter, and the tests compile this step many times.
  config.model.conv_impl = 'native'
  return config
