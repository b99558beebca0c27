"""Demo: the built-in demo corpora (128x128 mels of 4 s clips) on a 2-core CPU.

The recipe lives in the package (`pix2pitch_jax/demo/config.py`, read there for its reasons) so
that `pix2pitch-demo` finds it from any directory; this file is the same config by path:

    pix2pitch-train --config=experiments/demo.py --workdir=runs/demo/train \
        --config.data_dir=runs/demo/data          # synesthesia; experiments/demo.py:eras
"""

from pix2pitch_jax.demo.config import get_config

__all__ = ['get_config']
