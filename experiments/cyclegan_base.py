"""The CycleGAN recipe users know (pytorch-CycleGAN-and-pix2pix defaults), sound <-> picture:
ResNet-9-block generators, 70x70 PatchGANs, instance norm, LSGAN, cycle L1 x10 both ways,
identity 0.5 x 10, image pools of 50, Adam 2e-4 / 0.5 with constant then linear decay, batch 1.
The other cyclegan_*.py configs start from this one. The recipe lives in the package
(`configs.cyclegan_reference_config`), so that the squiggles demo finds it from any directory.
"""

from pix2pitch_jax.core import configs


def get_config():
  return configs.cyclegan_reference_config()
