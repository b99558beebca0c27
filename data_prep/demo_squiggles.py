"""The 'squiggles' demo: single-note clips and hand-drawn-like squiggles, unpaired for training.

In the spirit of the sound -> picture CycleGAN of DESIGN.md §6: every clip is one synthesised
note, every picture one wobbly closed stroke on paper. Four hidden parameters describe both:

  note (clip)                                squiggle (picture)
  pitch       MIDI 48..84 (C3..C6)           height: higher pitch = ink higher on the page
  loudness    velocity 24..127,              size: ink area 3 % .. 15 % of the canvas
              amplitude 0.2 (velocity / 127)^2
  timbre      pluck, mallet, organ, bowed    colour: red, amber, green, blue
              (envelopes from a fast decay
              to a slow swell; GM programs
              25, 12, 19, 48)
  brightness  0..1: 10 harmonics whose       spikiness: spike depth of the outline, from a
              roll-off goes from k^-2.4        smooth blob (0) to a star (1)
              (near sine) to k^-0.6 (bright)

Train split: clips and squiggles are drawn *independently* (each side from its own random
parameters) and the pictures shuffled against the clips, so the picture of a train record says
nothing about its clip: a model must find the correspondence without pairs. Validation and test
splits are *paired*: each squiggle is drawn from its clip's parameters by the rule above (with
its own nuisance: horizontal position, wobble, number of spikes, a little hue jitter), so they
show whether the model learned the intuitive mapping. `pix2pitch_meta.json` says so
(`extra.paired` false, `extra.paired_splits` ['validation', 'test']).

Hidden parameters: each record's `notes_json` is its note, `[[onset_s, duration_s, midi_pitch,
velocity, program]]` (program = the timbre's GM program), and `squiggles_params.json` in the
dataset directory holds every clip's and every picture's parameters by id (`clip_source_id`,
`painting_id`), brightness included, with the rule (see `write_params_file`). The class label
('era') of a record is its *clip's* timbre.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from data_prep import builder, pairing, workers

TIMBRES = ('pluck', 'mallet', 'organ', 'bowed')  # the class labels, in order of hue
PROGRAMS = (25, 12, 19, 48)  # GM analogues: steel guitar, marimba, church organ, strings
HUES = (0.02, 0.12, 0.33, 0.6)  # red, amber, green, blue
PITCH_RANGE = (48, 84)  # MIDI, inclusive
VELOCITY_RANGE = (24, 127)
AREA_RANGE = (0.03, 0.15)  # ink area as a fraction of the canvas, for the velocity range
HEIGHT_RANGE = (0.28, 0.72)  # centre of the squiggle, fraction of the canvas from the bottom
SPIKE_RANGE = (0.0, 0.5)  # spike depth of the outline for brightness 0..1
ROLLOFF_RANGE = (2.4, 0.6)  # harmonic amplitude k^-rolloff for brightness 0..1
NUM_HARMONICS = 10  # 10 x C6 (1 047 Hz) stays below the Nyquist frequency of 22 050 Hz audio
ONSET_S, DURATION_S = 0.02, 0.9
PAPER = (247, 244, 236)
DEFAULT_EXAMPLES = 800  # -> 600 train / 100 validation / 100 test
RULE_VERSION = 1
PARAMS_FILE = 'squiggles_params.json'
DATASET_DESCRIPTION = (
  'Single-note clips and squiggle pictures: train split unpaired (pictures independent of and '
  'shuffled against the clips); validation and test paired by the hidden rule.'
)


@dataclasses.dataclass(frozen=True)
class NoteParams:
  """The four hidden parameters shared by a note and the squiggle that would follow it."""

  pitch: int  # MIDI
  velocity: int  # 1..127
  timbre: int  # index into TIMBRES
  brightness: float  # 0..1

  @classmethod
  def random(cls, rng: np.random.Generator) -> NoteParams:
    return cls(
      pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
      velocity=int(rng.integers(VELOCITY_RANGE[0], VELOCITY_RANGE[1] + 1)),
      timbre=int(rng.integers(len(TIMBRES))),
      brightness=round(float(rng.uniform(0.0, 1.0)), 4),
    )

  def as_dict(self) -> dict[str, Any]:
    return dict(dataclasses.asdict(self), timbre_name=TIMBRES[self.timbre])


# ---------------------------------------------------------------------------------------------
# The clip side.


@dataclasses.dataclass(frozen=True)
class NoteClip:
  """One synthesised note (a clip reference for the shard writer)."""

  params: NoteParams

  def notes(self) -> list[list]:
    p = self.params
    return [[ONSET_S, DURATION_S, p.pitch, p.velocity, PROGRAMS[p.timbre]]]

  def notes_json(self) -> str:
    return json.dumps(self.notes())

  def waveform(self, mel_params) -> np.ndarray:
    return synthesize(self.params, mel_params.sample_rate, mel_params.clip_samples)


def envelope(timbre: int, num_samples: int, sample_rate: int) -> np.ndarray:
  """Amplitude envelope of a timbre over the note (peak 1): what tells the timbres apart."""
  t = np.arange(num_samples) / sample_rate
  attack_s, decay_s = {0: (0.003, 0.12), 1: (0.003, 0.35), 2: (0.04, None), 3: (0.45, None)}[timbre]
  env = np.minimum(1.0, t / attack_s)
  if decay_s is not None:
    env *= np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)
  release = min(num_samples, int(0.06 * sample_rate))
  env[num_samples - release :] *= np.linspace(1.0, 0.0, release)
  return env


def harmonic_amplitudes(brightness: float) -> np.ndarray:
  """Amplitudes of harmonics 1..NUM_HARMONICS: brighter = slower roll-off."""
  rolloff = ROLLOFF_RANGE[0] + (ROLLOFF_RANGE[1] - ROLLOFF_RANGE[0]) * brightness
  return np.arange(1, NUM_HARMONICS + 1, dtype=np.float64) ** -rolloff


def synthesize(p: NoteParams, sample_rate: int, num_samples: int) -> np.ndarray:
  """Additive synthesis: the tone has unit RMS at any brightness, so loudness is the velocity's
  alone: the envelope peaks at 0.2 (velocity / 127)^2 (a MIDI-like curve over 29 dB)."""
  out = np.zeros(num_samples, np.float64)
  start = int(round(ONSET_S * sample_rate))
  n = min(int(round(DURATION_S * sample_rate)), num_samples - start)
  t = np.arange(n) / sample_rate
  f0 = 440.0 * 2 ** ((p.pitch - 69) / 12)
  amps = harmonic_amplitudes(p.brightness)
  tone = sum(
    a * np.sin(2 * np.pi * k * f0 * t) for k, a in enumerate(amps, 1) if k * f0 < sample_rate / 2
  )
  tone /= np.sqrt(np.mean(np.square(tone)))
  # Headroom: the brightest unit-RMS tone peaks near 4.5, so nothing clips.
  peak = 0.2 * (p.velocity / 127) ** 2
  out[start : start + n] = peak * envelope(p.timbre, n, sample_rate) * tone
  return np.clip(out, -1, 1).astype(np.float32)


def split_song(
  data_dir: str | os.PathLike, split: str, num_clips: int, sample_rate: int, clip_samples: int
) -> np.ndarray:
  """The first `num_clips` notes of a built corpus' `split`, synthesised again from their hidden
  parameters (`squiggles_params.json`) and played one after another: a song for the visualiser."""
  path = pathlib.Path(data_dir) / PARAMS_FILE
  if not path.is_file():
    raise FileNotFoundError(f'{path} not found: is {data_dir} a squiggles corpus?')
  clips = json.loads(path.read_text())['clips']
  ids = sorted(cid for cid, c in clips.items() if c['split'] == split)[:num_clips]
  if not ids:
    raise ValueError(f'the squiggles corpus in {data_dir} has no {split!r} clips')
  notes = [
    NoteParams(**{k: clips[cid][k] for k in ('pitch', 'velocity', 'timbre', 'brightness')})
    for cid in ids
  ]
  return np.concatenate([synthesize(n, sample_rate, clip_samples) for n in notes])


# ---------------------------------------------------------------------------------------------
# The picture side.


@dataclasses.dataclass(frozen=True)
class Squiggle:
  """A squiggle drawn from hidden parameters; `seed` sets the nuisance (position, wobble,
  spikes, hue jitter) so two squiggles of one note differ like two hand drawings."""

  params: NoteParams
  seed: int

  def visual(self) -> dict[str, float]:
    """What the rule makes of the parameters (before the nuisance)."""
    p = self.params
    u_pitch = (p.pitch - PITCH_RANGE[0]) / (PITCH_RANGE[1] - PITCH_RANGE[0])
    u_vel = (p.velocity - VELOCITY_RANGE[0]) / (VELOCITY_RANGE[1] - VELOCITY_RANGE[0])
    return dict(
      height=HEIGHT_RANGE[0] + (HEIGHT_RANGE[1] - HEIGHT_RANGE[0]) * u_pitch,
      area=AREA_RANGE[0] + (AREA_RANGE[1] - AREA_RANGE[0]) * u_vel,
      hue=HUES[p.timbre],
      spike_depth=SPIKE_RANGE[0] + (SPIKE_RANGE[1] - SPIKE_RANGE[0]) * p.brightness,
    )

  def load(self, size: int, mode: str = 'crop') -> np.ndarray:
    return draw(self.visual(), size, np.random.default_rng(self.seed))


_SUPERSAMPLE = 4  # drawn at 4x and reduced: smooth, pen-like edges at 64 px


def outline(visual: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
  """(n, 2) closed outline (x, y in pixels, y down) of one squiggle, inside the canvas."""
  theta = np.linspace(0.0, 2 * np.pi, 240, endpoint=False)
  spikes = int(rng.integers(5, 10))
  phase = rng.uniform(0, 2 * np.pi)
  # Spikes: a sharpened triangle wave around the outline, mean zero, in [-1, 1].
  tri = np.abs(((spikes * theta + phase) / np.pi) % 2 - 1)
  spike = 2 * tri**3 - 1
  spike -= spike.mean()
  wobble = sum(
    rng.normal(0, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3)
  )
  radius = 1.0 + wobble + visual['spike_depth'] * spike
  xy = np.stack([radius * np.cos(theta), -radius * np.sin(theta)], axis=1)
  # Scale to the target ink area (polygon area by the shoelace formula), then place.
  x, y = xy[:, 0], xy[:, 1]
  unit_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
  xy *= size * np.sqrt(visual['area'] / unit_area)
  xy -= xy.mean(axis=0)
  lo, hi = xy.min(axis=0), xy.max(axis=0)
  cx = rng.uniform(0.3, 0.7) * size
  cy = (1.0 - visual['height']) * size
  # Keep the whole squiggle on the page (moves only the largest ones at the extremes).
  cx = float(np.clip(cx, -lo[0] + 1, size - 1 - hi[0]))
  cy = float(np.clip(cy, -lo[1] + 1, size - 1 - hi[1]))
  return xy + np.array([cx, cy])


def draw(visual: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 (size, size, 3): paper, a pale wash of the colour, a darker pen outline."""
  points = outline(visual, size, rng)
  hue = (visual['hue'] + rng.normal(0, 0.01)) % 1.0
  wash = _rgb(hue, 0.55, 0.95)
  pen = _rgb(hue, 0.9, 0.6)
  big = size * _SUPERSAMPLE
  canvas = Image.new('RGB', (big, big), PAPER)
  pen_points = [tuple(p) for p in points * _SUPERSAMPLE]
  d = ImageDraw.Draw(canvas)
  d.polygon(pen_points, fill=wash)
  # The pen goes a little past its start, as a hand closing a loop does.
  overshoot = pen_points + pen_points[: len(pen_points) // 20]
  d.line(overshoot, fill=pen, width=max(2, round(big / 40)), joint='curve')
  small = canvas.resize((size, size), Image.Resampling.BOX)
  grain = rng.normal(0, 2.0, (size, size, 1))  # paper grain
  return np.clip(np.asarray(small, np.float32) + grain, 0, 255).round().astype(np.uint8)


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
  r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
  return round(r * 255), round(g * 255), round(b * 255)


# ---------------------------------------------------------------------------------------------
# The corpus.


@dataclasses.dataclass(frozen=True)
class Plan:
  """Every record of the corpus: split -> [(painting_id, Squiggle, clip_source_id, NoteClip)]."""

  records: dict[str, list[tuple[str, Squiggle, str, NoteClip]]]


def plan(num_examples: int, val_fraction: float, test_fraction: float, seed: int) -> Plan:
  """The corpus, deterministic in (num_examples, fractions, seed)."""
  n_train, n_val, n_test = pairing.split_sizes(num_examples, val_fraction, test_fraction)
  records: dict[str, list[tuple[str, Squiggle, str, NoteClip]]] = {}
  for split, n in zip(pairing.SPLITS, (n_train, n_val, n_test)):
    rng = np.random.default_rng([seed, pairing.stable_hash(split, 'squiggles') % 2**32])
    notes = [NoteParams.random(rng) for _ in range(n)]
    nuisance = [int(rng.integers(2**63)) for _ in range(n)]
    if split == 'train':
      # Unpaired: the pictures follow parameters of their own, in a shuffled order.
      pictures = [NoteParams.random(rng) for _ in range(n)]
      order = rng.permutation(n)
    else:
      pictures, order = notes, np.arange(n)
    records[split] = [
      (
        f'squiggle-{split}-{int(j):05d}',
        Squiggle(pictures[int(j)], nuisance[int(j)]),
        f'note-{split}-{i:05d}',
        NoteClip(notes[i]),
      )
      for i, j in enumerate(order)
    ]
  return Plan(records)


def write_params_file(out_dir: str | os.PathLike, corpus: Plan) -> None:
  """`squiggles_params.json`: {"rule": ..., "clips": {clip_source_id: params},
  "pictures": {painting_id: params + the visual quantities the rule gave}, "paired_splits"}."""
  clips: dict[str, Any] = {}
  pictures: dict[str, Any] = {}
  for split, rows in corpus.records.items():
    for pid, squiggle, cid, clip in rows:
      clips[cid] = dict(clip.params.as_dict(), split=split)
      visual = {k: round(v, 5) for k, v in squiggle.visual().items()}
      pictures[pid] = dict(squiggle.params.as_dict(), split=split, **visual)
  data = dict(
    rule_version=RULE_VERSION,
    rule=RULE_TEXT,
    paired_splits=['validation', 'test'],
    clips=clips,
    pictures=pictures,
  )
  path = pathlib.Path(out_dir) / PARAMS_FILE
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
  os.replace(tmp, path)


RULE_TEXT = {
  'pitch': f'MIDI {PITCH_RANGE} -> centre height {HEIGHT_RANGE} of the canvas (from the bottom)',
  'velocity': f'{VELOCITY_RANGE} -> ink area {AREA_RANGE} of the canvas',
  'timbre': dict(zip(TIMBRES, HUES)),
  'brightness': f'0..1 -> spike depth {SPIKE_RANGE}; harmonic roll-off k^-{ROLLOFF_RANGE}',
}


def build(out_dir, opts, num_examples: int | None) -> dict:
  """Plan and write the corpus (called by demos.build_demo)."""
  n = DEFAULT_EXAMPLES if num_examples is None else num_examples
  if n < 3:
    raise ValueError(f'squiggles needs at least 3 examples, got {n}')
  fingerprint = builder.fingerprint(opts, ['demo:squiggles', RULE_VERSION, n])
  workspace, done = builder.open_workspace(out_dir, fingerprint, opts.overwrite)
  if done is not None:
    return done
  start = time.perf_counter()
  corpus = plan(n, opts.val_fraction, opts.test_fraction, opts.seed)
  examples = {
    split: [
      pairing.Example(pid, squiggle, cid, clip, 0.0, clip.params.timbre)
      for pid, squiggle, cid, clip in rows
    ]
    for split, rows in corpus.records.items()
  }
  write_params_file(out_dir, corpus)
  n_train = len(corpus.records['train'])
  return builder.write_dataset(
    workspace,
    examples,
    opts,
    era_names=TIMBRES,
    source='demo:squiggles',
    formats={'paintings': 'procedural squiggles', 'music': 'synthesised single notes'},
    fingerprint=fingerprint,
    skipped=[],
    extra=dict(inputs=dict(examples_generated=n, rule_version=RULE_VERSION)),
    n_workers=workers.resolve_workers(opts.workers),
    start=start,
    meta_extra=dict(
      paired=False,
      paired_splits=['validation', 'test'],
      unpaired=dict(
        distinct={'train': dict(paintings=n_train, clips=n_train)},
        fill='equal counts: every train picture and clip is used once',
      ),
      hidden_params=PARAMS_FILE,
      rule_version=RULE_VERSION,
    ),
    description=DATASET_DESCRIPTION,
  )
