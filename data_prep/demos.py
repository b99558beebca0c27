"""The built-in demo corpora: one entry point over `demo_synesthesia`, `demo_eras` and
`demo_squiggles`.

Kept apart from `builder` so the imports run one way: the demo modules use the builder, and
this module uses both.
"""

from __future__ import annotations

import os
from typing import Any

from data_prep import builder, demo_eras, demo_squiggles, demo_synesthesia

DEMOS = ('synesthesia', 'eras', 'squiggles')


def build_demo(
  name: str,
  out_dir: str | os.PathLike,
  *,
  image_size: int | None = None,
  num_paintings: int | None = None,
  workers: int | None = None,
  seed: int = 0,
  **options,
) -> dict:
  """Build a built-in demo corpus ('synesthesia', 'eras' or 'squiggles'); returns the report.

  Demo defaults (agreed with training): 128 px, 4 s clips at 22 050 Hz, n_fft 2048 (hop 689
  samples, ~31 ms per frame). squiggles: 64 px, 1 s clips at 22 050 Hz, n_fft 16 x image_size
  (1024 at 64 px: hop 344 samples, ~16 ms per frame). synesthesia and eras store each clip's
  waveform too (`store_audio`: a neural vocoder trains on them). Any BuildOptions field can be
  overridden by keyword.
  """
  if name not in DEMOS:
    raise ValueError(f'unknown demo {name!r}; choose one of {DEMOS}')
  if name == 'squiggles':
    size = image_size or 64
    squiggle_defaults: dict[str, Any] = dict(
      sample_rate=22_050,
      clip_seconds=1.0,
      n_fft=16 * size,
      shard_size=100,
      val_fraction=0.125,
      test_fraction=0.125,
    )
    opts = builder.make_options(
      **{**squiggle_defaults, **options, 'image_size': size, 'workers': workers, 'seed': seed}
    )
    return demo_squiggles.build(out_dir, opts, num_paintings)
  image_size = image_size or 128
  defaults: dict[str, Any] = dict(
    sample_rate=22_050, clip_seconds=4.0, n_fft=2048, shard_size=64, store_audio=True
  )
  if name == 'synesthesia':
    # The synesthesia mel spans only the band its notes live in, so that every stroke sits on the
    # canvas row of its own fundamental (see demo_synesthesia).
    defaults.update(
      val_fraction=0.125,
      test_fraction=0.125,
      fmin=demo_synesthesia.FMIN_HZ,
      fmax=demo_synesthesia.FMAX_HZ,
    )
    opts = builder.make_options(
      **{**defaults, **options, 'image_size': image_size, 'workers': workers, 'seed': seed}
    )
    return demo_synesthesia.build(out_dir, opts, num_paintings)
  defaults.update(clip_hop_seconds=2.0, era_set='music21', max_clips_per_recording=24)
  opts = builder.make_options(
    **{**defaults, **options, 'image_size': image_size, 'workers': workers, 'seed': seed}
  )
  return demo_eras.build(out_dir, opts, num_paintings)
