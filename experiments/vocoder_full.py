"""The neural vocoder at full size for a GPU or TPU: Vocos' base width (512, 8 ConvNeXt blocks,
~14 M parameters at 256x256 / 22 050 Hz), random 64-frame crops (~2.5 s at 256 frames per 10 s),
batch 64, one million steps. For the thesis' datasets (`--image_size=256` or 512 at 22 050 or
44 100 Hz) built with `--store_audio`:

    python -m pix2pitch_jax.train --config=experiments/vocoder_full.py \
        --workdir=gs://bucket/vocoder_256 --config.data_dir=/data/pix2pitch_256_audio
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.default_config()
  config.family = 'vocoder'
  config.image_size = 256
  config.batch_size = 64
  config.num_train_steps = 1_000_000
  config.checkpoint_every_steps = 5000
  config.keep_checkpoints = 3
  config.log_every_steps = 500
  config.eval_every_steps = 20_000
  config.eval_max_examples = 256
  config.vocoder.dim = 512
  config.vocoder.intermediate_dim = 1536
  config.vocoder.num_layers = 8
  config.vocoder.segment_frames = 64
  config.vocoder.ema_decay = 0.9999
  config.optimizer.lr = 5e-4
  config.optimizer.b1 = 0.8
  config.optimizer.b2 = 0.99
  config.optimizer.decay_start_step = 500_000
  return config
