"""The neural vocoder on a demo corpus (128x128 mels of 4 s clips at 22 050 Hz), on a 2-core CPU.

A small Vocos-style vocoder (~1.9 M parameters: width 192, 6 ConvNeXt blocks) trained on random
1 s crops (32 frames) of the corpus' clips, 16 a step, for 1 800 steps: about 30 minutes on two
shared cores (measured figures in WORKSPACE_NOTES.md, "Neural vocoder"). Any corpus built with
audio works (the demo corpora store it):

    python -m data_prep.build --demo=eras --out=runs/eras_data
    python -m pix2pitch_jax.train --config=experiments/vocoder_demo.py \
        --workdir=runs/vocoder --config.data_dir=runs/eras_data
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.default_config()
  config.family = 'vocoder'
  config.image_size = 128
  config.batch_size = 16
  config.num_train_steps = 1800
  config.checkpoint_every_steps = 300
  config.keep_checkpoints = 2
  config.log_every_steps = 100
  config.eval_every_steps = 600
  config.eval_max_examples = 32
  config.vocoder.dim = 192
  config.vocoder.intermediate_dim = 576
  config.vocoder.num_layers = 6
  config.vocoder.segment_frames = 32
  config.vocoder.ema_decay = 0.99  # ~100 steps: the lr decays to 0 over the second half anyway
  # Vocos' Adam settings (b1 0.8, b2 0.9 in the paper; 0.99 here for the small batches).
  config.optimizer.lr = 1e-3
  config.optimizer.b1 = 0.8
  config.optimizer.b2 = 0.99
  config.optimizer.decay_start_step = 900
  config.input.workers = 0
  return config
