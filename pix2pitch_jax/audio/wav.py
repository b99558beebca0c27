"""Writing audio files, locally or to cloud storage (`gs://...`)."""

from __future__ import annotations

import io
import os

import numpy as np

from pix2pitch_jax.core import workdir as workdir_lib


def wav_bytes(clip: np.ndarray, sample_rate: int) -> bytes:
  """16-bit PCM WAV; clips peaking above full scale are scaled down rather than clipped."""
  import soundfile

  clip = np.asarray(clip, np.float32)
  peak = float(np.max(np.abs(clip))) if clip.size else 0.0
  if peak > 0.999:
    clip = clip * (0.999 / peak)
  # Encoded in memory: libsndfile seeks back to fill in the header, which an object-store
  # upload stream cannot do; the bytes are then written in one go through etils.epath.
  buffer = io.BytesIO()
  soundfile.write(buffer, clip, sample_rate, subtype='PCM_16', format='WAV')
  return buffer.getvalue()


def write_wav(path: str | os.PathLike, clip: np.ndarray, sample_rate: int) -> None:
  """`wav_bytes` written to `path` (a local path or a URI)."""
  workdir_lib.as_path(path).write_bytes(wav_bytes(clip, sample_rate))
