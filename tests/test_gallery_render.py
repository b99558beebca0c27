"""The gallery in headless Chromium: it renders, and every audio player loads a valid WAV."""

import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image

from pix2pitch_jax.generation import gallery
from pix2pitch_jax.generation import job as generation_job

pytestmark = pytest.mark.skipif(
  not any(shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome')),
  reason='needs Chromium (make setup installs it)',
)


@pytest.fixture
def generated_gallery(stub_workdir, tmp_path):
  """A split gallery (generated + reference audio) written by generation_job.generate."""
  result = generation_job.generate(
    stub_workdir, tmp_path / 'gallery', split='test', max_examples=2, griffin_lim_iters=2
  )
  return pathlib.Path(result['index_html'])


def test_gallery_renders_with_working_audio(generated_gallery, tmp_path):
  players = gallery.probe_audio_elements(generated_gallery)
  assert len(players) == 4  # 2 generated + 2 references
  for player in players:
    wav = generated_gallery.parent / player['src']
    info = soundfile.info(wav)
    assert info.format == 'WAV' and info.samplerate == 22_050 and info.frames == 44_100
    assert player['state'] == 'ready' and player['duration'] == pytest.approx(2.0, abs=0.01)

  png = tmp_path / 'shot.png'
  out = subprocess.run(
    [
      sys.executable,
      'scripts/screenshot_gallery.py',
      f'--index={generated_gallery}',
      f'--out={png}',
      '--width=900',
      '--height=700',
    ],
    capture_output=True,
    text=True,
    timeout=180,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert '4/4 audio players loaded' in out.stdout
  with Image.open(png) as shot:
    assert shot.size == (900, 700)
    pixels = np.asarray(shot.convert('RGB'))
  assert pixels.std() > 10  # something was drawn, not a blank page


def test_a_broken_audio_file_is_reported(tmp_path):
  soundfile.write(tmp_path / 'good.wav', np.zeros(2205, np.float32), 22_050)
  (tmp_path / 'bad.wav').write_bytes(b'RIFF....not audio')
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'p.png')
  entries = [
    gallery.GalleryEntry('good', 'p.png', 'p.png', 'good.wav'),
    gallery.GalleryEntry('bad <name>', 'p.png', 'p.png', 'bad.wav'),
  ]
  page = gallery.write_gallery(tmp_path, entries, title='t')
  assert 'bad &lt;name&gt;' in page.read_text()
  states = {p['src']: p['state'] for p in gallery.probe_audio_elements(page)}
  assert states == {'good.wav': 'ready', 'bad.wav': 'error'}


@pytest.mark.skipif(shutil.which('fluidsynth') is None, reason='needs fluidsynth')
def test_a_gallery_with_every_vocoder_loads_every_player(stub_workdir, monkeypatch, tmp_path):
  from pix2pitch_jax import vocoders
  from pix2pitch_jax.audio import soundfont

  class HalfVolumeGriffinLim(vocoders.GriffinLim):
    """Stands in for a trained neural vocoder: the page and files do not depend on which."""

    @property
    def about(self):
      return {'method': 'stand-in', 'checkpoint': 'none'}

    def render(self, mels, indices):
      return vocoders.Rendering(0.5 * super().render(mels, indices).clips)

  monkeypatch.setitem(vocoders._REGISTRY, 'neural', HalfVolumeGriffinLim)
  result = generation_job.generate(
    stub_workdir,
    tmp_path / 'gallery',
    split='test',
    max_examples=2,
    griffin_lim_iters=2,
    vocoder_names=('griffin_lim', 'neural', 'midi'),
  )
  page = pathlib.Path(result['index_html'])
  players = gallery.probe_audio_elements(page)
  assert len(players) == 2 * 4  # per painting: three renderings and the reference
  assert sorted(p['src'] for p in players if '_reference' not in p['src']) == sorted(
    f'{stem}{suffix}.wav' for stem in ('te0', 'te1') for suffix in ('', '_neural', '_midi')
  )
  for player in players:
    assert player['state'] == 'ready' and player['duration'] == pytest.approx(2.0, abs=0.01)
  html_text = page.read_text()
  assert html_text.count('download .mid') == 2
  assert f'midi ({soundfont.find_soundfont().name})' in html_text  # which soundfont played it
  for stem in ('te0', 'te1'):
    assert (tmp_path / 'gallery' / f'{stem}.mid').read_bytes()[:4] == b'MThd'


def test_both_directions_render_with_every_player_loaded(
  stub_compare_workdirs, stub_cyclegan_workdir, tmp_path
):
  from pix2pitch_jax.generation import sound_gallery

  pix2pix_run, cyclegan_run = stub_compare_workdirs
  paintings = generation_job.generate(
    pix2pix_run,
    tmp_path / 'paintings',
    split='test',
    max_examples=2,
    griffin_lim_iters=2,
    compare_workdir=cyclegan_run,
  )
  clips = sound_gallery.draw(
    stub_cyclegan_workdir, tmp_path / 'clips', split='test', max_examples=2, griffin_lim_iters=2
  )
  expected = {
    paintings['index_html']: sorted(
      f'{stem}{suffix}.wav' for stem in ('te0', 'te1') for suffix in ('', '_compare', '_reference')
    ),
    clips['index_html']: ['te0.wav', 'te1.wav'],
  }
  for page, sources in expected.items():
    players = gallery.probe_audio_elements(page)
    assert sorted(p['src'] for p in players) == sources
    for player in players:
      assert player['state'] == 'ready' and player['duration'] == pytest.approx(2.0, abs=0.01)
