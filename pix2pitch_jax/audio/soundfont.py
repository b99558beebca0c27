"""General MIDI soundfonts and the FluidSynth command line: MIDI -> audio, offline, without JAX.

Shared by the dataset builder (data_prep renders MIDI recordings) and generation's MIDI route, so
both pick the same soundfont the same way. The best one installed wins (`find_soundfont`):

    $PIX2PITCH_SOUNDFONT                          the user's choice, when set (a .sf2 or .sf3 file)
    /usr/share/sounds/sf2/FluidR3_GM.sf2          Debian's fluid-soundfont-gm (142 MB, full GM set)
    /usr/share/sounds/sf3/MuseScore_General.sf3   musescore-general-soundfont-small (39 MB)
    <pretty_midi>/TimGM6mb.sf2                    the 6 MB one inside the pretty_midi wheel

The command-line synthesiser is used rather than a Python binding: it is a Debian package
(`fluidsynth`), renders much faster than real time, and needs no audio loop in Python.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

FLUIDSYNTH = 'fluidsynth'
SOUNDFONT_ENV = 'PIX2PITCH_SOUNDFONT'
# Best first: a full General MIDI set in 16-bit samples, then MuseScore's compressed one.
SYSTEM_SOUNDFONTS = (
  '/usr/share/sounds/sf2/FluidR3_GM.sf2',
  '/usr/share/sounds/sf3/MuseScore_General.sf3',
  '/usr/share/sounds/sf2/MuseScore_General.sf2',
)
_GAIN = 0.6  # FluidSynth's default 0.2 is very quiet; clips are peak-normalised later anyway.
_TIMEOUT_S = 600


class MidiRenderError(RuntimeError):
  """A MIDI file could not be rendered (no FluidSynth, no soundfont, or FluidSynth failed)."""


@dataclasses.dataclass(frozen=True)
class Soundfont:
  """A soundfont file and where it came from ('environment', 'system' or 'pretty_midi')."""

  path: str
  origin: str

  @property
  def name(self) -> str:
    """The file name, e.g. 'FluidR3_GM.sf2': what manifests and fingerprints record."""
    return pathlib.Path(self.path).name


def pretty_midi_soundfont() -> str:
  """The small General MIDI soundfont inside the pretty_midi package."""
  import pretty_midi

  return str(pathlib.Path(pretty_midi.__file__).with_name('TimGM6mb.sf2'))


def find_soundfont() -> Soundfont:
  """The best General MIDI soundfont installed (the order in the module docstring)."""
  chosen = os.environ.get(SOUNDFONT_ENV)
  if chosen:
    if not os.path.isfile(chosen):
      raise MidiRenderError(f'{SOUNDFONT_ENV}={chosen} is not a file')
    return Soundfont(chosen, 'environment')
  for path in SYSTEM_SOUNDFONTS:
    if os.path.isfile(path):
      return Soundfont(path, 'system')
  bundled = pretty_midi_soundfont()
  if not os.path.isfile(bundled):
    raise MidiRenderError(f'no General MIDI soundfont found (not even {bundled})')
  return Soundfont(bundled, 'pretty_midi')


def render_midi_file(
  midi_path: str | os.PathLike,
  wav_path: str | os.PathLike,
  sample_rate: int,
  soundfont: Soundfont | None = None,
) -> pathlib.Path:
  """Render a MIDI file to a 16-bit WAV at `sample_rate` with FluidSynth, written atomically."""
  if shutil.which(FLUIDSYNTH) is None:
    raise MidiRenderError('the fluidsynth command is not installed (apt-get install fluidsynth)')
  soundfont = soundfont or find_soundfont()
  wav_path = pathlib.Path(wav_path)
  wav_path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix='p2p-fluidsynth-') as tmp:
    rendered = pathlib.Path(tmp) / 'out.wav'
    cmd = [FLUIDSYNTH, '-ni', '-q', '-g', str(_GAIN), '-r', str(int(sample_rate))]
    cmd += ['-F', str(rendered), soundfont.path, os.fspath(midi_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if result.returncode != 0 or not rendered.is_file() or rendered.stat().st_size <= 44:
      raise MidiRenderError(
        f'fluidsynth failed on {midi_path}: '
        f'{(result.stderr or result.stdout).strip()[-300:] or "no audio"}'
      )
    os.replace(rendered, wav_path)
  return wav_path


def render_midi_bytes(
  midi: bytes, sample_rate: int, num_samples: int, soundfont: Soundfont | None = None
) -> np.ndarray:
  """A MIDI file's bytes -> mono float32 audio of exactly `num_samples` (cut or padded)."""
  import soundfile

  with tempfile.TemporaryDirectory(prefix='p2p-midi-') as tmp:
    midi_path = pathlib.Path(tmp) / 'in.mid'
    midi_path.write_bytes(midi)
    wav_path = render_midi_file(midi_path, pathlib.Path(tmp) / 'out.wav', sample_rate, soundfont)
    audio, _ = soundfile.read(wav_path, dtype='float32', always_2d=True)
  mono = audio.mean(axis=1)[:num_samples]
  return np.pad(mono, (0, num_samples - len(mono)))
