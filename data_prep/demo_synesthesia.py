"""The 'synesthesia' demo: procedural stroke paintings that *are* their own score.

Every painting is a set of horizontal brush strokes on a textured ground, and its audio is
synthesised from the strokes by a fixed rule, so a model can in principle recover the notes
exactly (onset F1 within 50 ms, pitch within 50 cents; docs/evaluation.md). The rule, for a canvas S
pixels wide spanning the clip's T seconds exactly:

  horizontal start x0 (px)   -> onset     = x0 * T / S          (onsets on the mel frame grid)
  stroke length (px)         -> duration  = length * T / S
  height on the canvas       -> pitch     = C major pentatonic C5..C7 (72 74 76 79 81 84 86 88
                                            91 93 96): a stroke lies on the canvas row where its
                                            fundamental lies in the corpus' own mel image
                                            (mel bands 400-2400 Hz, low at the bottom), so
                                            higher on the canvas = higher pitch
  thickness (3 levels)       -> velocity  = 48 / 80 / 112   (thin / medium / thick)
  colour hue                 -> timbre    = red, orange, magenta: sawtooth-like (harmonics 1/k,
                                            k <= 8; GM program 81); yellow, green: clarinet-like
                                            (odd harmonics 1/k; program 71); cyan, blue, violet:
                                            flute-like (near sine; program 73)

Drawing each stroke where its note appears in the spectrogram makes painting and mel image
spatially aligned, which a U-Net (whose skip connections pass each pixel's neighbourhood straight
through) learns in minutes; a rule that spread the 11 pitches evenly over the canvas instead would
ask the model for a large vertical warp, and at CPU-demo scale it learned nothing but silence.

Per painting 3-10 strokes, 0.15-0.9 s long; strokes of one pitch never overlap and start >= 120 ms
after the previous one of that pitch ends. The class label ('era') is the palette family the
stroke colours are drawn from: warm (reds, some yellow), cool (blues, some red) or verdant (greens
and yellows, some blue); each family has its own ground colour, so the label is visible in the
painting and audible as a timbre mix. notes_json holds [onset_s, duration_s, midi_pitch,
velocity, program] per stroke.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import json
import time

import numpy as np

from data_prep import builder, pairing, workers
from pix2pitch_jax.audio import numba_cache

ERA_NAMES = ('warm', 'cool', 'verdant')
SCALE = (72, 74, 76, 79, 81, 84, 86, 88, 91, 93, 96)  # lowest pitch first
# The corpus' mel range: C5..C7 spread over most rows (linear mel below 1 kHz, log above).
FMIN_HZ, FMAX_HZ = 400.0, 2400.0
VELOCITIES = (48, 80, 112)
THICKNESS = (0.2, 0.32, 0.45)  # stroke thickness as a fraction of size / len(SCALE)
NOTES_PER_PAINTING = (3, 10)
DURATION_S = (0.15, 0.9)
MIN_GAP_S = 0.12
DEFAULT_PAINTINGS = 800  # -> 600 train / 100 validation / 100 test
RULE_VERSION = 2
GROUNDS = ((246, 236, 214), (226, 233, 242), (233, 239, 222))
PALETTES = (
  ((200, 40, 30), (235, 110, 20), (190, 30, 90), (225, 190, 30)),
  ((30, 70, 190), (60, 40, 160), (20, 140, 170), (200, 40, 30)),
  ((40, 140, 50), (120, 170, 30), (210, 190, 20), (30, 70, 190)),
)
_TIMBRES = {  # name -> (GM program analogue, harmonic amplitudes from the fundamental up)
  'saw': (81, tuple(1.0 / k for k in range(1, 9))),
  'odd': (71, tuple(1.0 / k if k % 2 else 0.0 for k in range(1, 9))),
  'sine': (73, (1.0, 0.08)),
}


def timbre_of(colour: tuple[int, int, int]) -> str:
  """The colour -> timbre rule (by hue)."""
  hue, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
  if hue < 0.11 or hue >= 0.83:
    return 'saw'
  return 'odd' if hue < 0.45 else 'sine'


@dataclasses.dataclass(frozen=True)
class Stroke:
  x0: int  # first pixel column
  length: int  # pixels
  band: int  # index into SCALE: 0 = lowest pitch, drawn lowest
  level: int  # thickness level 0..2
  colour: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class SynesthesiaScore:
  """One painting-and-clip, fully determined by (seed, family, size, clip_seconds)."""

  seed: int
  family: int
  size: int
  clip_seconds: float

  @functools.cached_property
  def strokes(self) -> tuple[Stroke, ...]:
    return _random_strokes(
      np.random.default_rng(self.seed), self.family, self.size, self.clip_seconds
    )

  def notes(self) -> list[list]:
    """[[onset_s, duration_s, midi_pitch, velocity, program], ...] sorted by onset."""
    px = self.clip_seconds / self.size
    out = [
      [
        round(s.x0 * px, 6),
        round(s.length * px, 6),
        SCALE[s.band],
        VELOCITIES[s.level],
        _TIMBRES[timbre_of(s.colour)][0],
      ]
      for s in self.strokes
    ]
    return sorted(out)

  def notes_json(self) -> str:
    return json.dumps(self.notes())

  def load(self, size: int, mode: str = 'crop') -> np.ndarray:
    if size != self.size:
      raise ValueError(f'score drawn for {self.size} px, asked for {size}')
    return paint(self.strokes, self.family, self.size, np.random.default_rng(self.seed + 1))

  def waveform(self, params) -> np.ndarray:
    if abs(params.clip_seconds - self.clip_seconds) > 1e-9:
      raise ValueError(f'score spans {self.clip_seconds} s, asked for {params.clip_seconds}')
    return synthesize(
      self.strokes, self.clip_seconds / self.size, params.sample_rate, params.clip_samples
    )


def _random_strokes(
  rng: np.random.Generator, family: int, size: int, clip_seconds: float
) -> tuple[Stroke, ...]:
  px_per_s = size / clip_seconds
  min_len = max(1, int(np.ceil(DURATION_S[0] * px_per_s)))
  max_len = max(min_len, int(DURATION_S[1] * px_per_s))
  gap = int(np.ceil(MIN_GAP_S * px_per_s))
  target = int(rng.integers(NOTES_PER_PAINTING[0], NOTES_PER_PAINTING[1] + 1))
  palette = PALETTES[family]
  strokes: list[Stroke] = []
  busy: dict[int, list[tuple[int, int]]] = {}  # band -> [(start, end)] in pixels
  for _ in range(200):  # rejection sampling; 200 tries always suffice for <= 10 strokes
    if len(strokes) == target:
      break
    length = int(rng.integers(min_len, max_len + 1))
    x0 = int(rng.integers(0, size - length + 1))
    band = int(rng.integers(len(SCALE)))
    if any(x0 < end + gap and start < x0 + length + gap for start, end in busy.get(band, [])):
      continue
    busy.setdefault(band, []).append((x0, x0 + length))
    # The family's first three colours are its character; the fourth is an occasional accent.
    colour = palette[int(rng.choice(4, p=(0.3, 0.3, 0.25, 0.15)))]
    strokes.append(Stroke(x0, length, band, int(rng.integers(3)), colour))
  return tuple(strokes)


def midi_to_hz(midi: float) -> float:
  return 440.0 * 2 ** ((midi - 69) / 12)


@functools.lru_cache(maxsize=4)
def pitch_rows(size: int) -> tuple[float, ...]:
  """Canvas row (0 = top) of each SCALE pitch's fundamental in a size-band mel image.

  Bands are those of `audio.mel_filterbank` with FMIN_HZ..FMAX_HZ (librosa's centre
  frequencies); the row is interpolated between band centres and flipped, as the mel image is.
  """
  librosa = numba_cache.import_librosa()
  centres = librosa.mel_frequencies(size + 2, fmin=FMIN_HZ, fmax=FMAX_HZ)[1:-1]
  bands = np.interp([midi_to_hz(m) for m in SCALE], centres, np.arange(size))
  return tuple(float(size - 1 - b) for b in bands)


def paint(strokes, family: int, size: int, rng: np.random.Generator) -> np.ndarray:
  """Textured ground plus one rectangle-ish brush stroke per note."""
  ground = np.asarray(GROUNDS[family], np.float32)
  canvas = ground + rng.normal(0, 4, (size, size, 1)).astype(np.float32)  # paper grain
  band_h = size / len(SCALE)
  rows = pitch_rows(size)
  for s in strokes:
    centre = rows[s.band] + 0.5
    half = max(1, round(THICKNESS[s.level] * band_h)) / 2
    top, bottom = int(round(centre - half)), int(round(centre + half))
    bottom = max(bottom, top + 1)
    # Brushwork: the paint load varies a little along the stroke, never enough to change hue.
    shade = 1.0 + rng.normal(0, 0.04, (1, s.length, 1)).astype(np.float32)
    canvas[top:bottom, s.x0 : s.x0 + s.length] = np.asarray(s.colour, np.float32) * shade
  return np.clip(canvas, 0, 255).round().astype(np.uint8)


def synthesize(strokes, seconds_per_px: float, sample_rate: int, num_samples: int) -> np.ndarray:
  """Additive synthesis of the strokes' notes (see the module docstring for the rule)."""
  out = np.zeros(num_samples, np.float64)
  attack, release = int(0.01 * sample_rate), int(0.04 * sample_rate)
  for s in strokes:
    start = int(round(s.x0 * seconds_per_px * sample_rate))
    n = min(int(round(s.length * seconds_per_px * sample_rate)), num_samples - start)
    t = np.arange(n) / sample_rate
    f0 = midi_to_hz(SCALE[s.band])
    amps = np.asarray(_TIMBRES[timbre_of(s.colour)][1])
    amps = amps / amps.sum()
    tone = sum(
      a * np.sin(2 * np.pi * k * f0 * t)
      for k, a in enumerate(amps, 1)
      if a and k * f0 < sample_rate / 2
    )
    env = np.exp(-t / 1.5)
    env[:attack] *= np.linspace(0, 1, attack, endpoint=False)[:n]
    env[max(0, n - release) :] *= np.linspace(1, 0, min(release, n))
    out[start : start + n] += 0.3 * VELOCITIES[s.level] / 127 * env * tone
  return np.clip(out, -1, 1).astype(np.float32)


