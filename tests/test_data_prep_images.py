"""images.load_painting: every PIL mode, EXIF orientation, both squaring modes, bad input."""

import io

import numpy as np
import pytest
from PIL import Image

from pix2pitch_jax.data import images


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  image.save(buf, format=fmt, **kwargs)
  return buf.getvalue()


def _check(out, size=16):
  assert out.dtype == np.uint8 and out.shape == (size, size, 3)


def test_rgb_png_from_path_bytes_and_pil(tmp_path):
  img = Image.new('RGB', (40, 20), (200, 10, 30))
  path = tmp_path / 'a.png'
  img.save(path)
  for source in (path, str(path), path.read_bytes(), img):
    out = images.load_painting(source, 16)
    _check(out)
    np.testing.assert_array_equal(out[8, 8], [200, 10, 30])


@pytest.mark.parametrize(
  'mode,value,expected',
  [
    ('L', 128, (128, 128, 128)),
    ('1', 1, (255, 255, 255)),
    ('CMYK', (0, 255, 255, 0), (255, 0, 0)),  # no cyan, full magenta+yellow: red
    ('I;16', 65535, (255, 255, 255)),  # PIL's own convert would clip this to 255 -> wrong scale
    ('I;16', 32896, (128, 128, 128)),
    ('I', 65535, (255, 255, 255)),
    ('F', 0.5, (128, 128, 128)),
  ],
)
def test_modes_to_rgb(mode, value, expected):
  out = images.load_painting(Image.new(mode, (16, 16), value), 16)
  _check(out)
  np.testing.assert_array_equal(out[4, 4], expected)


def test_sixteen_bit_png_file_is_scaled_not_clipped():
  pixels = np.full((16, 16), 65535 // 2, np.uint16)
  data = _encode(Image.fromarray(pixels), 'PNG')
  out = images.load_painting(data, 16)
  np.testing.assert_array_equal(out[0, 0], [127, 127, 127])


def test_transparency_composited_on_white():
  rgba = Image.new('RGBA', (16, 16), (0, 0, 0, 0))
  rgba.paste((255, 0, 0, 255), (0, 0, 8, 16))
  out = images.load_painting(_encode(rgba, 'PNG'), 16)
  np.testing.assert_array_equal(out[8, 2], [255, 0, 0])
  np.testing.assert_array_equal(out[8, 12], [255, 255, 255])
  la = images.load_painting(Image.new('LA', (16, 16), (0, 0)), 16)
  np.testing.assert_array_equal(la[0, 0], [255, 255, 255])
  # A palette image whose entry 0 is declared transparent.
  pal = Image.new('P', (16, 16), 0)
  pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
  pal.paste(1, (0, 0, 8, 16))
  out = images.load_painting(_encode(pal, 'PNG', transparency=0), 16)
  np.testing.assert_array_equal(out[8, 2], [0, 255, 0])
  np.testing.assert_array_equal(out[8, 12], [255, 255, 255])


def test_palette_without_transparency():
  pal = Image.new('P', (16, 16), 1)
  pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
  np.testing.assert_array_equal(images.load_painting(pal, 16)[0, 0], [10, 20, 30])


def test_exif_orientation_is_applied():
  # Stored landscape: left half red, right half blue. Orientation 6 = "rotate 90 CW to view".
  img = Image.new('RGB', (32, 16), (255, 0, 0))
  img.paste((0, 0, 255), (16, 0, 32, 16))
  exif = Image.Exif()
  exif[0x0112] = 6
  out = images.load_painting(_encode(img, 'JPEG', exif=exif, quality=95), 16, mode='scale')
  # Upright it is portrait with red on top and blue below.
  assert out[2, 8, 0] > 200 and out[2, 8, 2] < 60
  assert out[13, 8, 2] > 200 and out[13, 8, 0] < 60


def test_crop_vs_scale():
  # 3 columns of colour, 48 x 16: crop keeps the centre (green), scale keeps all three.
  img = Image.new('RGB', (48, 16), (255, 0, 0))
  img.paste((0, 255, 0), (16, 0, 32, 16))
  img.paste((0, 0, 255), (32, 0, 48, 16))
  crop = images.load_painting(img, 16, mode='crop')
  assert (crop[:, 2:14, 1] > 200).all()
  scaled = images.load_painting(img, 12, mode='scale')
  np.testing.assert_array_equal(scaled[6, [1, 6, 10]].argmax(-1), [0, 1, 2])


def test_large_jpeg_uses_draft_and_still_gets_size():
  img = Image.new('RGB', (1600, 1200), (30, 60, 90))
  out = images.load_painting(_encode(img, 'JPEG'), 64)
  assert out.shape == (64, 64, 3)
  assert np.abs(out[32, 32].astype(int) - [30, 60, 90]).max() <= 3


@pytest.mark.parametrize(
  'data,match',
  [
    (b'', 'empty'),
    (b'not an image at all', 'cannot decode'),
  ],
)
def test_undecodable_bytes(data, match):
  with pytest.raises(images.UnreadableImageError, match=match):
    images.load_painting(data, 16)


def test_truncated_and_empty_files(tmp_path):
  full = _encode(Image.effect_noise((64, 64), 50).convert('RGB'), 'PNG')
  (tmp_path / 'cut.png').write_bytes(full[: len(full) // 2])
  (tmp_path / 'empty.jpg').write_bytes(b'')
  for name in ('cut.png', 'empty.jpg'):
    with pytest.raises(images.UnreadableImageError):
      images.load_painting(tmp_path / name, 16)
  assert issubclass(images.UnreadableImageError, OSError)
  with pytest.raises(FileNotFoundError):
    images.load_painting(tmp_path / 'missing.png', 16)


def test_bad_arguments():
  img = Image.new('RGB', (4, 4))
  with pytest.raises(ValueError, match='size'):
    images.load_painting(img, 0)
  with pytest.raises(ValueError, match='mode'):
    images.load_painting(img, 4, mode='stretch')
