"""The CycleGAN recipe users know (pytorch-CycleGAN-and-pix2pix defaults), sound <-> picture:
ResNet-9-block generators, 70x70 PatchGANs, instance norm, LSGAN, cycle L1 x10 both ways,
identity 0.5 x 10, image pools of 50, Adam 2e-4 / 0.5 with constant then linear decay, batch 1.
The other cyclegan_*.py configs start from this one.
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.default_config()
  config.family = 'cyclegan'
  config.batch_size = 1
  config.model.norm = 'instance'
  config.model.gan_mode = 'lsgan'
  config.model.use_dropout = False
  config.model.ema_decay = 0.0  # the reference keeps none; a config may turn it on
  config.cyclegan.generator = 'resnet'
  config.cyclegan.resnet_blocks = 9
  config.cyclegan.lambda_cycle = 10.0
  config.cyclegan.lambda_identity = 0.5
  config.cyclegan.pool_size = 50
  # Mels are never flipped (their columns are time); pictures are, as in the reference.
  config.input.jitter = True
  config.input.flip = True
  return config
