"""Thesis model: 512x512 mels of clips at 44 100 Hz (the dataset's mel_params carry the rate).

The network is the same as pix2pix_512_22k; the sample rate is a property of the dataset
(built by data_prep with --sample_rate=44100), checked through its image size.
"""

from experiments import pix2pix_512_22k


def get_config():
  return pix2pix_512_22k.get_config()
