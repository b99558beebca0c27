"""Metrics against hand-computed / scipy / librosa values, and transcription of known notes."""

import json

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from data_prep import demo_synesthesia
from pix2pitch_jax.audio import inverse, spectrogram, transcription
from pix2pitch_jax.evaluation import metrics

PARAMS = spectrogram.MelParams(image_size=32, clip_seconds=1.0, n_fft=512)


def random_db(shape=(3, 32, 32), seed=0):
  return np.random.default_rng(seed).uniform(-80.0, 0.0, shape).astype(np.float32)


def test_l1_l2_lsd_by_hand():
  ref = random_db()
  gen = ref + 2.0
  np.testing.assert_allclose(metrics.mel_l1(ref, gen), [2.0] * 3, rtol=1e-5)
  np.testing.assert_allclose(metrics.mel_l2(ref, gen), [4.0] * 3, rtol=1e-5)
  np.testing.assert_allclose(metrics.log_spectral_distance(ref, gen), [2.0] * 3, rtol=1e-5)
  # LSD is an RMS per frame: a 4 dB error in half the bands of every frame is sqrt(8) dB.
  half = ref.copy()
  half[:, :16, :] += 4.0
  np.testing.assert_allclose(
    metrics.log_spectral_distance(ref, half), [np.sqrt(8.0)] * 3, rtol=1e-5
  )
  for fn in (metrics.mel_l1, metrics.mel_l2, metrics.log_spectral_distance):
    np.testing.assert_array_equal(fn(ref, ref), 0.0)


def test_spectral_convergence():
  rng = np.random.default_rng(0)
  ref = np.abs(rng.standard_normal((2, 8, 8))) + 0.1
  assert np.all(np.asarray(metrics.spectral_convergence(ref, ref)) == 0)
  np.testing.assert_allclose(metrics.spectral_convergence(ref, 1.1 * ref), 0.1, rtol=1e-5)
  np.testing.assert_allclose(metrics.spectral_convergence(ref, np.zeros_like(ref)), 1.0)


def test_mel_cepstral_distortion_matches_scipy_dct():
  ref, gen = random_db(seed=1), random_db(seed=2)
  n_mels = ref.shape[-2]
  to_cepstrum = lambda db: (
    scipy.fft.dct(db * np.log(10) / 20, type=2, norm='ortho', axis=-2) / (np.sqrt(2 * n_mels))
  )
  diff = (to_cepstrum(ref) - to_cepstrum(gen))[:, 1:25, :]
  expected = (10 / np.log(10) * np.sqrt(2 * (diff**2).sum(axis=1))).mean(axis=-1)
  np.testing.assert_allclose(metrics.mel_cepstral_distortion(ref, gen), expected, rtol=1e-4)
  np.testing.assert_allclose(metrics.mel_cepstral_distortion(ref, ref), 0.0, atol=1e-5)
  # A constant dB offset only moves c0, which MCD drops: loudness is not timbre.
  np.testing.assert_allclose(metrics.mel_cepstral_distortion(ref, ref + 6.0), 0.0, atol=1e-3)


@pytest.mark.parametrize('n_mels', [64, 128, 256, 512])
def test_mel_cepstral_distortion_is_the_standard_value_at_any_band_count(n_mels):
  """Hand-computed: an envelope ln A(w) = 2 a cos(w) has c_1 = a and no other coefficient, so
  against a flat one MCD = 10 / ln 10 * sqrt(2 a^2), whatever the number of bands."""
  a = 0.5
  bands = np.pi * (np.arange(n_mels) + 0.5) / n_mels
  envelope_db = (20 / np.log(10)) * 2 * a * np.cos(bands)  # ln A -> dB
  generated = np.repeat(envelope_db[:, None], 8, axis=1)[None]
  flat = np.zeros_like(generated)
  expected = 10 / np.log(10) * np.sqrt(2 * a**2)  # 3.07 dB
  np.testing.assert_allclose(
    metrics.mel_cepstral_distortion(flat, generated), [expected], rtol=1e-3
  )


