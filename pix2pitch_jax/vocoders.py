"""The ways a generated mel image becomes sound, by name: `--vocoder=...` of pix2pitch-generate
(the clips it writes) and of pix2pitch-evaluate (the audio metrics of each vocoder).

    griffin_lim  the thesis' method: NNLS mel -> linear magnitude, fast Griffin-Lim phase (JAX)
    midi         the MIDI route: notes read off the mel -> a .mid file -> FluidSynth with the best
                 General MIDI soundfont installed (pix2pitch_jax/audio/mel_to_midi.py)
    neural       a vocoder trained on the dataset's own music (inference_vocoder.py)

A vocoder is built once per job by its factory, `factory(context) -> Vocoder`: the factory finds
what it needs (a trained model in the workdir, FluidSynth and a soundfont) and raises
`VocoderUnavailable` with one line saying what is missing, before anything is generated. The
built vocoder says what it is in `about` (soundfont, iterations, checkpoint), which generation's
manifest and the evaluation report record, and turns a batch of mel images into clips with
`render`. Adding one is `register(name, factory)`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from pix2pitch_jax import inference, inference_vocoder
from pix2pitch_jax.audio import mel_to_midi, soundfont
from pix2pitch_jax.core import cli
from pix2pitch_jax.data import records

DEFAULT = 'griffin_lim'


class VocoderUnavailable(cli.UserInputError):
  """A vocoder that was asked for cannot run here; the message says what is missing."""


@dataclasses.dataclass(frozen=True)
class VocoderContext:
  """What every vocoder of a job is built from: the dataset's audio parameters and the job's
  settings (a vocoder ignores what it does not use)."""

  workdir: str
  meta: records.DatasetMeta  # mel_params: the exact transform the mels came from
  seed: int = 0
  griffin_lim_iters: int = 64
  batch_size: int = inference.DEFAULT_BATCH_SIZE
  mesh: Any = None
  # The neural vocoder's training workdir; None: `<workdir>/vocoder` (inference_vocoder).
  vocoder_workdir: str | None = None

  @classmethod
  def for_generator(
    cls,
    generator: inference.LoadedGenerator,
    *,
    workdir: str | os.PathLike,
    seed: int,
    griffin_lim_iters: int,
    batch_size: int,
    vocoder_workdir: str | os.PathLike | None,
  ) -> VocoderContext:
    """The context of a job that vocodes what `generator` (restored from `workdir`) makes."""
    return cls(
      workdir=os.fspath(workdir),
      meta=generator.meta,
      seed=seed,
      griffin_lim_iters=griffin_lim_iters,
      batch_size=batch_size,
      mesh=generator.mesh,
      vocoder_workdir=None if vocoder_workdir is None else os.fspath(vocoder_workdir),
    )


@dataclasses.dataclass(frozen=True)
class Rendering:
  """A batch of mels as sound: clips (N, clip_samples) at the dataset's sample rate, and for the
  MIDI route the .mid file of each clip."""

  clips: np.ndarray
  midi: Sequence[bytes] | None = None


class Vocoder(Protocol):
  @property
  def about(self) -> dict[str, Any]:
    """What makes the audio (method, soundfont, checkpoint...), for the manifest (JSON-safe)."""
    ...

  def render(self, mels: np.ndarray, indices: np.ndarray) -> Rendering:
    """Mel images (N, S, S) in [-1, 1] -> sound; `indices`: their positions in the whole job,
    so that a clip does not depend on the batch or host it was made in."""
    ...


VocoderFactory = Callable[[VocoderContext], Vocoder]
_REGISTRY: dict[str, VocoderFactory] = {}


def register(name: str, factory: VocoderFactory) -> None:
  """Make `name` available to `build` (and `--vocoder=name`); a second registration replaces."""
  _REGISTRY[name] = factory


def names() -> tuple[str, ...]:
  return tuple(_REGISTRY)


def build(name: str, context: VocoderContext) -> Vocoder:
  """The vocoder called `name`, ready to render; VocoderUnavailable when it cannot run here."""
  if name not in _REGISTRY:
    raise VocoderUnavailable(f'unknown vocoder {name!r}; choose from {", ".join(_REGISTRY)}')
  return _REGISTRY[name](context)


def check_names(requested: Sequence[str]) -> tuple[str, ...]:
  """`requested` as a tuple, or one line saying what is wrong with it."""
  requested = tuple(requested)
  if not requested:
    raise VocoderUnavailable(f'give at least one vocoder, from {", ".join(_REGISTRY)}')
  unknown = [n for n in requested if n not in _REGISTRY]
  if unknown:
    raise VocoderUnavailable(f'unknown vocoder {unknown[0]!r}; choose from {", ".join(_REGISTRY)}')
  if len(set(requested)) != len(requested):
    raise VocoderUnavailable(f'a vocoder is listed twice: {",".join(requested)}')
  return requested


def audio_file_name(stem: str, vocoder: str) -> str:
  """`<stem>.wav` for Griffin-Lim (the name generation has always used), `<stem>_<vocoder>.wav`
  for the others."""
  return f'{stem}.wav' if vocoder == DEFAULT else f'{stem}_{vocoder}.wav'


# ------------------------------------------------------------------------------------------------
# The vocoders.
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GriffinLim:
  context: VocoderContext

  @property
  def about(self) -> dict[str, Any]:
    method = 'Griffin-Lim (fast, momentum 0.99)'
    return {'method': method, 'iterations': self.context.griffin_lim_iters}

  def render(self, mels: np.ndarray, indices: np.ndarray) -> Rendering:
    c = self.context
    clips = inference.mels_to_audio(
      mels,
      c.meta.mel_params,
      n_iter=c.griffin_lim_iters,
      seed=c.seed,
      batch_size=c.batch_size,
      mesh=c.mesh,
      indices=indices,
      progress=None,
    )
    return Rendering(np.asarray(clips, np.float32))


@dataclasses.dataclass
class MidiRoute:
  context: VocoderContext
  font: soundfont.Soundfont
  program: int = mel_to_midi.PIANO

  @property
  def about(self) -> dict[str, Any]:
    return {
      'method': 'notes transcribed from the mel -> MIDI -> FluidSynth',
      'soundfont': self.font.name,
      'soundfont_path': self.font.path,
      'soundfont_origin': self.font.origin,
      'program': self.program,
      'transcription': dataclasses.asdict(mel_to_midi.route_config(self.context.meta.mel_params)),
    }

  def render(self, mels: np.ndarray, indices: np.ndarray) -> Rendering:
    del indices  # deterministic: no random phase
    params = self.context.meta.mel_params
    routed = [mel_to_midi.mel_to_midi_clip(m, params, self.font, self.program) for m in mels]
    return Rendering(np.stack([r.audio for r in routed]), [r.midi for r in routed])


def _griffin_lim(context: VocoderContext) -> Vocoder:
  return GriffinLim(context)


def _midi(context: VocoderContext) -> Vocoder:
  """The MIDI route needs no training: FluidSynth and a soundfont."""
  if shutil.which(soundfont.FLUIDSYNTH) is None:
    raise VocoderUnavailable(
      'the midi vocoder needs the fluidsynth command (apt-get install fluidsynth, or make setup)'
    )
  try:
    font = soundfont.find_soundfont()
  except soundfont.MidiRenderError as e:
    raise VocoderUnavailable(f'the midi vocoder has no soundfont: {e}') from e
  return MidiRoute(context, font)


@dataclasses.dataclass
class NeuralVocoder:
  context: VocoderContext
  loaded: inference_vocoder.LoadedVocoder

  @property
  def about(self) -> dict[str, Any]:
    return {
      'method': 'neural vocoder (Vocos-style, trained on the dataset)',
      **self.loaded.describe(),
    }

  def render(self, mels: np.ndarray, indices: np.ndarray) -> Rendering:
    del indices  # deterministic: the clip depends on its mel alone
    clips = self.loaded.mels_to_audio(mels, batch_size=self.context.batch_size)
    return Rendering(clips)


def _neural(context: VocoderContext) -> Vocoder:
  """A vocoder trained with `family='vocoder'`: `context.vocoder_workdir`, else
  `<workdir>/vocoder`; it must have been trained on mels made like this dataset's."""
  found = inference_vocoder.find_vocoder_workdir(context.workdir, context.vocoder_workdir)
  if found is None:
    raise VocoderUnavailable(
      f'no trained vocoder: none in {context.workdir}/{inference_vocoder.DEFAULT_SUBDIR}'
      '; give --vocoder_workdir=<a vocoder training workdir> or use --vocoder=griffin_lim'
    )
  loaded = inference_vocoder.load_vocoder(found)
  try:
    loaded.check_compatible(context.meta.mel_params)
  except ValueError as e:
    raise VocoderUnavailable(str(e)) from e
  return NeuralVocoder(context, loaded)


register('griffin_lim', _griffin_lim)
register('midi', _midi)
register('neural', _neural)
