r"""Turn music into moving pictures with a trained CycleGAN (sound -> picture).

    pix2pitch-visualise --workdir=runs/squiggles/train --audio=song.mp3 --out=visuals/ \
        [--fps=30] [--smooth=0.1]

(`python -m pix2pitch_jax.visualise` is the same.) Writes <out>/<name>.mp4, the pictures the
generator draws for the last clip of sound before each frame, with the song's audio, and
<out>/index.html, a page that plays it. Any audio file librosa reads (WAV, FLAC, OGG, MP3, ...);
anything else is refused in one line.
"""

import json

from absl import flags, logging

from pix2pitch_jax.core import cli

_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Workdir of a cyclegan training run (config.json, checkpoints/).', required=True
)
_AUDIO = flags.DEFINE_string('audio', None, 'The audio file to visualise.', required=True)
_OUT = flags.DEFINE_string('out', None, 'Output folder (the video and index.html).', required=True)
_FPS = flags.DEFINE_float('fps', 30.0, 'Video frames per second.')
_SMOOTH = flags.DEFINE_float(
  'smooth', 0.1, 'Time constant (s) of the moving average between frames; 0: none.'
)
_SIZE = flags.DEFINE_integer('video_size', 256, 'Video side in pixels (pictures scaled up).')
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest' or a step number.")
_WEIGHTS = flags.DEFINE_enum(
  'weights',
  'ema',
  ['ema', 'raw'],
  "The generator's moving-average weights (when training kept them; else its weights) or raw.",
)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 16, 'Pictures per generator call.')


def main() -> None:
  from pix2pitch_jax.generation import visualiser  # JAX only after flag parsing

  result = visualiser.visualise(
    _WORKDIR.value,
    _AUDIO.value,
    _OUT.value,
    fps=_FPS.value,
    smooth_s=_SMOOTH.value,
    video_size=_SIZE.value,
    checkpoint=cli.parse_checkpoint(_CHECKPOINT.value),
    weights=_WEIGHTS.value,
    batch_size=_BATCH_SIZE.value,
  )
  logging.info('visualise: %s', json.dumps(result.to_dict(), default=str))
  print(f'video: {result.video}\npage:  {result.index_html}')


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
