"""Music -> moving pictures: a CycleGAN's sound -> picture generator slid over an audio file.

    result = visualise('runs/squiggles/train', 'song.mp3', 'out/', fps=30, smooth_s=0.1)
    # out/song.mp4 (the pictures, with the song's audio), out/index.html (a page that plays it)

Each video frame at time t is the picture of the last `clip_seconds` of sound before t (a
causal window: what a live VJ set would see), taken from the log-mel of the whole file at the
dataset's own mel parameters (`audio/spectrogram.py`, from the run's dataset metadata); the start
is padded with silence. Windows go through the generator in batches. Consecutive frames are
blended by an exponential moving average with time constant `smooth_s`, which takes out the
flicker of a generator that sees each window anew. The video is H.264 (yuv420p) with the source
audio as AAC, written by the ffmpeg binary that imageio-ffmpeg ships, so it plays in sync in a
browser with nothing installed.

`StreamingVisualiser` is the live form: audio arrives in chunks (a file read piecewise, or PCM
from stdin) and each chunk's frame is ready as soon as it is computed; bench/visualise.py
measures that latency.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import pathlib
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from pix2pitch_jax import inference
from pix2pitch_jax.audio import numba_cache, spectrogram
from pix2pitch_jax.core import cli

DEFAULT_FPS = 30
DEFAULT_SMOOTH_S = 0.1
DEFAULT_VIDEO_SIZE = 256  # pixels per side of the video; the pictures are scaled up to it
AUDIO_BITRATE = '96k'  # within AAC's per-frame limit at 22 050 Hz mono (~132k)
FRAMES_PER_CHUNK = 256  # windows in memory at once (~17 MB at 128x128)


class NotAudioError(cli.UserInputError):
  """The input file could not be read as audio."""


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Mono float32 samples of any audio file librosa reads (WAV, FLAC, OGG, MP3, ...) at its own
  rate; NotAudioError (one line) for a missing or non-audio file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'audio file {str(path)!r} not found')
  librosa = numba_cache.import_librosa()
  try:
    with warnings.catch_warnings():  # librosa warns before falling back to audioread
      warnings.simplefilter('ignore')
      samples, rate = librosa.load(str(path), sr=None, mono=True)
  except Exception as e:  # soundfile and audioread raise many types for non-audio bytes
    reason = str(e).splitlines()[0] if str(e) else 'no audio decoder recognised it'
    raise NotAudioError(f'{path} is not a readable audio file ({reason})') from None
  if not len(samples):
    raise NotAudioError(f'{path} holds no audio samples')
  return np.asarray(samples, np.float32), int(rate)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
  if rate == target_rate:
    return samples
  librosa = numba_cache.import_librosa()
  return librosa.resample(samples, orig_sr=rate, target_sr=target_rate).astype(np.float32)


def mel_columns(samples: np.ndarray, params: spectrogram.MelParams) -> np.ndarray:
  """The mel image of a whole signal, (n_mels, frames) in [-1, 1], lowest band in the last row:
  the dataset's transform (same STFT, filters and dB range) without its fixed clip length."""
  librosa = numba_cache.import_librosa()
  stft = librosa.stft(samples, n_fft=params.n_fft, hop_length=params.hop_length, center=True)
  power = spectrogram.mel_filterbank(params) @ (np.abs(stft) ** 2)
  return spectrogram.db_to_image(spectrogram.power_mel_to_db(power, params), params)


def frame_times(duration_s: float, fps: float) -> np.ndarray:
  """Times (s) of the video frames: as many as make the video last as long as the audio."""
  return np.arange(max(1, round(duration_s * fps))) / fps


def windows_at(columns: np.ndarray, times: np.ndarray, params: spectrogram.MelParams) -> np.ndarray:
  """(N, n_mels, n_frames) mel windows, each ending at its time (causal), silence-padded."""
  width = params.n_frames
  padded = np.concatenate(
    [np.full((columns.shape[0], width - 1), -1.0, np.float32), columns], axis=1
  )
  ends = np.minimum(
    np.round(times * params.sample_rate / params.hop_length).astype(int), columns.shape[1] - 1
  )
  return np.stack([padded[:, e : e + width] for e in ends])


def smoothing_weight(fps: float, smooth_s: float) -> float:
  """Weight of the previous frame in the moving average: exp(-1 / (fps * smooth_s)), 0 = off."""
  return 0.0 if smooth_s <= 0 else math.exp(-1.0 / (fps * smooth_s))


