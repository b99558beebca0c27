"""The training entry point: `train_and_evaluate(config, workdir)` for any model family.

It runs the checks every family shares (`loop.validate_common`), builds the family named by
`config.family` (which checks its own fields), and hands it to the shared loop (`loop.train`).
A new family registers its `Task` class in `FAMILIES`; it does not copy the loop.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from pix2pitch_jax.training import cyclegan_task, loop, pix2pix_task, vocoder_task

FAMILIES: dict[str, Any] = {
  'pix2pix': pix2pix_task.Pix2PixTask,
  'cyclegan': cyclegan_task.CycleGANTask,
  'vocoder': vocoder_task.VocoderTask,
}


def make_task(config: ml_collections.ConfigDict) -> loop.Task:
  """The validated task `config` describes (ConfigError, one line, for anything wrong)."""
  meta = loop.validate_common(config)
  loop.require(
    config.family in FAMILIES, f'family must be one of {sorted(FAMILIES)}, got {config.family!r}'
  )
  return FAMILIES[config.family](config, meta)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Train (resuming from `workdir` if it has checkpoints); returns the loop's summary.

  Summary: final `step`, the last logged metrics (pix2pix: `G_GAN`, `G_L1`, `D_real`, `D_fake`,
  ...), the last evaluation's (`val_L1`), `resumed_from` (step or None), `preempted` (bool).
  """
  return loop.train(make_task(config), workdir)
