"""Thesis model: 512x512 mels at 22 050 Hz (finer frequency and time resolution).

U-Net with 9 down-steps (one more 512-channel level than U-Net-256); otherwise as
pix2pix_256_22k. 4x the pixels per step: on one GPU prefer bfloat16 compute.
"""

from experiments import pix2pix_256_22k


def get_config():
  config = pix2pix_256_22k.get_config()
  config.image_size = 512
  return config
