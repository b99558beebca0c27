"""Benchmark: mel -> waveform by every vocoder of the project, side by side on the same held-out
clips, against the original recordings.

The clips are a split (default: test) of a dataset built with audio (`data_prep --store_audio`;
the demo corpora have it): each clip's stored mel image goes through

    griffin_lim      the project's JAX fast Griffin-Lim (NNLS mel -> linear, 64 iterations)
    librosa_gl       librosa.feature.inverse.mel_to_audio (L-BFGS NNLS, griffinlim, 64 iterations)
    neural           the trained neural vocoder (--vocoder_workdir)
    midi             the MIDI route of `--vocoder=midi` (pix2pitch_jax/vocoders.py): notes read off
                     the mel -> .mid -> FluidSynth with the best soundfont installed; left out,
                     with one line saying why, without FluidSynth or a soundfont

and the output is compared with the recording the mel was made from:
  mrstft     multi-resolution STFT distance (audio/stft_distance.py; 0 = identical)
  lsd_db     log-spectral distance of the dB mels (evaluation/metrics.py)
  mcd_db     mel-cepstral distortion, standard scale (evaluation/metrics.py)
  note_f1    onset+pitch F1 (50 ms, 50 cents) of the notes basic-pitch hears, against the notes of
             the source MIDI in that clip's window (the eras demo keeps its MIDI files in
             <data>/.data_prep/music21/), else the dataset's notes_json; `real` is the original
             recording through the same ear: the ceiling
  rtf        seconds of audio per second of compute, batched, after compilation, on this machine

    python bench/vocoder.py --data_dir=runs/eras_data --vocoder_workdir=runs/vocoder

Its last line: `vocoder_bench neural_mrstft=<x> griffin_lim_mrstft=<y> neural_note_f1=<a>
griffin_lim_note_f1=<b> neural_rtf=<r> midi_note_f1=<c> midi_rtf=<s>` (nan for a row left out).
"""

import os
import sys
import time

# Runnable as a plain script from the repository root (make bench).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax
import numpy as np
from absl import app, flags, logging
from etils import epath

from pix2pitch_jax import inference, inference_vocoder, vocoders
from pix2pitch_jax.audio import numba_cache, spectrogram, stft_distance, transcription
from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import independent_ear, metrics

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Dataset built with audio.', required=True)
_VOCODER = flags.DEFINE_string('vocoder_workdir', None, 'Workdir of a trained neural vocoder.')
_MIDI_DIR = flags.DEFINE_string(
  'midi_dir',
  None,
  "Folder of the clips' source MIDI files, <era>/<name>.mid (default: the build's own, "
  '<data_dir>/.data_prep/music21): the reference notes of note F1.',
)
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "The vocoder's checkpoint step.")
_SPLIT = flags.DEFINE_string('split', 'test', 'Split whose clips are vocoded.')
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', 50, 'Use the first N clips of the split.')
_GL_ITERS = flags.DEFINE_integer('griffin_lim_iters', 64, 'Griffin-Lim iterations (both).')
_BATCH = flags.DEFINE_integer('batch', 8, 'Clips per batch (JAX vocoders).')
_EAR = flags.DEFINE_bool('ear', True, 'Score notes with basic-pitch (the `ear` extra).')
_LIBROSA = flags.DEFINE_bool(
  'librosa', True, "Include librosa's Griffin-Lim (slow: its L-BFGS mel inversion, per clip)."
)


def _timed(fn, clips_seconds: float) -> tuple[np.ndarray, float]:
  """Run `fn` twice (the first compiles), time the second; (output, real-time factor)."""
  fn()
  start = time.perf_counter()
  out = np.asarray(fn())
  return out, clips_seconds / (time.perf_counter() - start)


def _librosa_griffin_lim(mels: np.ndarray, params: spectrogram.MelParams, n_iter: int):
  librosa = numba_cache.import_librosa()
  power = spectrogram.image_to_power_mel(mels, params)
  out = []
  start = time.perf_counter()
  for i, m in enumerate(power):
    if i == 1:
      print(f'librosa_gl: first clip {time.perf_counter() - start:.1f} s', flush=True)
    out.append(
      librosa.feature.inverse.mel_to_audio(
        m,
        sr=params.sample_rate,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        power=2.0,
        n_iter=n_iter,
        fmin=params.fmin,
        fmax=params.fmax_hz,
        norm=None,
        htk=False,
      )
    )
  seconds = time.perf_counter() - start
  # librosa's griffinlim with `length` rebuilds one frame more than it was given (an error), so
  # the clip is cut or padded to the dataset's length afterwards.
  n = params.clip_samples
  out = [np.pad(y[:n], (0, max(0, n - len(y)))) for y in out]
  return np.stack(out).astype(np.float32), len(mels) * params.clip_seconds / seconds


