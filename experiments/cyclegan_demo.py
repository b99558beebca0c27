"""Demo: CycleGAN on the `squiggles` corpus (1 s single-note clips <-> small drawings) on a
2-core CPU, in minutes, with a sound -> picture generator sized for the visualiser's real time
(ResNet-6-block, ngf 8, three halvings, 3x3 edges: 0.36 GFLOP per 128x128 picture).

The recipe lives in the package (`pix2pitch_jax/demo/config.py: _squiggles_recipe`, read there for
its reasons) so that `pix2pitch-demo --demo=squiggles` finds it from any directory; this file is
the same config by path:

    pix2pitch-train --config=experiments/cyclegan_demo.py --workdir=runs/squiggles/train \
        --config.data_dir=runs/squiggles/data
"""

from pix2pitch_jax.demo import config as demo_config


def get_config():
  return demo_config.get_config('squiggles')
