"""The vocoders of generation (`--vocoder`): Griffin-Lim, the MIDI route, the neural slot; the
soundfont choice shared with data_prep."""

import io
import json
import pathlib
import shutil

import numpy as np
import pretty_midi
import pytest
import soundfile
from PIL import Image

from pix2pitch_jax import vocoders
from pix2pitch_jax.audio import mel_to_midi, soundfont, spectrogram, transcription
from pix2pitch_jax.core import cli
from pix2pitch_jax.generation import job as generation_job

needs_fluidsynth = pytest.mark.skipif(
  shutil.which('fluidsynth') is None, reason='needs fluidsynth (make setup installs it)'
)
PARAMS = spectrogram.MelParams(image_size=128, clip_seconds=4.0, n_fft=2048)
# (onset s, duration s, MIDI pitch): a broken C major chord and a melody, C4..C6.
SCORE = [(0.25, 0.6, 60), (0.75, 0.6, 64), (1.25, 0.6, 67), (1.75, 0.5, 72), (2.5, 0.8, 76)]


def _tones(notes, params):
  """Decaying harmonic tones (like a plucked string) at the given onsets and pitches."""
  sr = params.sample_rate
  y = np.zeros(params.clip_samples)
  for onset, duration, midi in notes:
    start, n = int(onset * sr), int(duration * sr)
    t = np.arange(n) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    tone = sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in ((1, 1.0), (2, 0.4), (3, 0.2)))
    envelope = np.exp(-t / 0.8) * np.minimum(1, t / 0.01) * np.minimum(1, (n / sr - t) / 0.04)
    y[start : start + n] += 0.2 * envelope * tone
  return y.astype(np.float32)


def _midi_notes(data: bytes):
  midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
  return sorted((n.start, n.pitch, n.velocity) for part in midi.instruments for n in part.notes)


def test_the_route_writes_the_notes_of_the_mel_as_midi():
  image = spectrogram.audio_to_mel_image(_tones(SCORE, PARAMS), PARAMS)
  notes = transcription.transcribe_mel_image(image, PARAMS, mel_to_midi.route_config(PARAMS))
  written = _midi_notes(mel_to_midi.midi_file_bytes(mel_to_midi.notes_to_midi(notes)))
  assert [pitch for _, pitch, _ in written] == [pitch for _, _, pitch in SCORE]
  np.testing.assert_allclose([s for s, _, _ in written], [o for o, _, _ in SCORE], atol=0.05)
  assert all(20 <= v <= 127 for _, _, v in written)
  # The piano's range, cut to what the mel resolves: low bands are too wide to place a note.
  config = mel_to_midi.route_config(PARAMS)
  assert 21 <= config.min_midi < 48 and config.max_midi == 108


def test_the_best_soundfont_wins_and_the_user_can_choose(monkeypatch, tmp_path):
  monkeypatch.delenv(soundfont.SOUNDFONT_ENV, raising=False)
  monkeypatch.setattr(soundfont, 'SYSTEM_SOUNDFONTS', (str(tmp_path / 'missing.sf2'),))
  bundled = soundfont.find_soundfont()
  assert bundled.origin == 'pretty_midi' and bundled.name == 'TimGM6mb.sf2'
  mine = tmp_path / 'Mine.sf2'
  mine.write_bytes(b'')
  monkeypatch.setattr(soundfont, 'SYSTEM_SOUNDFONTS', (str(mine),))
  assert soundfont.find_soundfont() == soundfont.Soundfont(str(mine), 'system')
  monkeypatch.setenv(soundfont.SOUNDFONT_ENV, str(tmp_path / 'nope.sf2'))
  with pytest.raises(soundfont.MidiRenderError, match='is not a file'):
    soundfont.find_soundfont()


