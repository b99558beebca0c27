"""Writing audio files."""

from __future__ import annotations

import io
import os

import numpy as np


def write_wav(path: str | os.PathLike, clip: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM WAV; clips peaking above full scale are scaled down rather than clipped."""
  import soundfile

  soundfile.write(str(path), _with_headroom(clip), sample_rate, subtype='PCM_16')


def wav_bytes(clip: np.ndarray, sample_rate: int) -> bytes:
  """The bytes `write_wav` writes: for storage that is not a local file (etils.epath)."""
  import soundfile

  buf = io.BytesIO()
  soundfile.write(buf, _with_headroom(clip), sample_rate, subtype='PCM_16', format='WAV')
  return buf.getvalue()


def _with_headroom(clip: np.ndarray) -> np.ndarray:
  clip = np.asarray(clip, np.float32)
  peak = float(np.max(np.abs(clip))) if clip.size else 0.0
  return clip * (0.999 / peak) if peak > 0.999 else clip
