"""Demo: CycleGAN on the `squiggles` corpus (1 s single-note clips <-> small drawings) on a
2-core CPU, in minutes.

The reference's 128-pixel recipe (ResNet-6-block generators) at a quarter of its width (ngf =
ndf = 16), batch 4, 64x64 (the corpus default; for a 128x128 corpus pass
--config.image_size=128). No jitter: the corpus' rule ties a drawing's height to the pitch,
which a random crop would blur; pictures are still flipped left-right (the rule does not care),
mels never. Identity loss as in the reference (0.5 x 10).

    pix2pitch-train --config=experiments/cyclegan_demo.py --workdir=runs/squiggles/train \
        --config.data_dir=runs/squiggles/data
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('cyclegan_base.py', __file__))
  config.image_size = 64
  config.batch_size = 4
  config.num_train_steps = 2000
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.eval_max_examples = 64
  config.model.ngf = 16
  config.model.ndf = 16
  config.model.ema_decay = 0.99  # a short run: the average of its last ~100 steps
  config.cyclegan.resnet_blocks = 6
  config.input.jitter = False
  config.input.flip = True
  config.input.workers = 0
  return config
