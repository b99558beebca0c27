"""Writing audio files, locally or to cloud storage (`gs://...`)."""

from __future__ import annotations

import io
import os

import numpy as np

from pix2pitch_jax.core import workdir as workdir_lib


def wav_bytes(clip: np.ndarray, sample_rate: int) -> bytes:
  """A 16-bit PCM WAV file's bytes; clips peaking above full scale are scaled down, not clipped.

  Encoded in memory: libsndfile seeks back to fill in the header, which an object-store upload
  stream cannot do; the bytes are then written in one go through etils.epath.
  """
  import soundfile

  buffer = io.BytesIO()
  soundfile.write(buffer, _with_headroom(clip), sample_rate, subtype='PCM_16', format='WAV')
  return buffer.getvalue()


def write_wav(path: str | os.PathLike, clip: np.ndarray, sample_rate: int) -> None:
  """`wav_bytes` written to `path` (a local path or a URI)."""
  workdir_lib.as_path(path).write_bytes(wav_bytes(clip, sample_rate))


def _with_headroom(clip: np.ndarray) -> np.ndarray:
  clip = np.asarray(clip, np.float32)
  peak = float(np.max(np.abs(clip))) if clip.size else 0.0
  return clip * (0.999 / peak) if peak > 0.999 else clip
