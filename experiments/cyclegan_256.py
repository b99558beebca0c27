"""CycleGAN sound <-> picture at 256x256, the reference recipe unchanged (ResNet-9-block
generators, ngf = ndf = 64, batch 1, 200 "epochs" as 100 000 constant + 100 000 decaying steps).
Build the dataset with --image_size=256 (paired or unpaired: the two sides are drawn apart).

    pix2pitch-train --config=experiments/cyclegan_256.py --workdir=runs/cg256 \
        --config.data_dir=/data/squiggles_256
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('cyclegan_base.py', __file__))
  config.image_size = 256
  config.batch_size = 1
  config.num_train_steps = 200_000
  config.checkpoint_every_steps = 5000
  config.eval_every_steps = 10_000
  config.eval_max_examples = 256
  config.log_every_steps = 100
  config.model.ema_decay = 0.999
  return config