def test_kid_is_unbiased_where_frechet_is_not():
  rng = np.random.default_rng(0)
  same = [
    metrics.kernel_inception_distance(rng.normal(size=(6, 16)), rng.normal(size=(6, 16)))
    for _ in range(200)
  ]
  assert abs(np.mean(same)) < 0.05  # unbiased: ~0 for two sets from one distribution
  frechet = [
    metrics.frechet_distance(rng.normal(size=(6, 16)), rng.normal(size=(6, 16))) for _ in range(50)
  ]
  assert np.mean(frechet) > 10  # the same sets: Fréchet's small-n bias
  x = rng.normal(size=(50, 16))
  assert metrics.kernel_inception_distance(x, x + 1.0) > 0.5
  with pytest.raises(ValueError):
    metrics.kernel_inception_distance(x[:1], x)


def test_kid_interval_leaves_repeated_examples_out():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(60, 64)), rng.normal(size=(60, 64)) + 0.3
  kid = metrics.kernel_inception_distance(a, b)
  low, high = metrics.kernel_inception_distance_interval(a, b)
  assert low < kid < high
  # KID recomputed on the resampled rows counts a repeated example as its own neighbour: the whole
  # interval sits above the estimate. That is why the interval leaves repeats out.
  naive_low, _ = metrics.bootstrap_interval(
    np.stack([a, b], axis=1),
    statistic=lambda pairs: metrics.kernel_inception_distance(pairs[:, 0], pairs[:, 1]),
    num_resamples=200,
  )
  assert naive_low > kid
  # A resample without repeats is KID of the rows drawn.
  kernels = metrics._kid_kernels(a, b)
  assert metrics._kid_from_counts(kernels, np.ones(60)) == pytest.approx(kid)
  drawn = np.zeros(60)
  drawn[[3, 7, 20, 41]] = [1, 1, 1, 1]
  assert metrics._kid_from_counts(kernels, drawn) == pytest.approx(
    metrics.kernel_inception_distance(a[[3, 7, 20, 41]], b[[3, 7, 20, 41]])
  )
  # One distinct example: no within-set pair, no value; one pair: no interval.
  assert np.isnan(metrics._kid_from_counts(kernels, np.eye(60)[5] * 3))
  assert all(np.isnan(metrics.kernel_inception_distance_interval(a[:1], b[:1])))
  same_low, same_high = metrics.kernel_inception_distance_interval(a, rng.normal(size=(60, 64)))
  assert same_low < 0 < same_high


def test_bootstrap_interval_and_confusion_matrix():
  values = np.random.default_rng(1).normal(3.0, 1.0, size=400)
  low, high = metrics.bootstrap_interval(values)
  assert low < 3.0 < high and 0.1 < high - low < 0.3  # ~ +-1.96 / sqrt(400)
  assert metrics.bootstrap_interval([2.0]) == (2.0, 2.0)
  assert all(np.isnan(metrics.bootstrap_interval([])))
  matrix = metrics.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], num_classes=3)
  np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def numpy_ssim(x, y, data_range=2.0):
  """Independent reference: scipy 2-D convolution with the 11x11 Gaussian, valid windows."""
  g = scipy.signal.windows.gaussian(11, 1.5)
  window = np.outer(g, g) / np.outer(g, g).sum()
  blur = lambda z: scipy.signal.convolve2d(z, window, mode='valid')
  mx, my = blur(x), blur(y)
  vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  return np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))


def test_ssim_and_psnr():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
  y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
  np.testing.assert_allclose(metrics.ssim(x, y), numpy_ssim(x, y), atol=1e-4)
  np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-5)
  noisier = np.clip(x + rng.normal(0, 0.5, x.shape), -1, 1)
  assert float(metrics.ssim(x, noisier)) < float(metrics.ssim(x, y)) < 1.0
  assert np.isinf(metrics.psnr(x, x))
  np.testing.assert_allclose(metrics.psnr(x, x + 0.1), 10 * np.log10(4 / 0.01), rtol=1e-4)
  assert float(metrics.psnr(x, noisier)) < float(metrics.psnr(x, y))
  with pytest.raises(ValueError, match='smaller than'):
    metrics.ssim(x[:8, :8], y[:8, :8])


