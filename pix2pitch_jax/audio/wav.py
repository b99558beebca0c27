"""Writing audio files."""

from __future__ import annotations

import os

import numpy as np


def write_wav(path: str | os.PathLike, clip: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM WAV; clips peaking above full scale are scaled down rather than clipped."""
  import soundfile

  clip = np.asarray(clip, np.float32)
  peak = float(np.max(np.abs(clip))) if clip.size else 0.0
  if peak > 0.999:
    clip = clip * (0.999 / peak)
  soundfile.write(str(path), clip, sample_rate, subtype='PCM_16')
