"""Inverse mel transform: JAX STFT/ISTFT/Griffin-Lim against librosa, NNLS, the full inverse."""

import jax
import librosa
import numpy as np
import pytest

from pix2pitch_jax.audio import inverse, spectrogram
from pix2pitch_jax.evaluation import metrics

PARAMS = spectrogram.MelParams(image_size=64, clip_seconds=2.0, n_fft=1024)  # hop 689


def chord(params, seconds=None):
  """A decaying two-note chord with harmonics, re-struck every half second."""
  t = np.arange(int((seconds or params.clip_seconds) * params.sample_rate)) / params.sample_rate
  envelope = np.exp(-4.0 * (t % 0.5))
  tones = sum(0.3 / h * np.sin(2 * np.pi * h * f * t) for f in (262.0, 392.0) for h in (1, 2))
  return (tones * envelope).astype(np.float32)


def librosa_stft(y, params):
  return librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length)


def test_stft_and_istft_match_librosa():
  y = np.random.default_rng(0).standard_normal(PARAMS.clip_samples).astype(np.float32)
  expected = librosa_stft(y, PARAMS)
  ours = np.asarray(inverse.stft(y, PARAMS))
  assert ours.shape == expected.shape
  np.testing.assert_allclose(ours, expected, atol=1e-5 * np.abs(expected).max())
  back = np.asarray(inverse.istft(expected, PARAMS, len(y)))
  np.testing.assert_allclose(
    back,
    librosa.istft(expected, hop_length=PARAMS.hop_length, n_fft=PARAMS.n_fft, length=len(y)),
    atol=1e-5,
  )
  np.testing.assert_allclose(back, y, atol=1e-5)  # perfect reconstruction


def test_istft_handles_hop_longer_than_window():
  params = spectrogram.MelParams(image_size=32, clip_seconds=2.0, n_fft=512)  # the tiny dataset's
  assert params.hop_length > params.n_fft
  y = np.random.default_rng(1).standard_normal(params.clip_samples).astype(np.float32)
  spec = librosa_stft(y, params)
  ours = np.asarray(inverse.istft(spec, params, params.clip_samples))
  theirs = librosa.istft(
    spec, hop_length=params.hop_length, n_fft=params.n_fft, length=params.clip_samples
  )
  # Between frames nothing is known: both leave zeros there. Where the window is nearly zero both
  # divide rounding noise by ~0, so compare where it carries the signal.
  envelope = librosa.filters.window_sumsquare(
    window='hann', n_frames=spec.shape[-1], hop_length=params.hop_length, n_fft=params.n_fft
  )
  envelope = envelope[params.n_fft // 2 : params.n_fft // 2 + params.clip_samples]
  covered = envelope > 1e-3
  assert 0.1 < covered.mean() < 0.5
  np.testing.assert_allclose(ours[covered], theirs[covered], atol=1e-4)
  np.testing.assert_allclose(ours[covered], y[covered], atol=1e-4)
  assert not ours[envelope == 0].any()


def test_griffin_lim_from_zero_phase_equals_librosa():
  magnitude = np.abs(librosa_stft(chord(PARAMS), PARAMS))[:, : PARAMS.n_frames]
  expected = librosa.griffinlim(
    magnitude, n_iter=8, hop_length=PARAMS.hop_length, n_fft=PARAMS.n_fft, init=None
  )
  ours = np.asarray(inverse.griffin_lim(magnitude[None], PARAMS, None, n_iter=8))[0]
  assert ours.shape == expected.shape
  np.testing.assert_allclose(ours, expected, atol=1e-3 * np.abs(expected).max())


def test_griffin_lim_random_phase_converges_like_librosa():
  """Stated tolerance: spectral convergence within 10% (+0.01) of librosa's, random init both."""
  y = chord(PARAMS)
  magnitude = np.abs(librosa_stft(y, PARAMS))[:, : PARAMS.n_frames]

  def convergence(reconstruction):
    rebuilt = np.abs(librosa_stft(reconstruction, PARAMS))[:, : PARAMS.n_frames]
    return float(metrics.spectral_convergence(magnitude, rebuilt))

  ours = np.asarray(inverse.griffin_lim(magnitude[None], PARAMS, jax.random.key(0), n_iter=32))[0]
  theirs = librosa.griffinlim(
    magnitude, n_iter=32, hop_length=PARAMS.hop_length, n_fft=PARAMS.n_fft, random_state=0
  )
  sc_ours, sc_theirs = convergence(ours), convergence(theirs)
  assert sc_ours <= 1.1 * sc_theirs + 0.01, (sc_ours, sc_theirs)
  assert sc_ours < 0.2
  # Iterating helps, and a key makes the result reproducible.
  few = np.asarray(inverse.griffin_lim(magnitude[None], PARAMS, jax.random.key(0), n_iter=2))[0]
  assert convergence(few) > sc_ours
  again = np.asarray(inverse.griffin_lim(magnitude[None], PARAMS, jax.random.key(0), n_iter=32))[0]
  np.testing.assert_array_equal(ours, again)


def test_mel_to_linear_is_a_non_negative_inverse_as_good_as_librosa():
  power_mel = spectrogram.audio_to_power_mel(chord(PARAMS), PARAMS)
  linear = np.asarray(inverse.mel_to_linear(power_mel[None], PARAMS))[0]
  assert linear.shape == (1 + PARAMS.n_fft // 2, PARAMS.n_frames)
  assert linear.min() >= 0.0
  basis = spectrogram.mel_filterbank(PARAMS)
  ours = np.linalg.norm(basis @ linear**2 - power_mel) / np.linalg.norm(power_mel)
  theirs = librosa.feature.inverse.mel_to_stft(
    power_mel, sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft, norm=None
  )
  # librosa runs L-BFGS-B to convergence (< -60 dB); 32 FISTA steps get within -45 dB.
  assert ours < 5e-3
  assert np.linalg.norm(basis @ theirs**2 - power_mel) / np.linalg.norm(power_mel) < 1e-3


def test_image_to_power_mel_inverts_the_forward_transform():
  power_mel = spectrogram.audio_to_power_mel(chord(PARAMS), PARAMS)
  image = spectrogram.db_to_image(spectrogram.power_mel_to_db(power_mel, PARAMS), PARAMS)
  back = spectrogram.image_to_power_mel(image, PARAMS)
  audible = (
    spectrogram.power_mel_to_db(power_mel, PARAMS) > PARAMS.min_db + 1
  )  # above the clip floor
  np.testing.assert_allclose(back[audible], power_mel[audible], rtol=1e-3)


def test_mel_image_to_audio_round_trip():
  image = spectrogram.audio_to_mel_image(chord(PARAMS), PARAMS)
  clips = np.asarray(
    inverse.mel_image_to_audio(
      np.stack([image, image[:, ::-1]]), PARAMS, n_iter=32, key=jax.random.key(0)
    )
  )
  assert clips.shape == (2, PARAMS.clip_samples) and np.isfinite(clips).all()
  rebuilt = spectrogram.audio_to_mel_image(clips[0], PARAMS)
  l1_db = np.abs(
    spectrogram.image_to_db(rebuilt, PARAMS) - spectrogram.image_to_db(image, PARAMS)
  ).mean()
  assert l1_db < 3.0, l1_db
  with pytest.raises(ValueError, match='expected mel images'):
    inverse.mel_image_to_audio(np.zeros((2, 32, 32)), PARAMS)
