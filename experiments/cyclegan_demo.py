"""Demo: CycleGAN on the `squiggles` corpus (1 s single-note clips <-> small drawings) on a
2-core CPU, in minutes.

The reference's 128-pixel recipe (ResNet-6-block generators) sized for the visualiser's real time
(>= 30 frames/s at 128x128 on 2 CPU cores, bench/visualise.py): generators of ngf = 8 that halve
three times (the blocks at S/8 with 64 channels) with 3x3 stem and head convolutions, 0.36 GFLOP per
128x128 picture against the reference geometry's 1.32 at ngf 16; discriminators of ndf = 16. Batch
4, 64x64 (the corpus default; for a 128x128 corpus pass --config.image_size=128). No jitter: the
corpus' rule ties a drawing's height to the pitch, which a random crop would blur; pictures are
still flipped left-right (the rule does not care), mels never. Identity loss as in the reference
(0.5 x 10).

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
  config.model.ngf = 8
  config.model.ndf = 16
  config.model.ema_decay = 0.99  # a short run: the average of its last ~100 steps
  config.cyclegan.resnet_blocks = 6
  config.cyclegan.downsampling = 3
  config.cyclegan.edge_kernel = 3
  config.input.jitter = False
  config.input.flip = True
  config.input.workers = 0
  return config