def test_mel_image_metrics_batch():
  rng = np.random.default_rng(0)
  ref = rng.uniform(-1, 1, (4, 32, 32)).astype(np.float32)
  out = metrics.mel_image_metrics(ref, ref, PARAMS)
  assert all(v.shape == (4,) for v in out.values())
  assert float(out['l1_db'].max()) == 0 and float(out['ssim'].min()) > 0.9999
  worse = metrics.mel_image_metrics(ref, np.clip(ref + 0.3, -1, 1), PARAMS)
  for key in ('l1_db', 'l2_db2', 'spectral_convergence', 'log_spectral_distance_db'):
    assert np.all(np.asarray(worse[key]) > 0), key


def test_griffin_lim_consistency_is_low_for_real_spectrograms():
  rng = np.random.default_rng(0)
  params = spectrogram.MelParams(image_size=64, clip_seconds=2.0, n_fft=1024)
  t = np.arange(params.clip_samples) / params.sample_rate
  real = spectrogram.audio_to_mel_image(
    np.sin(2 * np.pi * 440 * t) * np.exp(-(t % 0.5) * 4), params
  )
  noise = rng.uniform(-1, 1, real.shape).astype(np.float32)  # no signal has this spectrogram
  images = np.stack([real, noise])
  clips = inverse.mel_image_to_audio(images, params, n_iter=32)
  consistency = np.asarray(metrics.griffin_lim_consistency(images, clips, params))
  assert consistency[0] < 0.25 and consistency[1] > consistency[0] + 0.2, consistency


def test_frechet_distance():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((200, 4))
  assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
  # Same covariance, mean shifted by 3 along one axis: FD = 9.
  assert metrics.frechet_distance(a, a + [3, 0, 0, 0]) == pytest.approx(9.0, rel=1e-3)
  # Gaussians N(0, I) vs N(0, 4I) in 4-D: 4 * (1 + 4 - 2 * 2) = 4 (up to sampling).
  b = 2.0 * rng.standard_normal((4000, 4))
  c = rng.standard_normal((4000, 4))
  assert metrics.frechet_distance(c, b) == pytest.approx(4.0, rel=0.15)
  # Small sets (n < dim, n == 1) still give finite non-negative values.
  assert (
    np.isfinite(metrics.frechet_distance(a[:3], a[5:6] + 1))
    and metrics.frechet_distance(a[:3], a[5:6] + 1) >= 0
  )
  with pytest.raises(ValueError, match='non-empty'):
    metrics.frechet_distance(a[:0], a)


def test_mean_pairwise_distance():
  x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
  # Distances 2, 2, 2*sqrt(2), as RMS over 2 dims: divided by sqrt(2).
  expected = (2 + 2 + 2 * np.sqrt(2)) / 3 / np.sqrt(2)
  assert metrics.mean_pairwise_distance(x) == pytest.approx(expected)
  assert metrics.mean_pairwise_distance(np.ones((5, 3, 3))) == pytest.approx(0.0, abs=1e-6)
  assert np.isnan(metrics.mean_pairwise_distance(x[:1]))


def test_audio_descriptors_and_statistics():
  rng = np.random.default_rng(0)
  sr = 22050
  t = np.arange(sr) / sr
  low = np.sin(2 * np.pi * 220 * t) * (t % 0.25 < 0.1)  # 4 A3 notes per second
  high = np.sin(2 * np.pi * 1760 * t)
  noise = rng.uniform(-0.5, 0.5, sr)
  d = metrics.audio_descriptors(np.stack([low, high, noise]), sr)
  assert d['spectral_centroid_hz'][0] < d['spectral_centroid_hz'][1] < d['spectral_centroid_hz'][2]
  assert d['spectral_flatness'][2] > 10 * d['spectral_flatness'][1]
  assert d['onset_rate_hz'][0] >= 3 and d['onset_rate_hz'][1] <= 1
  assert np.argmax(d['chroma'][0]) == 9 and np.argmax(d['chroma'][1]) == 9  # A
  np.testing.assert_allclose(d['chroma'].sum(axis=1), 1.0, rtol=1e-5)
  same = metrics.descriptor_statistics(d, d)
  assert same['spectral_centroid_hz/difference'] == 0 and same['chroma_distance'] == 0
  sub = lambda i: {k: v[i : i + 1] for k, v in d.items()}
  stats = metrics.descriptor_statistics(sub(0), sub(2))
  assert stats['spectral_centroid_hz/difference'] > 0 and 0 < stats['chroma_distance'] <= 1