def smooth(pictures: np.ndarray, weight: float, previous: np.ndarray | None = None) -> np.ndarray:
  """Exponential moving average along the frames of uint8 pictures (N,H,W,3)."""
  if weight <= 0:
    return pictures
  out = np.empty(pictures.shape, np.float32)
  state = pictures[0].astype(np.float32) if previous is None else previous.astype(np.float32)
  for i, picture in enumerate(pictures):
    state = weight * state + (1.0 - weight) * picture
    out[i] = state
  return np.round(out).astype(np.uint8)


def upscale(pictures: np.ndarray, size: int) -> np.ndarray:
  """Nearest-neighbour integer upscaling to about `size` (exact pixels, no blur, and cheap)."""
  factor = max(1, size // pictures.shape[1])
  if factor == 1:
    return pictures
  return pictures.repeat(factor, axis=1).repeat(factor, axis=2)


def safe_name(path: str | os.PathLike) -> str:
  """A file-name stem safe in a URL and a shell: song (1).mp3 -> song_1_."""
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', pathlib.Path(path).stem) or 'audio'


@dataclasses.dataclass
class VisualiseResult:
  video: pathlib.Path
  index_html: pathlib.Path
  frames: int
  fps: float
  audio_seconds: float
  seconds_per_stage: dict[str, float]

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.update(video=str(self.video), index_html=str(self.index_html))
    return d


def visualise(
  workdir: str | os.PathLike,
  audio_path: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  fps: float = DEFAULT_FPS,
  smooth_s: float = DEFAULT_SMOOTH_S,
  video_size: int = DEFAULT_VIDEO_SIZE,
  checkpoint: str | int = 'latest',
  weights: str = 'ema',
  batch_size: int = 16,
  translator: inference.LoadedTranslator | None = None,
) -> VisualiseResult:
  """Write <out_dir>/<name>.mp4 (pictures + the source audio) and <out_dir>/index.html."""
  if fps <= 0:
    raise cli.UserInputError(f'--fps must be > 0, got {fps}')
  if smooth_s < 0:
    raise cli.UserInputError(f'--smooth must be >= 0 seconds, got {smooth_s}')
  timings: dict[str, float] = {}
  start = time.perf_counter()
  samples, rate = load_audio(audio_path)
  timings['read_s'] = time.perf_counter() - start
  if translator is None:
    translator = inference.load_translator(workdir, checkpoint=checkpoint, weights=weights)
  params = translator.meta.mel_params
  start = time.perf_counter()
  times = frame_times(len(samples) / rate, fps)
  columns = mel_columns(resample(samples, rate, params.sample_rate), params)
  timings.update(mel_s=time.perf_counter() - start, generate_s=0.0)
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  name = safe_name(audio_path)
  video = out / f'{name}.mp4'
  weight, previous = smoothing_weight(fps, smooth_s), None

  def frames():  # chunk by chunk, so a long song never holds all its windows in memory
    nonlocal previous
    for begin in range(0, len(times), FRAMES_PER_CHUNK):
      start = time.perf_counter()
      windows = windows_at(columns, times[begin : begin + FRAMES_PER_CHUNK], params)
      pictures = translator.pictures(windows, batch_size=batch_size)
      pictures = smooth(pictures, weight, previous)
      previous = pictures[-1]
      timings['generate_s'] += time.perf_counter() - start
      yield from upscale(pictures, video_size)

  start = time.perf_counter()
  write_video(video, frames(), fps, samples, rate)
  timings['encode_s'] = time.perf_counter() - start - timings['generate_s']
  page = write_page(out, video.name, title=pathlib.Path(audio_path).name, step=translator.step)
  return VisualiseResult(video, page, len(times), fps, len(samples) / rate, timings)


def write_video(
  path: pathlib.Path, frames: Iterable[np.ndarray], fps: float, samples: np.ndarray, rate: int
) -> None:
  """H.264 video of uint8 RGB frames (H,W,3), all one size, with `samples` muxed as AAC audio."""
  import imageio_ffmpeg
  import soundfile

  frames = iter(frames)
  first = next(frames)
  with tempfile.TemporaryDirectory() as tmp:
    wav = os.path.join(tmp, 'audio.wav')
    soundfile.write(wav, samples, rate, subtype='FLOAT')
    writer = imageio_ffmpeg.write_frames(
      str(path),
      (first.shape[1], first.shape[0]),
      fps=fps,
      codec='libx264',
      pix_fmt_out='yuv420p',
      macro_block_size=2,
      ffmpeg_log_level='error',
      audio_path=wav,
      audio_codec='aac',
      # +faststart: the index at the front, so a browser plays before the whole file arrives.
      output_params=['-b:a', AUDIO_BITRATE, '-movflags', '+faststart'],
    )
    with warnings.catch_warnings():  # JAX warns about any fork; ffmpeg execs at once
      warnings.simplefilter('ignore', RuntimeWarning)
      writer.send(None)  # start ffmpeg
    writer.send(np.ascontiguousarray(first))
    for frame in frames:
      writer.send(np.ascontiguousarray(frame))
    writer.close()


def probe_duration(path: str | os.PathLike) -> float:
  """Duration (s) of a media file, as ffmpeg reads it from the container."""
  import imageio_ffmpeg

  result = subprocess.run(
    [imageio_ffmpeg.get_ffmpeg_exe(), '-hide_banner', '-i', str(path)],
    capture_output=True,
    text=True,
    check=False,
  )
  match = re.search(r'Duration: (\d+):(\d+):(\d+(?:\.\d+)?)', result.stderr)
  if not match:
    raise ValueError(f'ffmpeg found no duration in {path}: {result.stderr[-500:]}')
  h, m, s = match.groups()
  return int(h) * 3600 + int(m) * 60 + float(s)


# The page reports what the browser made of the video (data-state / data-duration on the
# element), so a headless browser's --dump-dom shows whether it plays.
_VIDEO_PROBE = """
for (const v of document.querySelectorAll('video')) {
  const mark = (s) => { v.dataset.state = s; v.dataset.duration = v.duration; };
  v.addEventListener('loadeddata', () => mark('ready'));
  v.addEventListener('error', () => mark('error'));
  if (v.readyState >= 2) mark('ready');
}
"""


def write_page(out_dir: pathlib.Path, video_name: str, *, title: str, step: int) -> pathlib.Path:
  """<out_dir>/index.html: the video, looping, with its sound."""
  e = html.escape
  page = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    f'<title>{e(title)}</title><style>body{{background:#111;color:#ddd;font-family:sans-serif;'
    'text-align:center}video{width:min(90vw,90vh);image-rendering:pixelated;background:#000}'
    '</style></head><body>'
    f'<h1>{e(title)}</h1><video src="{e(video_name)}" controls loop preload="auto"></video>'
    f'<p>Pictures drawn from the sound by a CycleGAN (checkpoint {step}).</p>'
    f'<script>{_VIDEO_PROBE}</script></body></html>\n'
  )
  path = out_dir / 'index.html'
  path.write_text(page)
  return path


