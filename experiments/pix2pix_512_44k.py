"""Thesis model: 512x512 mels of clips at 44 100 Hz (the dataset's mel_params carry the rate).

The network is the same as pix2pix_512_22k; the sample rate is a property of the dataset
(built by data_prep with --sample_rate=44100), checked through its image size.
"""

from pix2pitch_jax.core import configs


def get_config():
  return configs.load_config_file(configs.sibling('pix2pix_512_22k.py', __file__))