@needs_fluidsynth
def test_the_route_renders_the_midi_with_fluidsynth():
  image = spectrogram.audio_to_mel_image(_tones(SCORE, PARAMS), PARAMS)
  clip = mel_to_midi.mel_to_midi_clip(image, PARAMS, soundfont.find_soundfont())
  assert clip.num_notes == len(SCORE) and clip.audio.shape == (PARAMS.clip_samples,)
  # The piano is heard where the notes are: its mel has energy at the first note's pitch.
  rendered = spectrogram.audio_to_mel_image(clip.audio, PARAMS)
  assert np.abs(clip.audio).max() > 0.01 and rendered.max() > 0.0
  silent = mel_to_midi.mel_to_midi_clip(-np.ones((128, 128), np.float32), PARAMS, None)
  assert silent.num_notes == 0 and not silent.audio.any() and _midi_notes(silent.midi) == []


def _stroke_images(root: pathlib.Path) -> pathlib.Path:
  """32x32 images the test generator turns into mels with one loud band per stroke: row r, from
  column c0, is a note in band 31 - r (here 500-1250 Hz) starting at frame c0."""
  root.mkdir()
  strokes_of = {
    'two': [(26, 3, 12), (22, 16, 26)],
    'three': [(27, 2, 8), (24, 10, 14), (20, 20, 30)],
  }
  for name, strokes in strokes_of.items():
    painting = np.zeros((32, 32, 3), np.uint8)
    for row, c0, c1 in strokes:
      painting[row, c0:c1] = 255
    Image.fromarray(painting).save(root / f'{name}.png')
  return root


@needs_fluidsynth
def test_generate_with_each_vocoder(stub_workdir, tiny_dataset, tmp_path):
  from conftest import TinyRuleGenerator

  images = _stroke_images(tmp_path / 'images')
  out = tmp_path / 'out'
  result = generation_job.generate(
    stub_workdir, out, images_dir=images, griffin_lim_iters=4, vocoder_names=('midi', 'griffin_lim')
  )
  assert result['count'] == 2
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['vocoders']['midi']['soundfont'] == soundfont.find_soundfont().name
  assert manifest['vocoders']['griffin_lim']['iterations'] == 4
  generator = TinyRuleGenerator(tiny_dataset)  # the stub's generator
  params = generator.meta.mel_params
  for entry in manifest['entries']:
    assert [r['vocoder'] for r in entry['renderings']] == ['midi', 'griffin_lim']
    assert entry['audio'] == f'{entry["title"]}_midi.wav'  # the first vocoder is the main player
    for rendering in entry['renderings']:
      clip, sample_rate = soundfile.read(out / rendering['audio'])
      assert sample_rate == 22_050 and clip.shape == (44_100,) and np.abs(clip).max() > 0.01
    # The .mid holds exactly the notes the route reads off the generated mel.
    painting = np.asarray(Image.open(images / f'{entry["title"]}.png'))
    mel = generator.generate(painting[None])[0]
    expected = transcription.transcribe_mel_image(mel, params, mel_to_midi.route_config(params))
    written = _midi_notes((out / f'{entry["title"]}.mid').read_bytes())
    assert len(written) == len(expected) == {'two': 2, 'three': 3}[entry['title']]
    np.testing.assert_array_equal(
      [p for _, p, _ in written], np.round(transcription.hz_to_midi(expected.pitches_hz))
    )
    np.testing.assert_allclose([s for s, _, _ in written], expected.onsets, atol=1e-3)
  assert 'download .mid' in (out / 'index.html').read_text()


def test_vocoder_errors_are_one_line_and_come_first(stub_workdir, tmp_path):
  out = tmp_path / 'out'
  with pytest.raises(vocoders.VocoderUnavailable, match='^no trained vocoder: '):
    generation_job.generate(stub_workdir, out, split='test', vocoder_names=['neural'])
  with pytest.raises(vocoders.VocoderUnavailable, match="unknown vocoder 'hifigan'"):
    generation_job.generate(stub_workdir, out, split='test', vocoder_names=['hifigan'])
  with pytest.raises(vocoders.VocoderUnavailable, match='listed twice'):
    generation_job.generate(stub_workdir, out, split='test', vocoder_names=['midi', 'midi'])
  assert not out.exists()  # nothing generated before the check
  assert issubclass(vocoders.VocoderUnavailable, cli.UserInputError)  # `error: ...`, exit 1
  assert vocoders.names() == ('griffin_lim', 'midi', 'neural')
