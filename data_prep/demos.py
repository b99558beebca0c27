"""The built-in demo corpora: one entry point over `demo_synesthesia` and `demo_eras`.

Kept apart from `builder` so the imports run one way: the demo modules use the builder, and
this module uses both.
"""

from __future__ import annotations

import os
from typing import Any

from data_prep import builder, demo_eras, demo_synesthesia

DEMOS = ('synesthesia', 'eras')


def build_demo(
  name: str,
  out_dir: str | os.PathLike,
  *,
  image_size: int = 128,
  num_paintings: int | None = None,
  workers: int | None = None,
  seed: int = 0,
  **options,
) -> dict:
  """Build a built-in demo corpus ('synesthesia' or 'eras'); returns the report.

  Demo defaults (agreed with training): 128 px, 4 s clips at 22 050 Hz, n_fft 2048 (hop 689
  samples, ~31 ms per frame), each clip's waveform stored too (`store_audio`: a neural vocoder
  trains on the demos). Any BuildOptions field can be overridden by keyword.
  """
  if name not in DEMOS:
    raise ValueError(f'unknown demo {name!r}; choose one of {DEMOS}')
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