def _midi_route(data_dir: str, meta: records.DatasetMeta, mels: np.ndarray):
  """The MIDI route (mel -> notes -> .mid -> FluidSynth), built by the vocoder registry as
  `pix2pitch-generate --vocoder=midi` builds it: (audio (N, clip_samples), rtf, soundfont name),
  or None, after one line saying why, when FluidSynth or a soundfont is missing."""
  try:
    route = vocoders.build('midi', vocoders.VocoderContext(workdir=data_dir, meta=meta))
  except vocoders.VocoderUnavailable as e:
    print(f'midi row left out: {e}')
    return None
  start = time.perf_counter()  # no compilation to leave out: the route runs on the host
  clips = route.render(mels, np.arange(len(mels))).clips
  seconds = time.perf_counter() - start
  return clips, len(mels) * meta.mel_params.clip_seconds / seconds, route.about['soundfont']


def reference_notes(
  data_dir: str, split_rows: dict, clip_seconds: float, midi_dir: str | None = None
) -> list:
  """Per clip, the notes of its source MIDI (in `midi_dir`, default the build's own) inside the
  clip's window (Notes), or of its notes_json, or None when neither is known."""
  import pretty_midi

  midi_root = epath.Path(midi_dir or epath.Path(data_dir) / '.data_prep' / 'music21')
  out = []
  cache: dict[str, list] = {}
  for source, offset, notes_json in zip(
    split_rows['clip_source_id'], split_rows['clip_offset_s'], split_rows['notes_json']
  ):
    if notes_json:
      out.append(transcription.parse_notes_json(notes_json, clip_seconds))
      continue
    path = midi_root / source
    if not path.is_file():
      out.append(None)
      continue
    if source not in cache:
      with path.open('rb') as f:
        midi = pretty_midi.PrettyMIDI(f)
      cache[source] = [(n.start, n.end, n.pitch) for i in midi.instruments for n in i.notes]
    offset = float(offset or 0.0)  # read_split gives '' for a 0.0 it does not stack
    rows = sorted(
      (s - offset, min(e, offset + clip_seconds) - offset, p)
      for s, e, p in cache[source]
      if offset <= s < offset + clip_seconds
    )
    out.append(
      transcription.Notes(
        np.asarray([[s, max(e, s + 1e-3)] for s, e, _ in rows], np.float64).reshape(-1, 2),
        transcription.midi_to_hz([p for *_, p in rows]),
      )
    )
  return out


def _db_mels(clips: np.ndarray, params: spectrogram.MelParams) -> np.ndarray:
  return np.stack(
    [spectrogram.power_mel_to_db(spectrogram.audio_to_power_mel(c, params), params) for c in clips]
  )


