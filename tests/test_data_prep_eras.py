"""Era tables: coverage of MAESTRO v3 / MusicNet / music21 composers, overrides, unmapped inputs."""

import json

import pytest

from data_prep import eras

# canonical_composer values of maestro-v3.0.0.csv.
MAESTRO_V3 = [
  'Alban Berg',
  'Alexander Scriabin',
  'Antonio Soler',
  'Carl Maria von Weber',
  'Charles Gounod / Franz Liszt',
  'Claude Debussy',
  'César Franck',
  'Domenico Scarlatti',
  'Edvard Grieg',
  'Felix Mendelssohn',
  'Felix Mendelssohn / Sergei Rachmaninoff',
  'Franz Liszt',
  'Franz Liszt / Camille Saint-Saëns',
  'Franz Liszt / Vladimir Horowitz',
  'Franz Schubert',
  'Franz Schubert / Franz Liszt',
  'Franz Schubert / Leopold Godowsky',
  'Fritz Kreisler / Sergei Rachmaninoff',
  'Frédéric Chopin',
  'George Enescu',
  'George Frideric Handel',
  'Georges Bizet / Ferruccio Busoni',
  'Georges Bizet / Moritz Moszkowski',
  'Georges Bizet / Vladimir Horowitz',
  'Giuseppe Verdi / Franz Liszt',
  'Henry Purcell',
  'Isaac Albéniz',
  'Isaac Albéniz / Leopold Godowsky',
  'Jean-Philippe Rameau',
  'Johann Christian Fischer / Wolfgang Amadeus Mozart',
  'Johann Pachelbel',
  'Johann Sebastian Bach',
  'Johann Sebastian Bach / Egon Petri',
  'Johann Sebastian Bach / Ferruccio Busoni',
  'Johann Sebastian Bach / Franz Liszt',
  'Johann Sebastian Bach / Myra Hess',
  'Johann Strauss / Alfred Grünfeld',
  'Johannes Brahms',
  'Joseph Haydn',
  'Leoš Janáček',
  'Ludwig van Beethoven',
  'Mikhail Glinka / Mily Balakirev',
  'Mily Balakirev',
  'Modest Mussorgsky',
  'Muzio Clementi',
  'Niccolò Paganini / Franz Liszt',
  'Nikolai Medtner',
  'Nikolai Rimsky-Korsakov / Sergei Rachmaninoff',
  'Orlando Gibbons',
  'Percy Grainger',
  'Pyotr Ilyich Tchaikovsky',
  'Pyotr Ilyich Tchaikovsky / Mikhail Pletnev',
  'Pyotr Ilyich Tchaikovsky / Sergei Rachmaninoff',
  'Richard Wagner / Franz Liszt',
  'Robert Schumann',
  'Robert Schumann / Franz Liszt',
  'Sergei Rachmaninoff',
  'Sergei Rachmaninoff / György Cziffra',
  'Sergei Rachmaninoff / Vyacheslav Gryaznov',
  'Wolfgang Amadeus Mozart',
]
MUSICNET = [
  'Bach',
  'Beethoven',
  'Brahms',
  'Cambini',
  'Dvorak',
  'Faure',
  'Haydn',
  'Mozart',
  'Ravel',
  'Schubert',
]
MUSIC21 = [
  'bach',
  'beach',
  'beethoven',
  'chopin',
  'ciconia',
  'corelli',
  'cpebach',
  'handel',
  'haydn',
  'johnson_j_r',
  'joplin',
  'josquin',
  'liliuokalani',
  'lusitano',
  'monteverdi',
  'mozart',
  'palestrina',
  'schoenberg',
  'schubert',
  'schumann_clara',
  'schumann_robert',
  'verdi',
  'weber',
  'webern',
]


@pytest.fixture(scope='module')
def tables():
  return eras.load_tables()


@pytest.mark.parametrize(
  'names', [MAESTRO_V3, MUSICNET, MUSIC21], ids=['maestro', 'musicnet', 'music21']
)
def test_every_known_composer_maps(tables, names):
  unmapped = [n for n in names if tables.composer_era(n) is None]
  assert unmapped == []


