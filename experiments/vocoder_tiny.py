"""Smoke test / CI: the neural vocoder shrunk to seconds on a CPU (tests/test_vocoder.py).

    python -m pix2pitch_jax.train --config=experiments/vocoder_tiny.py --workdir=/tmp/voc \
        --config.data_dir=<a small dataset built with audio>
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.default_config()
  config.family = 'vocoder'
  config.image_size = 32
  config.batch_size = 8  # one example per device on 8 virtual CPU devices
  config.num_train_steps = 4
  config.checkpoint_every_steps = 2
  config.keep_checkpoints = 3
  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.eval_max_examples = 4
  config.vocoder.dim = 16
  config.vocoder.intermediate_dim = 32
  config.vocoder.num_layers = 2
  config.vocoder.segment_frames = 8
  config.vocoder.stft_resolutions = ((128, 32), (256, 64))
  config.vocoder.num_audio = 1
  config.optimizer.lr = 1e-3
  config.optimizer.decay_start_step = 2
  config.input.workers = 0
  return config