def score(name, clips, originals, original_db, notes, params, rtf, ear: bool) -> dict:
  clips = np.clip(np.asarray(clips, np.float32), -1.0, 1.0)
  resolutions = stft_distance.resolutions_for(params.sample_rate)
  mrstft = np.concatenate(
    [
      np.asarray(stft_distance.multi_resolution_stft_distance(o, c, resolutions))
      for o, c in zip(
        np.array_split(originals, max(1, len(originals) // 8)),
        np.array_split(clips, max(1, len(clips) // 8)),
      )
    ]
  )
  db = _db_mels(clips, params)
  print(f'scoring {name}...', flush=True)
  row = {
    'system': name,
    'mrstft': float(mrstft.mean()),
    'lsd_db': float(np.mean(metrics.log_spectral_distance(original_db, db))),
    'mcd_db': float(np.mean(metrics.mel_cepstral_distortion(original_db, db))),
    'note_f1': float('nan'),
    'onset_f1': float('nan'),
    'rtf': rtf,
  }
  if ear:
    f1, onset = [], []
    for clip, ref in zip(clips, notes):
      if ref is None or not len(ref):
        continue
      s = transcription.note_scores(ref, independent_ear.transcribe_audio(clip, params.sample_rate))
      f1.append(s['onset_pitch_f1'])
      onset.append(s['onset_f1'])
    if f1:
      row['note_f1'], row['onset_f1'] = float(np.mean(f1)), float(np.mean(onset))
  return row


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax's and TFDS' INFO chatter
  data_dir = _DATA_DIR.value
  meta = records.read_meta(data_dir)
  params = meta.mel_params
  if not meta.stores_audio:
    raise app.UsageError(f'{data_dir} stores no audio: rebuild it with data_prep --store_audio')
  rows = records.read_split(
    data_dir,
    _SPLIT.value,
    max_examples=_MAX_EXAMPLES.value,
    fields=('mel', 'audio', 'clip_source_id', 'clip_offset_s', 'notes_json'),
  )
  mels, originals = rows['mel'], records.pcm_to_audio(rows['audio'])
  n = len(mels)
  seconds = n * params.clip_seconds
  ear = _EAR.value
  if ear:
    try:
      independent_ear.check_available()
    except independent_ear.EarUnavailable as e:
      print(f'note F1 skipped: {e}')
      ear = False
  notes = reference_notes(data_dir, rows, params.clip_seconds, _MIDI_DIR.value)
  print(
    f'{n} clips of {params.clip_seconds:g} s ({_SPLIT.value} split of {data_dir}); '
    f'{sum(x is not None and len(x) > 0 for x in notes)} with reference notes; '
    f'{jax.device_count()} {jax.default_backend()} device(s), {os.cpu_count()} cores'
  )
  original_db = _db_mels(originals, params)
  results = [score('real', originals, originals, original_db, notes, params, float('inf'), ear)]

  clips, rtf = _timed(
    lambda: inference.mels_to_audio(
      mels, params, n_iter=_GL_ITERS.value, seed=0, batch_size=_BATCH.value, progress=None
    ),
    seconds,
  )
  results.append(score('griffin_lim', clips, originals, original_db, notes, params, rtf, ear))
  if _LIBROSA.value:
    clips, rtf = _librosa_griffin_lim(mels, params, _GL_ITERS.value)
    results.append(score('librosa_gl', clips, originals, original_db, notes, params, rtf, ear))
  if _VOCODER.value:
    checkpoint = _CHECKPOINT.value
    vocoder = inference_vocoder.load_vocoder(
      _VOCODER.value, checkpoint if checkpoint == 'latest' else int(checkpoint)
    )
    vocoder.check_compatible(params)
    print(f'neural vocoder: {_VOCODER.value}, step {vocoder.step} ({vocoder.weights} weights)')
    clips, rtf = _timed(lambda: vocoder.mels_to_audio(mels, batch_size=_BATCH.value), seconds)
    results.append(score('neural', clips, originals, original_db, notes, params, rtf, ear))
  midi = _midi_route(data_dir, meta, mels)
  if midi is not None:
    clips, rtf, font = midi
    print(f'midi route: soundfont {font}')
    results.append(score('midi', clips, originals, original_db, notes, params, rtf, ear))

  print(
    f'{"system":<12} {"MR-STFT":>8} {"LSD dB":>7} {"MCD dB":>7} {"note F1":>8} '
    f'{"onset F1":>8} {"RTF":>8}'
  )
  for r in results:
    print(
      f'{r["system"]:<12} {r["mrstft"]:8.3f} {r["lsd_db"]:7.2f} {r["mcd_db"]:7.2f} '
      f'{r["note_f1"]:8.3f} {r["onset_f1"]:8.3f} {r["rtf"]:8.3g}'
    )
  by = {r['system']: r for r in results}
  missing = dict.fromkeys(('mrstft', 'note_f1', 'rtf'), float('nan'))
  neural, midi_row = by.get('neural', missing), by.get('midi', missing)
  gl = by['griffin_lim']
  print(
    f'vocoder_bench neural_mrstft={neural["mrstft"]:.4f} griffin_lim_mrstft={gl["mrstft"]:.4f} '
    f'neural_note_f1={neural["note_f1"]:.4f} griffin_lim_note_f1={gl["note_f1"]:.4f} '
    f'neural_rtf={neural["rtf"]:.1f} midi_note_f1={midi_row["note_f1"]:.4f} '
    f'midi_rtf={midi_row["rtf"]:.1f}'
  )


if __name__ == '__main__':
  app.run(main)