def build(out_dir, opts, num_paintings: int | None) -> dict:
  """Plan and write the corpus (called by demos.build_demo)."""
  n = DEFAULT_PAINTINGS if num_paintings is None else num_paintings
  if n < 3:
    raise ValueError(f'synesthesia needs at least 3 paintings, got {n}')
  fingerprint = builder.fingerprint(opts, ['demo:synesthesia', RULE_VERSION, n])
  workspace, done = builder.open_workspace(out_dir, fingerprint, opts.overwrite)
  if done is not None:
    return done
  start = time.perf_counter()
  scores = {
    f'syn-{i:05d}': SynesthesiaScore(
      pairing.stable_hash(str(i), f'syn{opts.seed}'),
      i % len(ERA_NAMES),
      opts.image_size,
      float(opts.clip_seconds),
    )
    for i in range(n)
  }
  by_family: dict[str, list[str]] = {}
  for pid, score in scores.items():
    by_family.setdefault(ERA_NAMES[score.family], []).append(pid)
  split_of = pairing.assign_splits(by_family, opts.val_fraction, opts.test_fraction)
  examples: dict[str, list[pairing.Example]] = {split: [] for split in pairing.SPLITS}
  for pid, score in scores.items():
    examples[split_of[pid]].append(pairing.Example(pid, score, pid, score, 0.0, score.family))
  inputs = dict(paintings_generated=n, rule_version=RULE_VERSION)
  return builder.write_dataset(
    workspace,
    examples,
    opts,
    era_names=ERA_NAMES,
    source='demo:synesthesia',
    formats={'paintings': 'procedural strokes', 'music': 'synthesised from the painting'},
    fingerprint=fingerprint,
    skipped=[],
    extra=dict(inputs=inputs),
    n_workers=workers.resolve_workers(opts.workers),
    start=start,
  )
