"""Forward mel transform: calibration, orientation, and parameter validation."""

import numpy as np
import pytest

from pix2pitch_jax.audio import spectrogram


@pytest.mark.parametrize('params', [spectrogram.MEL_256_22K, spectrogram.MEL_512_44K])
def test_full_scale_sine_reads_near_zero_db_and_no_empty_filters(params):
  t = np.arange(params.clip_samples) / params.sample_rate
  db = spectrogram.power_mel_to_db(
    spectrogram.audio_to_power_mel(np.sin(2 * np.pi * 1000 * t), params), params
  )
  assert db.shape == (params.n_mels, params.n_frames)
  assert -1.5 < db.max() < 1.0
  assert (spectrogram.mel_filterbank(params).max(axis=1) > 0).all()


def test_low_frequencies_in_last_row_and_range():
  params = spectrogram.MelParams(image_size=64, clip_seconds=2.0, n_fft=1024)
  t = np.arange(params.clip_samples) / params.sample_rate
  low = spectrogram.audio_to_mel_image(np.sin(2 * np.pi * 110 * t), params)
  high = spectrogram.audio_to_mel_image(np.sin(2 * np.pi * 5000 * t), params)
  assert low.min() >= -1 and low.max() <= 1
  assert np.argmax(low.mean(1)) > np.argmax(high.mean(1))
  silent = spectrogram.audio_to_mel_image(np.zeros(params.clip_samples), params)
  assert np.all(silent == -1.0)


def test_db_image_roundtrip():
  params = spectrogram.MelParams(image_size=32, clip_seconds=1.0, n_fft=512)
  db = np.random.default_rng(0).uniform(-80, 0, (32, 32))
  np.testing.assert_allclose(
    spectrogram.image_to_db(spectrogram.db_to_image(db, params), params), db, atol=1e-4
  )


def test_params_validation_and_metadata_roundtrip():
  with pytest.raises(ValueError, match='power of two'):
    spectrogram.MelParams(image_size=100)
  with pytest.raises(ValueError, match='max_db'):
    spectrogram.MelParams(min_db=0, max_db=-10)
  p = spectrogram.MEL_512_44K
  assert spectrogram.MelParams.from_dict(p.to_dict()) == p
  assert p.hop_length == 861


def test_colorize_mel_is_magma_from_dark_to_light():
  rgb = spectrogram.colorize_mel(np.array([[-1.0, 0.0, 1.0]]))
  assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
  assert tuple(rgb[0, 0]) == (0, 0, 4) and tuple(rgb[0, 2]) == (252, 253, 191)
  assert rgb[0, 0].sum() < rgb[0, 1].sum() < rgb[0, 2].sum()


def test_colorize_mel_keeps_batch_dims_and_row_order():
  mels = np.stack([np.linspace(1.0, -1.0, 8)[:, None].repeat(4, 1)] * 2)  # (2, 8, 4), loud on top
  rgb = spectrogram.colorize_mel(mels)
  assert rgb.shape == (2, 8, 4, 3)
  np.testing.assert_array_equal(rgb[1], spectrogram.colorize_mel(mels[1]))
  assert rgb[0, 0, 0].sum() > rgb[0, -1, 0].sum()  # not flipped: the stored top row stays on top
