"""The 'eras' demo: real compositions from the music21 corpus, grouped by era, paired with
procedurally generated (synthetic) paintings whose palette, brushwork and composition differ by era.

Music: the works in `WORKS` are parsed with music21, written as MIDI and rendered with FluidSynth
(first `RENDER_SECONDS` s) and the best General MIDI soundfont installed (Debian's
fluid-soundfont-gm when present), all offline from files inside the music21 package. Each work is
played by one of its era's ensembles (`ERA_ENSEMBLES`, dealt to the era's works in turn), an
instrument per part by register (the highest part gets the ensemble's first instrument): voices,
recorders and viols, lute for the Renaissance; organ, harpsichord, strings with continuo for the
Baroque; string quartet, fortepiano, winds for Classicism; piano, orchestra, voice or cello with
piano for Romanticism; piano and the mixed chamber groups of the early 20th century for
Expressionism. The ensembles overlap between eras on purpose (piano in three, strings in three,
organ and voices in two), so an era is not one instrument: the classifier, and the model, must
hear it in texture, register, harmony and rhythm too. The corpus has no Impressionist music, hence
the era set 'music21' (renaissance, baroque, classicism, romanticism, expressionism) rather than
the thesis' five.

Paintings are synthetic, not art: e.g. Renaissance = symmetric arch and central figure in earth
tones and lapis; Baroque = dark ground with a diagonal beam of warm light; Classicism (Rococo) =
light pastel ground with soft curls; Romanticism = sunset sky over a dark jagged landscape;
Expressionism = clashing saturated zones with thick black outlines.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data_prep import builder, eras, midi, music, pairing, workers

ERAS = ('renaissance', 'baroque', 'classicism', 'romanticism', 'expressionism')
_E = midi.Ensemble
# General MIDI programmes, pretty_midi's numbering: 0 piano, 6 harpsichord, 8 celesta,
# 19 church organ, 24 nylon guitar (for a lute), 40-43 violin, viola, cello, contrabass, 44
# tremolo strings, 45 pizzicato, 46 harp, 48 string ensemble, 52-53 choir and voice, 59 muted
# trumpet, 60 horn, 68 oboe, 70 bassoon, 71 clarinet, 73 flute, 74 recorder. Highest part first.
ERA_ENSEMBLES: dict[str, tuple[midi.Ensemble, ...]] = {
  'renaissance': (
    _E('voices', (53, 52, 52, 53)),
    _E('recorders and viols', (74, 74, 41, 42)),
    _E('voices and lute', (53, 52, 24)),
    _E('organ', (19,)),
  ),
  'baroque': (
    _E('organ', (19,)),
    _E('strings and continuo', (40, 40, 41, 6)),
    _E('harpsichord', (6,)),
    _E('oboe, strings and bassoon', (68, 40, 41, 70)),
  ),
  'classicism': (
    _E('string quartet', (40, 40, 41, 42)),
    _E('fortepiano', (0,)),
    _E('winds', (73, 71, 60, 70)),
    _E('violin and piano', (40, 0)),
  ),
  'romanticism': (
    _E('piano', (0,)),
    _E('orchestra', (48, 68, 60, 42, 43)),
    _E('voice and piano', (53, 0)),
    _E('cello and piano', (42, 0)),
  ),
  'expressionism': (
    _E('piano', (0,)),
    _E('chamber ensemble', (73, 71, 40, 42, 0)),
    _E('celesta, harp and strings', (8, 46, 44, 45)),
    _E('muted brass and strings', (59, 71, 42, 43)),
  ),
}
RENDER_SECONDS = 60.0
DEFAULT_PAINTINGS = 300  # 60 per era
# Corpus names for music21.corpus.parse; ('composer', 'ext', n) = the first n such files.
WORKS: dict[str, list[str | tuple[str, str, int]]] = {
  'renaissance': [
    'josquin/milleRegrets',
    'josquin/adieuMesAmours',
    'josquin/petiteCamusette',
    'josquin/laDeplorationDeLaMorteDeJohannesOckeghem',
    'lusitano/allor_che_ignuda',
    ('palestrina', 'krn', 2),
  ],
  'baroque': [
    ('bach', 'mxl', 4),
    'corelli/opus3no1/1grave',
    'handel/rinaldo/Lascia_chio_pianga',
    'monteverdi/madrigal.3.1.mxl',
  ],
  'classicism': [
    'mozart/k155/movement1',
    'mozart/k156/movement2',
    'mozart/k80/movement1',
    'haydn/opus1no1/movement1',
    'haydn/opus1no1/movement3',
    'cpebach/h186',
  ],
  'romanticism': [
    'schumann_clara/polonaise_op1n1',
    'schumann_clara/polonaise_op1n2',
    'schumann_robert/opus41no1/movement2',
    'schumann_robert/opus48no2',
    'schumann_clara/polonaise_op1n3',
    'verdi/laDonnaEMobile',
  ],
  'expressionism': [
    'schoenberg/opus19/movement2',
    'schoenberg/opus19/movement6',
    'webern/webern_dormi_jesu_op_16_no_2',
  ],
}


def corpus_works() -> list[tuple[str, str]]:
  """(era, music21 corpus path) of every work used, in a fixed order."""
  from music21 import corpus

  out = []
  for era in ERAS:
    for spec in WORKS[era]:
      if isinstance(spec, tuple):
        composer, ext, n = spec
        paths = sorted(str(p) for p in corpus.getComposer(composer) if str(p).endswith(f'.{ext}'))[
          :n
        ]
      else:
        paths = [str(corpus.getWork(spec))]
      out += [(era, p) for p in paths]
  return out


def ensembles_of_works(works: list[tuple[str, str]]) -> dict[str, midi.Ensemble]:
  """Corpus path -> the ensemble that plays it: each era's ensembles dealt to its works in turn,
  so every ensemble is heard when the era has as many works."""
  out, dealt = {}, dict.fromkeys(ERAS, 0)
  for era, path in works:
    ensembles = ERA_ENSEMBLES[era]
    out[path] = ensembles[dealt[era] % len(ensembles)]
    dealt[era] += 1
  return out


def export_midi(job: tuple[str, str]) -> str:
  """Parse one corpus work and write it as MIDI (atomically); returns '' or the failure reason."""
  source, dest = job
  if os.path.exists(dest):
    return ''
  from music21 import corpus, stream

  try:
    score = corpus.parse(source)
    if isinstance(score, stream.Opus):  # abc files hold collections; the first piece is the work
      score = score.scores[0]
    tmp = f'{dest}.tmp-{os.getpid()}.mid'
    score.write('midi', fp=tmp)
    os.replace(tmp, dest)
  except Exception as e:  # music21 raises many types on parse/export problems; report them.
    return f'music21 could not export {source}: {type(e).__name__}: {e}'
  return ''


@dataclasses.dataclass(frozen=True)
class ProceduralPainting:
  era: str
  seed: int

  def load(self, size: int, mode: str = 'crop') -> np.ndarray:
    rng = np.random.default_rng(self.seed)
    return np.asarray(_PAINTERS[self.era](rng, size).convert('RGB'), np.uint8)


def build(out_dir, opts, num_paintings: int | None) -> dict:
  """Export the works to MIDI, then run the ordinary paired build (called by build_demo)."""
  n = DEFAULT_PAINTINGS if num_paintings is None else num_paintings
  if n < len(ERAS) * 3:
    raise ValueError(f'eras demo needs at least {len(ERAS) * 3} paintings, got {n}')
  works = corpus_works()
  orchestra = ensembles_of_works(works)
  fingerprint = builder.fingerprint(
    opts,
    [
      'demo:eras',
      n,
      sorted(e.key for e in orchestra.values()),
      midi.soundfont_name(),
      RENDER_SECONDS,
      [w[1].split('corpus/')[-1] for w in works],
    ],
  )
  workspace, done = builder.open_workspace(out_dir, fingerprint, opts.overwrite)
  if done is not None:
    return done
  start = time.perf_counter()
  midi_dir = workspace.path / 'music21'
  jobs, recordings = [], []
  ensemble_of: dict[str, midi.Ensemble] = {}
  for era, source in works:
    rel = source.split('corpus/')[-1]
    dest = midi_dir / era / (rel.replace('/', '_').rsplit('.', 1)[0] + '.mid')
    ensemble_of[f'{era}/{dest.name}'] = orchestra[source]
    dest.parent.mkdir(parents=True, exist_ok=True)
    jobs.append((source, str(dest)))
    recordings.append(music.Recording(f'{era}/{dest.name}', era, str(dest)))
  n_workers = workers.resolve_workers(opts.workers)
  failures = workers.parallel_map(
    export_midi, jobs, n_workers, desc='music21 -> MIDI', unit='work', progress=opts.progress
  )
  ignored = [
    dict(kind='music21 work', id=src, reason=why) for (src, _), why in zip(jobs, failures) if why
  ]
  recordings = [r for r, why in zip(recordings, failures) if not why]
  per_era = -(-n // len(ERAS))
  paintings = [
    (
      f'{era}/{i:04d}',
      era,
      ProceduralPainting(era, pairing.stable_hash(f'{era}/{i}', f'eras{opts.seed}') % 2**63),
    )
    for era in ERAS
    for i in range(per_era)
  ][:n]
  tables = eras.load_tables(opts.era_overrides)
  sources = builder.SourceSet(
    name='demo:eras',
    formats={'paintings': 'procedural by era', 'music': 'music21 corpus'},
    paintings=paintings,
    recordings=recordings,
    painting_era=tables.label_era,
    recording_era=tables.label_era,
    ignored=ignored,
    render_ensemble=lambda era, source_id: ensemble_of[source_id],
    render_max_seconds=RENDER_SECONDS,
  )
  report = builder.build_paired(
    sources, out_dir, opts, tables.resolve_era_set(opts.era_set), fingerprint
  )
  report['throughput']['total_seconds'] = round(time.perf_counter() - start, 3)
  return report


# ---------------------------------------------------------------------------------------------
# Painters: one per era. Each draws on a PIL canvas with its own palette, brushwork, composition.


def _gradient(size: int, top, bottom) -> Image.Image:
  t = np.linspace(0, 1, size)[:, None, None]
  rows = (1 - t) * np.asarray(top, float) + t * np.asarray(bottom, float)
  return Image.fromarray(np.repeat(rows, size, axis=1).clip(0, 255).astype(np.uint8))


def _jitter(colour, rng, amount=20):
  return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)


def _texture(img: Image.Image, rng, strength: float) -> Image.Image:
  arr = np.asarray(img, np.float32)
  arr += rng.normal(0, strength, arr.shape[:2] + (1,))
  return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _renaissance(rng, s):
  img = _gradient(s, _jitter((196, 160, 100), rng), _jitter((110, 80, 50), rng))
  d = ImageDraw.Draw(img)
  w = s * rng.uniform(0.45, 0.6)
  d.rectangle([s / 2 - w / 2, s * 0.25, s / 2 + w / 2, s], fill=_jitter((90, 70, 50), rng, 10))
  d.ellipse(
    [s / 2 - w / 2, s * 0.25 - w / 2, s / 2 + w / 2, s * 0.25 + w / 2],
    fill=_jitter((90, 70, 50), rng, 10),
  )  # the arch
  robe = [(26, 60, 140), (150, 30, 30)][int(rng.integers(2))]
  d.ellipse([s * 0.4, s * 0.45, s * 0.6, s * 0.95], fill=_jitter(robe, rng, 12))
  d.ellipse([s * 0.45, s * 0.3, s * 0.55, s * 0.44], fill=_jitter((225, 190, 150), rng, 8))
  return _texture(img.filter(ImageFilter.GaussianBlur(s / 200)), rng, 3)


def _baroque(rng, s):
  img = Image.new('RGB', (s, s), _jitter((20, 15, 10), rng, 5))
  arr = np.asarray(img, np.float32)
  y, x = np.mgrid[0:s, 0:s] / s
  angle = rng.uniform(0.6, 1.0)
  beam = np.exp(-((x * np.cos(angle) - y * np.sin(angle) + rng.uniform(-0.2, 0.2)) ** 2) / 0.02)
  arr += beam[..., None] * np.asarray(_jitter((200, 150, 70), rng), float) * 0.8
  img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
  d = ImageDraw.Draw(img)
  for _ in range(int(rng.integers(2, 4))):
    cx, cy, r = rng.uniform(0.2, 0.8) * s, rng.uniform(0.3, 0.8) * s, rng.uniform(0.05, 0.12) * s
    d.ellipse(
      [cx - r, cy - r, cx + r, cy + r * 1.3],
      fill=_jitter([(230, 190, 150), (150, 20, 20), (240, 230, 210)][_ri(rng, 3)], rng),
    )
  return _texture(img.filter(ImageFilter.GaussianBlur(s / 80)), rng, 4)


def _classicism(rng, s):
  img = _gradient(s, _jitter((200, 220, 240), rng, 10), _jitter((245, 215, 220), rng, 10))
  d = ImageDraw.Draw(img)
  pastels = [(250, 200, 210), (200, 230, 210), (255, 240, 200), (210, 210, 250)]
  for _ in range(int(rng.integers(12, 24))):
    cx, cy, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.03, 0.1) * s
    d.arc(
      [cx - r, cy - r, cx + r, cy + r],
      rng.uniform(0, 180),
      rng.uniform(200, 360),
      fill=_jitter(pastels[_ri(rng, 4)], rng, 8),
      width=max(1, s // 64),
    )
  return _texture(img.filter(ImageFilter.GaussianBlur(s / 100)), rng, 2)


def _romanticism(rng, s):
  img = _gradient(s, _jitter((70, 80, 110), rng, 10), _jitter((235, 140, 60), rng, 15))
  d = ImageDraw.Draw(img)
  for _ in range(int(rng.integers(4, 9))):  # turbulent clouds
    cx, cy, r = rng.uniform(0, s), rng.uniform(0, 0.5) * s, rng.uniform(0.05, 0.18) * s
    d.ellipse([cx - r * 1.6, cy - r, cx + r * 1.6, cy + r], fill=_jitter((110, 110, 120), rng))
  horizon = s * rng.uniform(0.6, 0.75)
  xs = np.linspace(0, s, 12)
  ridge = [(x, horizon + rng.normal(0, s * 0.05)) for x in xs]
  d.polygon(ridge + [(s, s), (0, s)], fill=_jitter((30, 30, 25), rng, 6))
  return _texture(img.filter(ImageFilter.GaussianBlur(s / 60)), rng, 3)


def _expressionism(rng, s):
  img = Image.new('RGB', (s, s), _jitter((230, 200, 40), rng, 30))
  d = ImageDraw.Draw(img)
  loud = [(230, 30, 30), (20, 160, 60), (30, 40, 200), (250, 130, 0), (200, 0, 160)]
  for _ in range(int(rng.integers(5, 9))):
    pts = [tuple(rng.uniform(-0.1, 1.1, 2) * s) for _ in range(int(rng.integers(3, 6)))]
    d.polygon(
      pts,
      fill=_jitter(loud[_ri(rng, len(loud))], rng, 15),
      outline=(10, 10, 10),
      width=max(1, s // 40),
    )
  return _texture(img, rng, 6)


def _ri(rng, n: int) -> int:
  return int(rng.integers(n))


_PAINTERS = {
  'renaissance': _renaissance,
  'baroque': _baroque,
  'classicism': _classicism,
  'romanticism': _romanticism,
  'expressionism': _expressionism,
}