@pytest.mark.parametrize(
  'name,era',
  [
    ('Frédéric Chopin', 'romanticism'),
    ('frederic_chopin', 'romanticism'),
    ('Franz Schubert / Franz Liszt', 'romanticism'),  # the composer, not the arranger, decides
    ('Johann Sebastian Bach / Ferruccio Busoni', 'baroque'),
    ('Claude Debussy', 'impressionism'),
    ('Ravel', 'impressionism'),
    ('Berg', 'expressionism'),
    ('webern', 'expressionism'),
    ('cpebach', 'classicism'),
    ('Bach', 'baroque'),
    ('Nobody Atall', None),
  ],
)
def test_composer_lookup(tables, name, era):
  assert tables.composer_era(name) == era


def test_artgan_styles_and_thesis_eras(tables):
  assert len(tables.artgan_styles) == 27
  assert [tables.artgan_styles[i] for i in (4, 9, 12, 22, 23)] == [
    'Baroque',
    'Expressionism',
    'Impressionism',
    'Rococo',
    'Romanticism',
  ]
  assert [tables.style_era(tables.artgan_styles[i]) for i in (4, 9, 12, 22, 23)] == [
    'baroque',
    'expressionism',
    'impressionism',
    'classicism',
    'romanticism',
  ]
  assert {tables.style_era(tables.artgan_styles[i]) for i in (8, 11, 13, 17)} == {'renaissance'}
  assert tables.style_era('Ukiyo_e') is None  # no Western musical era: reported as unmapped
  assert tables.resolve_era_set('thesis') == (
    'baroque',
    'classicism',
    'romanticism',
    'impressionism',
    'expressionism',
  )


def test_label_era_accepts_era_style_composer_or_collection(tables):
  assert tables.label_era('Baroque') == 'baroque'
  assert tables.label_era('Post_Impressionism') == 'impressionism'
  assert tables.label_era('Arnold Schoenberg') == 'expressionism'
  assert tables.label_era('essenFolksong') == 'folk'
  assert tables.label_era('jazz') is None


def test_override_file_merges_and_removes(tmp_path, tables):
  path = tmp_path / 'mine.json'
  path.write_text(
    json.dumps(
      {
        'composer_to_era': {'Claude Debussy': 'romanticism', 'Ludwig van Beethoven': None},
        'style_to_era': {'Ukiyo_e': 'impressionism'},
        'era_sets': {'mine': ['baroque', 'romanticism']},
      }
    )
  )
  mine = eras.load_tables(path)
  assert mine.composer_era('Claude Debussy') == 'romanticism'
  assert mine.composer_era('Beethoven') is None
  assert mine.style_era('Ukiyo_e') == 'impressionism'
  assert mine.resolve_era_set('mine') == ('baroque', 'romanticism')
  assert mine.composer_era('Mozart') == tables.composer_era('Mozart') == 'classicism'


@pytest.mark.parametrize(
  'override,match',
  [
    ({'composer_to_era': {'X': 'grunge'}}, 'not one of the eras'),
    ({'colour_to_era': {}}, 'unknown keys'),
    ({'era_sets': {'s': ['nope']}}, 'unknown eras'),
  ],
)
def test_bad_overrides(override, match):
  with pytest.raises(ValueError, match=match):
    eras.load_tables(override)


def test_bad_era_set(tables):
  assert tables.resolve_era_set('baroque, romanticism') == ('baroque', 'romanticism')
  with pytest.raises(ValueError, match='unknown era set'):
    tables.resolve_era_set('baroque,grunge')


def test_partition_lists_unmapped_and_outside(tables):
  items = ['Baroque', 'Ukiyo_e', 'Cubism', 'Romanticism', 'Ukiyo_e']
  kept, unmapped, outside = eras.partition_by_era(
    items, tables.style_era, lambda s: s, tables.resolve_era_set('thesis')
  )
  assert kept == [('Baroque', 'baroque'), ('Romanticism', 'romanticism')]
  assert unmapped == {'Ukiyo_e': 2}
  assert outside == {'modernism': 1}
