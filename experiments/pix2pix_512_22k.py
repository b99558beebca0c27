"""Thesis model: 512x512 mels at 22 050 Hz (finer frequency and time resolution).

U-Net with 9 down-steps (one more 512-channel level than U-Net-256); otherwise as
pix2pix_256_22k. 4x the pixels per step: on one GPU prefer bfloat16 compute.
"""

from pix2pitch_jax.core import configs


def get_config():
  config = configs.load_config_file(configs.sibling('pix2pix_256_22k.py', __file__))
  config.image_size = 512
  return config
