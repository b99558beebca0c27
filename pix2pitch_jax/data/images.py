"""Paintings -> square uint8 RGB arrays: the one loader shared by data_prep, inference and eval.

Whatever a user feeds in (a WikiArt JPEG, a PNG with alpha, a palette GIF, a CMYK print scan, a
16-bit TIFF, a phone photo with an EXIF rotation flag), the model sees the same thing: an
(S, S, 3) uint8 RGB array, upright, with transparency composited on white.

Two ways to make it square:
  'crop'  -- resize so the shorter side is S, then cut the centre square (keeps aspect ratio;
             pytorch-CycleGAN-and-pix2pix's `resize_and_crop` with load size == crop size).
  'scale' -- plain resize to S x S (what the thesis did; distorts non-square paintings).
"""

from __future__ import annotations

import io
import os
from typing import IO

import numpy as np
from PIL import Image, ImageOps

PaintingSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image
MODES = ('crop', 'scale')
_RESAMPLE = Image.Resampling.LANCZOS


class UnreadableImageError(OSError):
  """The bytes are not an image PIL can decode (corrupt, truncated, empty or unknown format)."""


def load_painting(source: PaintingSource, size: int, mode: str = 'crop') -> np.ndarray:
  """Decode `source` into an upright (size, size, 3) uint8 RGB array.

  Args:
    source: a file path, the encoded bytes, or an already-open PIL image.
    size: side of the square output, in pixels.
    mode: 'crop' (shorter side to `size`, centre crop) or 'scale' (plain square resize).

  Raises:
    ValueError: `size` or `mode` is invalid.
    UnreadableImageError: the source cannot be decoded as an image.
  """
  if not isinstance(size, (int, np.integer)) or size < 1:
    raise ValueError(f'size must be a positive int, got {size!r}')
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
  image = _open(source, size)
  rgb = to_rgb(ImageOps.exif_transpose(image))
  if mode == 'crop':
    square = ImageOps.fit(rgb, (size, size), method=_RESAMPLE, centering=(0.5, 0.5))
  else:
    square = rgb.resize((size, size), _RESAMPLE)
  return np.asarray(square, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
  """Any PIL mode -> 8-bit RGB; transparent areas become white (paintings are seen on paper)."""
  if image.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
    image = Image.fromarray(_to_uint8(np.asarray(image)))  # 2-D uint8: mode L
  if image.mode == 'P':
    image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
  if image.mode in ('LA', 'La', 'PA', 'RGBa'):
    image = image.convert('RGBA')
  if image.mode == 'RGBA':
    white = Image.new('RGBA', image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert('RGB')
  return image if image.mode == 'RGB' else image.convert('RGB')


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
  """High-bit-depth greyscale -> uint8. PIL's own convert clips 16-bit values at 255 instead."""
  if pixels.dtype.kind == 'f':
    # Float images are conventionally in [0, 1]; anything larger is taken to be on a 0..255 scale.
    scale = 255.0 if pixels.size and float(np.nanmax(pixels)) <= 1.0 else 1.0
    return np.clip(np.nan_to_num(pixels) * scale, 0, 255).round().astype(np.uint8)
  # 16-bit data (also stored by PIL in 32-bit 'I' mode): 65535 -> 255.
  return np.clip(pixels.astype(np.float64) / 257.0, 0, 255).round().astype(np.uint8)


def _open(source: PaintingSource, size: int) -> Image.Image:
  """Open and fully decode `source`, turning every decoder failure into UnreadableImageError."""
  if isinstance(source, Image.Image):
    return source
  name = 'image bytes' if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
  stream: str | os.PathLike | IO[bytes]
  if isinstance(source, (bytes, bytearray, memoryview)):
    if len(source) == 0:
      raise UnreadableImageError('cannot decode image bytes: empty')
    stream = io.BytesIO(bytes(source))
  elif os.path.isfile(source) and os.path.getsize(source) == 0:
    raise UnreadableImageError(f'cannot decode {name}: file is empty')
  else:
    stream = source
  try:
    image = Image.open(stream)
    # JPEG only: decode at the smallest 1/2^k scale still >= size, much faster for big scans.
    image.draft(image.mode, (size, size))
    image.load()
  except FileNotFoundError:
    raise
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise UnreadableImageError(f'cannot decode {name}: {e}') from e
  return image


def png_bytes(image: np.ndarray) -> bytes:
  """uint8 (H, W, 3) RGB array -> PNG bytes (written in one go, to any storage)."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8), mode='RGB').save(buffer, format='PNG')
  return buffer.getvalue()