class StreamingVisualiser:
  """Frames from audio that arrives in chunks (live input, or a file read piecewise).

  Keeps the last clip of samples; each `push(chunk)` returns the (smoothed) picture of the window
  ending at that chunk's last sample. One picture per call: the latency from a chunk to its
  frame is one mel window's STFT plus one generator call.
  """

  def __init__(self, translator: inference.LoadedTranslator, *, fps: float, smooth_s: float):
    self.translator, self.params = translator, translator.meta.mel_params
    # Enough samples that the last STFT frame of the window sees a full n_fft of real signal.
    self._buffer = np.zeros(self.params.clip_samples + self.params.n_fft, np.float32)
    self._weight = smoothing_weight(fps, smooth_s)
    self._previous: np.ndarray | None = None

  def push(self, chunk: np.ndarray) -> np.ndarray:
    chunk = np.asarray(chunk, np.float32)[-len(self._buffer) :]
    self._buffer = np.concatenate([self._buffer[len(chunk) :], chunk])
    columns = mel_columns(self._buffer, self.params)
    window = columns[:, -self.params.n_frames :]
    picture = self.translator.pictures(window[None], batch_size=1)
    picture = smooth(picture, self._weight, self._previous)
    self._previous = picture[0]
    return picture[0]


def stream_file(
  visualiser: StreamingVisualiser,
  samples: np.ndarray,
  chunk_samples: int,
  on_frame: Callable[[np.ndarray, float], None] | None = None,
) -> list[float]:
  """Feed `samples` chunk by chunk; returns each chunk's latency (s) from arrival to frame."""
  latencies = []
  for begin in range(0, len(samples) - chunk_samples + 1, chunk_samples):
    arrived = time.perf_counter()
    picture = visualiser.push(samples[begin : begin + chunk_samples])
    latency = time.perf_counter() - arrived
    latencies.append(latency)
    if on_frame is not None:
      on_frame(picture, latency)
  return latencies