# --- transcription -------------------------------------------------------------------------------

SCALE_C4_C6 = (60, 62, 64, 67, 69, 72, 74, 76, 79, 81, 84)


def synthesize_notes(notes, params, harmonics=(1.0, 0.5, 0.33, 0.25)):
  """Additive tones with a 10 ms attack and a 40 ms release, like the synesthesia demo."""
  sr = params.sample_rate
  y = np.zeros(params.clip_samples)
  for onset, duration, midi, velocity, _ in notes:
    start, n = int(round(onset * sr)), int(round(duration * sr))
    n = min(n, len(y) - start)
    t = np.arange(n) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    tone = sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in enumerate(harmonics, 1))
    env = np.exp(-t / 1.5) * np.minimum(1, t / 0.01) * np.minimum(1, (n / sr - t) / 0.04)
    y[start : start + n] += 0.3 * velocity / 127 / sum(harmonics) * env * tone
  return y.astype(np.float32)


def random_score(rng, n_notes, clip_seconds, frame_s, scale=SCALE_C4_C6):
  notes, busy = [], {}
  while len(notes) < n_notes:
    midi = int(rng.choice(scale))
    onset = round(rng.integers(0, int((clip_seconds - 1.0) / frame_s)) * frame_s, 6)
    duration = float(rng.uniform(0.15, 0.9))
    if any(
      onset < end + 0.12 and start < onset + duration + 0.12 for start, end in busy.get(midi, [])
    ):
      continue
    busy.setdefault(midi, []).append((onset, onset + duration))
    notes.append([onset, duration, midi, int(rng.choice([48, 80, 112])), 81])
  return sorted(notes)


# The thesis resolution (full band, C4..C6, pitch window to match) and the synesthesia demo's
# own setting (128 px, 4 s clips, n_fft 2048, mel band 400-2400 Hz, C5..C7, default window).
@pytest.mark.parametrize(
  'params,scale,config',
  [
    (spectrogram.MEL_256_22K, SCALE_C4_C6, transcription.TranscriptionConfig(max_midi=86.0)),
    (
      spectrogram.MelParams(
        image_size=128,
        clip_seconds=4.0,
        n_fft=2048,
        fmin=demo_synesthesia.FMIN_HZ,
        fmax=demo_synesthesia.FMAX_HZ,
      ),
      demo_synesthesia.SCALE,
      transcription.TranscriptionConfig(),
    ),
  ],
)
def test_transcription_of_synthesized_notes_scores_near_one(params, scale, config):
  rng = np.random.default_rng(1)
  scores = []
  for _ in range(3):
    notes = random_score(rng, 8, params.clip_seconds, params.hop_length / params.sample_rate, scale)
    image = spectrogram.audio_to_mel_image(synthesize_notes(notes, params), params)
    estimated = transcription.transcribe_mel_image(image, params, config)
    reference = transcription.parse_notes_json(json.dumps(notes), params.clip_seconds)
    scores.append(transcription.note_scores(reference, estimated))
  for key in ('onset_f1', 'onset_pitch_f1'):
    assert np.mean([s[key] for s in scores]) >= 0.9, scores
    assert min(s[key] for s in scores) >= 0.8, scores
  # Silence transcribes to nothing: F1 0, not an error.
  empty = transcription.transcribe_mel_image(-np.ones((params.n_mels,) * 2, np.float32), params)
  assert len(empty) == 0 and transcription.note_scores(reference, empty)['onset_f1'] == 0.0


def test_parse_notes_json():
  notes = transcription.parse_notes_json(
    '[[0.5, 0.25, 69, 80, 73], [12.0, 1.0, 60, 80, 73]]', clip_seconds=10.0
  )
  np.testing.assert_allclose(notes.intervals, [[0.5, 0.75]])
  np.testing.assert_allclose(notes.pitches_hz, [440.0])
  assert len(transcription.parse_notes_json('')) == 0
