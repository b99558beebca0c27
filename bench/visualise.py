"""Benchmark: the visualiser's frames per second, and its latency from an audio chunk to its frame.

The sound -> picture generator at the demo's size (experiments/cyclegan_demo.py: ResNet-6-block, ngf
8, three halvings, 3x3 edges) at `--size` pixels, untrained (speed does not depend on the weights),
on 1 s mel windows at 22 050 Hz (the squiggles corpus' clip). Batch mode: mel windows of a synthetic
song, pictures in batches of `--batch`, frame smoothing (not the video encoding, which ffmpeg does
on its own thread): frames per second after compilation. Streaming mode: the song fed in chunks of
1/fps s (`StreamingVisualiser`, as from a live input), each chunk's STFT window and one generator
call: the median latency from a chunk's arrival to its frame.

    python bench/visualise.py [--size=128] [--frames=300] [--batch=16]

Last line: `visualise_bench size=<S> fps=<x> latency_ms=<y>`.
"""

import os
import sys
import time

# Runnable as a plain script from the repository root (make bench).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax
import numpy as np
from absl import app, flags
from flax import nnx

from pix2pitch_jax import inference
from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.core import configs
from pix2pitch_jax.data import records
from pix2pitch_jax.generation import visualiser
from pix2pitch_jax.models import cyclegan, pix2pix
from pix2pitch_jax.runtime import sharding

_SIZE = flags.DEFINE_integer('size', 128, 'Picture and mel side.')
_FRAMES = flags.DEFINE_integer('frames', 300, 'Frames timed in batch mode.')
_BATCH = flags.DEFINE_integer('batch', 16, 'Pictures per generator call in batch mode.')
_FPS = flags.DEFINE_float('fps', 30.0, 'Frame rate (sets the streaming chunk length).')
_CHUNKS = flags.DEFINE_integer('chunks', 60, 'Chunks timed in streaming mode.')
REPO = os.path.join(os.path.dirname(__file__), '..')


def demo_translator(size: int) -> inference.LoadedTranslator:
  config = configs.load_config_file(os.path.join(REPO, 'experiments', 'cyclegan_demo.py'))
  config.image_size = size
  params = spectrogram.default_mel_params(size, 22_050)
  params = spectrogram.MelParams(
    sample_rate=params.sample_rate, image_size=size, clip_seconds=1.0, n_fft=params.n_fft
  )
  generator = cyclegan.make_generator(config, cyclegan.MEL_TO_PICTURE, nnx.Rngs(params=0))
  graphdef, variables = pix2pix.split_variables(generator)
  mesh = sharding.make_mesh(None, local=True)
  variables = jax.device_put(variables, sharding.replicated(mesh))
  return inference.LoadedTranslator(
    config=config,
    step=0,
    meta=records.DatasetMeta(params, ('squiggles',)),
    direction=cyclegan.MEL_TO_PICTURE,
    graphdef=graphdef,
    variables=variables,
    mesh=mesh,
    weights='raw',
  )


def gflop_per_frame(translator: inference.LoadedTranslator) -> float:
  """XLA's count of the generator's floating-point operations for one picture."""
  size = translator.image_size
  mels = jax.ShapeDtypeStruct((1, size, size, 1), np.float32)
  cost = translator._apply.lower(translator.variables, mels).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan'))) / 1e9


def song(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
  """Notes of changing pitch and loudness, four a second."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  f0 = 110.0 * 2 ** (rng.integers(0, 36, int(seconds * 4) + 1) / 12)[(t * 4).astype(int)]
  loud = rng.uniform(0.05, 0.8, int(seconds * 4) + 1)[(t * 4).astype(int)]
  return (loud * np.sin(2 * np.pi * np.cumsum(f0) / rate)).astype(np.float32)


def main(argv):
  del argv
  size, fps = _SIZE.value, _FPS.value
  translator = demo_translator(size)
  params = translator.meta.mel_params
  samples = song(_FRAMES.value / fps + 1.0, params.sample_rate)
  print(f'jax {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s)')
  print(f'generator: {gflop_per_frame(translator):.2f} GFLOP per {size}x{size} picture')

  def batch_mode(n_frames):
    start = time.perf_counter()
    times = visualiser.frame_times(n_frames / fps, fps)
    windows = visualiser.windows_at(visualiser.mel_columns(samples, params), times, params)
    pictures = translator.pictures(windows, batch_size=_BATCH.value)
    visualiser.smooth(pictures, visualiser.smoothing_weight(fps, 0.1))
    return time.perf_counter() - start

  start = time.perf_counter()
  batch_mode(_BATCH.value)  # compile
  print(f'batch mode: compile + first batch {time.perf_counter() - start:.1f} s')
  seconds = batch_mode(_FRAMES.value)
  frames_per_s = _FRAMES.value / seconds
  print(f'batch mode: {_FRAMES.value} frames of {size}x{size} in {seconds:.2f} s')

  streaming = visualiser.StreamingVisualiser(translator, fps=fps, smooth_s=0.1)
  chunk = int(round(params.sample_rate / fps))
  visualiser.stream_file(streaming, samples[: 3 * chunk], chunk)  # compile the batch-1 program
  latencies = visualiser.stream_file(streaming, samples[: _CHUNKS.value * chunk], chunk)
  latency_ms = 1000 * float(np.median(latencies))
  print(
    f'streaming: {len(latencies)} chunks of {1000 * chunk / params.sample_rate:.1f} ms; latency '
    f'median {latency_ms:.1f} ms, p90 {1000 * np.percentile(latencies, 90):.1f} ms'
  )
  print(f'visualise_bench size={size} fps={frames_per_s:.1f} latency_ms={latency_ms:.1f}')


if __name__ == '__main__':
  app.run(main)
