"""Demo: the built-in demo corpora (128x128 mels of 4 s clips) on a 2-core CPU in ~7 minutes.

A half-width pix2pix (ngf = ndf = 32, 7 U-Net levels at 128^2) at batch 4: 3.4-3.8 steps/s on
2 idle CPU cores, ~2.2 steps/s while another job shares them. 1 000 steps = 4 000 examples.
Measured figures are in WORKSPACE_NOTES.md.

No jitter and no flip: the demo paintings are synthetic and spatially aligned with their music
(on `synesthesia` a stroke's column is its onset time), so pix2pix's painting-only flip would
pair mirrored paintings with unmirrored music, and the resize-and-crop jitter would move notes
off their pitch rows.

    pix2pitch-train --config=experiments/demo.py --workdir=runs/demo/train \
        --config.data_dir=runs/demo/data
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.default_config()
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
  config.input.jitter = False
  config.input.flip = False
  config.input.workers = 0
  return config
