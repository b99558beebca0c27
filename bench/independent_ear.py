"""Benchmark: the two ears on the synesthesia demo's test split, and basic-pitch's time per clip.

Builds a small synesthesia corpus (or reuses one) and scores the test split's stored notes with

  mel ear          audio/transcription.transcribe_mel_image on the real mel images
  basic-pitch      evaluation/independent_ear.transcribe_audio on the real mels' Griffin-Lim
                   audio (the evaluation job's path, `--iters` iterations), and on the clean
                   synthesised audio the mels were computed from (what Griffin-Lim costs it)

as onset and onset+pitch precision / recall / F1 (means over clips, transcription.note_scores).
Also how many of basic-pitch's unmatched notes lie on a partial (2-8x the frequency) of a note
that sounds: the demo's bright timbres have strong partials, which basic-pitch may hear as notes.

    python bench/independent_ear.py [--data_dir=/tmp/ear_data] [--paintings=192] [--iters=32]
"""

import os
import sys
import time

# Runnable as a plain script from the repository root (make bench).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import numpy as np
from absl import app, flags

from data_prep import demo_synesthesia, demos, pairing
from pix2pitch_jax import inference
from pix2pitch_jax.audio import transcription
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import independent_ear

_DATA_DIR = flags.DEFINE_string('data_dir', '/tmp/pix2pitch_ear_bench', 'Corpus (built if absent).')
_PAINTINGS = flags.DEFINE_integer('paintings', 192, 'Paintings in the corpus (1/8 are test).')
_ITERS = flags.DEFINE_integer('iters', 32, 'Griffin-Lim iterations (the evaluation default).')


def clean_audio(painting_id: str, params, seed: int = 0) -> np.ndarray:
  """The synthesised clip of a synesthesia example, rebuilt as demo_synesthesia.build makes it."""
  i = int(painting_id.split('-')[1])
  score = demo_synesthesia.SynesthesiaScore(
    pairing.stable_hash(str(i), f'syn{seed}'),
    i % len(demo_synesthesia.ERA_NAMES),
    params.image_size,
    float(params.clip_seconds),
  )
  return score.waveform(params)


def partial_share(reference: transcription.Notes, heard: transcription.Notes) -> tuple[int, int]:
  """(unmatched heard notes, how many of them sit on a partial of a reference note whose onset
  is within 50 ms), with unmatched meaning no reference note of that onset and pitch."""
  ref_midi = transcription.hz_to_midi(reference.pitches_hz)
  extra = on_partial = 0
  for onset, midi in zip(heard.onsets, transcription.hz_to_midi(heard.pitches_hz)):
    near = np.abs(reference.onsets - onset) <= 0.05
    if (near & (np.abs(ref_midi - midi) < 0.5)).any():
      continue
    extra += 1
    partials = ref_midi[near][:, None] + 12 * np.log2(np.arange(2, 9))[None]
    on_partial += bool(partials.size and np.abs(partials - midi).min() < 0.5)
  return extra, on_partial


def summary(name: str, scores: list[dict[str, float]], extras=None) -> None:
  mean = {k: float(np.mean([s[k] for s in scores])) for k in transcription.SCORE_KEYS}
  line = (
    f'{name:28s} onset P/R/F1 {mean["onset_precision"]:.3f}/{mean["onset_recall"]:.3f}/'
    f'{mean["onset_f1"]:.3f}   onset+pitch P/R/F1 {mean["onset_pitch_precision"]:.3f}/'
    f'{mean["onset_pitch_recall"]:.3f}/{mean["onset_pitch_f1"]:.3f}'
  )
  if extras is not None:
    line += (
      f'   unmatched notes {sum(e for e, _ in extras)}, on a partial {sum(p for _, p in extras)}'
    )
  print(line)


def main(argv):
  del argv
  demos.build_demo('synesthesia', _DATA_DIR.value, num_paintings=_PAINTINGS.value)
  data = records.read_split(_DATA_DIR.value, 'test', fields=('mel', 'painting_id', 'notes_json'))
  params = records.read_meta(_DATA_DIR.value).mel_params
  references = [transcription.parse_notes_json(t, params.clip_seconds) for t in data['notes_json']]
  n = len(references)
  print(f'{n} test clips, {sum(len(r) for r in references)} notes, {params.clip_seconds:g} s each')

  mel_scores = [
    transcription.note_scores(r, transcription.transcribe_mel_image(m, params))
    for r, m in zip(references, data['mel'])
  ]
  start = time.perf_counter()
  griffin_lim = inference.mels_to_audio(data['mel'], params, n_iter=_ITERS.value, progress=None)
  griffin_lim_s = time.perf_counter() - start

  start = time.perf_counter()
  independent_ear.check_available()
  load_s = time.perf_counter() - start
  results = {}
  for name, clips in (
    (f'basic-pitch, Griffin-Lim {_ITERS.value}', griffin_lim),
    ('basic-pitch, clean audio', [clean_audio(p, params) for p in data['painting_id']]),
  ):
    start = time.perf_counter()
    heard = [independent_ear.transcribe_audio(c, params.sample_rate) for c in clips]
    seconds = time.perf_counter() - start
    results[name] = (heard, seconds)

  summary('mel ear, real mels', mel_scores)
  for name, (heard, _) in results.items():
    scores = [transcription.note_scores(r, h) for r, h in zip(references, heard)]
    summary(name, scores, [partial_share(r, h) for r, h in zip(references, heard)])
  print(
    f'basic-pitch: import + model load {load_s:.2f} s; per {params.clip_seconds:g} s clip '
    + ', '.join(f'{s / n * 1000:.0f} ms ({name})' for name, (_, s) in results.items())
    + f'; Griffin-Lim of all {n} clips {griffin_lim_s:.2f} s incl. compile'
  )


if __name__ == '__main__':
  app.run(main)
