"""The listening page (index.html) and what it needs: spectrogram PNGs, Chromium checks.

The page is static HTML with relative links, so the output folder can be zipped, served or opened
from disk. Files are written through `etils.epath`, so the folder may also be a URI (`gs://...`);
the Chromium checks below need a local folder. A few lines of inline script record, on every
<audio> element, whether the browser could load it (`data-state="ready"` and `data-duration`, or
`data-state="error"`); a headless browser's `--dump-dom` then shows that every player works
(`probe_audio_elements`).
"""

from __future__ import annotations

import dataclasses
import html
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

import numpy as np
from etils import epath

from pix2pitch_jax.audio.spectrogram import colorize_mel
from pix2pitch_jax.core import workdir as workdir_lib
from pix2pitch_jax.data import images


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
  """A uint8 (H, W, 3) array as a PNG at `path` (a local path or a URI)."""
  # Encoded in memory and written in one go: the same call for a local path or a URI.
  workdir_lib.as_path(path).write_bytes(images.png_bytes(image))


def save_mel_png(image: np.ndarray, path: str | os.PathLike) -> None:
  """A mel image as a magma PNG, the colouring TensorBoard shows during training too."""
  save_png(colorize_mel(image), path)


# What a card shows. A painting's card: the painting, then the mel each model made of it, with
# players. A clip's card (a CycleGAN's sound -> picture direction): the clip's mel, then the
# picture the model drew, and a player of the clip.
PAINTING_TO_MUSIC = 'painting_to_music'
SOUND_TO_PICTURE = 'sound_to_picture'
DIRECTIONS = (PAINTING_TO_MUSIC, SOUND_TO_PICTURE)


@dataclasses.dataclass(frozen=True)
class GalleryEntry:
  """One card of the page; file fields are paths relative to the page's folder.

  For `direction=SOUND_TO_PICTURE`, `spectrogram` and `audio` are the input clip's mel and sound
  and `painting` is the picture the model drew of it.
  """

  title: str
  painting: str
  spectrogram: str
  audio: str
  era_label: str | None = None  # the dataset's era for split examples
  era_predicted: str | None = None  # the era classifier's reading of the generated mel
  reference_audio: str | None = None
  reference_spectrogram: str | None = None
  source: str = ''  # where the input came from (file path or painting id)
  # One player per vocoder the mel went through: {'vocoder', 'audio', and 'midi' for the MIDI
  # route's .mid}; `audio` above is the first one's. Empty: `audio` is the only rendering.
  renderings: Sequence[dict[str, str]] = ()
  direction: str = PAINTING_TO_MUSIC
  model: str = ''  # which model made the generated file(s); shown when there are comparisons
  # The same painting through other models: {'model', 'workdir', 'spectrogram', 'audio',
  # 'vocoder'}, one mel beside the first and one player each.
  comparisons: Sequence[dict[str, str]] = ()

  def __post_init__(self):
    if self.direction not in DIRECTIONS:
      raise ValueError(f'direction must be one of {DIRECTIONS}, got {self.direction!r}')


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; background: #faf8f5; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
.meta { color: #666; margin-bottom: 1.5em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 18px; }
.card { background: #fff; border-radius: 8px; padding: 12px; box-shadow: 0 1px 4px #0002; }
.card h2 { font-size: 0.95em; margin: 0 0 8px; overflow-wrap: anywhere; }
.pair { display: flex; gap: 6px; }
.pair figure { margin: 0; flex: 1; }
.pair img { width: 100%; aspect-ratio: 1; image-rendering: pixelated; display: block; }
figcaption { font-size: 0.75em; color: #777; text-align: center; }
audio { width: 100%; margin-top: 8px; }
.rendering { font-size: 0.8em; color: #555; margin-top: 6px; }
.rendering audio { margin-top: 2px; }
.era { font-size: 0.85em; margin-top: 6px; }
details { font-size: 0.85em; margin-top: 6px; }
.skipped { margin-top: 2em; color: #a33; font-size: 0.85em; }
"""

# Records each player's load state on the element itself (see the module docstring).
_AUDIO_PROBE = """
for (const a of document.querySelectorAll('audio')) {
  const mark = () => { a.dataset.state = 'ready'; a.dataset.duration = a.duration.toFixed(3); };
  a.addEventListener('loadedmetadata', mark);
  a.addEventListener('error', () => { a.dataset.state = 'error'; });
  if (a.readyState >= 1) mark();
  a.load();
}
"""


def _card(entry: GalleryEntry) -> str:
  e = lambda s: html.escape(str(s), quote=True)
  era_lines = []
  if entry.era_predicted is not None:
    era_lines.append(f'sounds like: <b>{e(entry.era_predicted)}</b>')
  if entry.era_label is not None:
    era_lines.append(f'labelled: {e(entry.era_label)}')
  reference = ''
  if entry.reference_audio:
    reference = (
      f"<details><summary>reference (the dataset's music)</summary>"
      f'<img src="{e(entry.reference_spectrogram)}" alt="reference spectrogram" '
      f'style="width:50%;image-rendering:pixelated">'
      f'<audio controls preload="metadata" src="{e(entry.reference_audio)}"></audio>'
      f'</details>'
    )
  if entry.direction == SOUND_TO_PICTURE:
    figures = [
      (entry.spectrogram, 'clip spectrogram', "the clip's mel"),
      (entry.painting, 'generated picture', 'generated picture'),
    ]
  else:
    mel_caption = f'{entry.model} mel' if entry.comparisons else 'generated mel'
    figures = [
      (entry.painting, 'painting', 'painting'),
      (entry.spectrogram, 'generated spectrogram', mel_caption),
    ]
    figures += [
      (c['spectrogram'], 'generated spectrogram', f'{c["model"]} mel') for c in entry.comparisons
    ]
  pair = ''.join(
    f'<figure><img src="{e(src)}" alt="{e(alt)}"><figcaption>{e(caption)}</figcaption></figure>'
    for src, alt, caption in figures
  )
  return (
    f'<div class="card" data-direction="{e(entry.direction)}">'
    f'<h2 title="{e(entry.source)}">{e(entry.title)}</h2>'
    f'<div class="pair">{pair}</div>'
    f'{_players(entry)}'
    f'<div class="era">{" &middot; ".join(era_lines)}</div>{reference}</div>'
  )


# How the page names each vocoder's player.
VOCODER_LABELS = {'griffin_lim': 'Griffin-Lim', 'midi': 'MIDI', 'neural': 'neural vocoder'}


def _players(entry: GalleryEntry) -> str:
  """One labelled player per rendering (with the MIDI file as a download) and per comparison
  model; or the one player."""
  e = lambda s: html.escape(str(s), quote=True)
  if entry.direction == SOUND_TO_PICTURE:
    return (
      f'<div class="rendering" data-role="clip">the clip'
      f'<audio controls preload="metadata" src="{e(entry.audio)}"></audio></div>'
    )
  if not entry.renderings and not entry.comparisons:
    return f'<audio controls preload="metadata" src="{e(entry.audio)}"></audio>'
  renderings = entry.renderings or ({'vocoder': '', 'audio': entry.audio},)
  blocks = []
  for rendering in renderings:
    name = rendering['vocoder']
    label = e(VOCODER_LABELS.get(name, name))
    if entry.comparisons:
      label = f'{e(entry.model)} &middot; {label}' if label else e(entry.model)
    if rendering.get('midi'):
      label += f' &middot; <a href="{e(rendering["midi"])}" download>download .mid</a>'
    blocks.append(
      f'<div class="rendering" data-vocoder="{e(name)}">{label}'
      f'<audio controls preload="metadata" src="{e(rendering["audio"])}"></audio></div>'
    )
  for c in entry.comparisons:
    name = c.get('vocoder', '')
    label = e(c['model']) + (f' &middot; {e(VOCODER_LABELS.get(name, name))}' if name else '')
    blocks.append(
      f'<div class="rendering" data-model="{e(c["model"])}" data-vocoder="{e(name)}">{label}'
      f'<audio controls preload="metadata" src="{e(c["audio"])}"></audio></div>'
    )
  return ''.join(blocks)


def write_gallery(
  out_dir: str | os.PathLike,
  entries: Sequence[GalleryEntry],
  *,
  title: str,
  subtitle: str = '',
  skipped: Sequence[tuple[str, str]] = (),
) -> epath.Path:
  """Write `<out_dir>/index.html` with one card per entry and a list of skipped inputs."""
  path = workdir_lib.as_path(out_dir) / workdir_lib.GALLERY_INDEX
  page = render_gallery(entries, title=title, subtitle=subtitle, skipped=skipped)
  path.write_text(page, encoding='utf-8')
  return path


def render_gallery(
  entries: Sequence[GalleryEntry],
  *,
  title: str,
  subtitle: str = '',
  skipped: Sequence[tuple[str, str]] = (),
) -> str:
  """The page `write_gallery` writes, as text (to write it to any storage)."""
  e = lambda s: html.escape(str(s), quote=True)
  skipped_html = ''
  if skipped:
    items = ''.join(f'<li>{e(path)}: {e(reason)}</li>' for path, reason in skipped)
    skipped_html = f'<div class="skipped">Skipped {len(skipped)} input(s):<ul>{items}</ul></div>'
  return (
    f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    f'<title>{e(title)}</title><style>{_STYLE}</style></head><body>'
    f'<h1>{e(title)}</h1><div class="meta">{e(subtitle)}</div>'
    f'<div class="grid">{"".join(_card(x) for x in entries)}</div>{skipped_html}'
    f'<script>{_AUDIO_PROBE}</script></body></html>\n'
  )


# ------------------------------------------------------------------------------------------------
# Headless Chromium: screenshot and audio check.
# ------------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = (
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--mute-audio',
  '--autoplay-policy=no-user-gesture-required',
)


def find_chromium_or_none() -> str | None:
  return next(
    filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None
  )


def find_chromium() -> str:
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    path = shutil.which(name)
    if path:
      return path
  raise FileNotFoundError('no Chromium found (Debian: apt-get install chromium)')


def _run_chromium(args: Sequence[str], timeout_s: float) -> str:
  with tempfile.TemporaryDirectory() as profile:
    result = subprocess.run(
      [find_chromium(), *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args],
      capture_output=True,
      text=True,
      timeout=timeout_s,
      check=False,
    )
  if result.returncode != 0:
    raise RuntimeError(f'chromium failed ({result.returncode}): {result.stderr[-2000:]}')
  return result.stdout


def render_screenshot(
  index_html: str | os.PathLike,
  png_path: str | os.PathLike,
  *,
  width: int = 1200,
  height: int = 1600,
  timeout_s: float = 120,
) -> pathlib.Path:
  """Screenshot of the page as headless Chromium renders it."""
  png_path = pathlib.Path(png_path).resolve()
  _run_chromium(
    [
      f'--screenshot={png_path}',
      f'--window-size={width},{height}',
      '--virtual-time-budget=5000',
      pathlib.Path(index_html).resolve().as_uri(),
    ],
    timeout_s,
  )
  if not png_path.exists():
    raise RuntimeError(f'chromium ran but wrote no screenshot to {png_path}')
  return png_path


_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def probe_audio_elements(index_html: str | os.PathLike, timeout_s: float = 120) -> list[dict]:
  """Load the page in headless Chromium; per <audio>: src, state ('ready' | 'error' | None) and
  duration in seconds."""
  return probe_media_elements(index_html, 'audio', timeout_s)


def probe_media_elements(
  index_html: str | os.PathLike, tag: str, timeout_s: float = 120
) -> list[dict]:
  """Per <audio> or <video> element of a page that marks them (`data-state`, `data-duration`),
  as headless Chromium loaded it: src, state ('ready' | 'error' | None), duration in seconds."""
  dom = _run_chromium(
    ['--virtual-time-budget=10000', '--dump-dom', pathlib.Path(index_html).resolve().as_uri()],
    timeout_s,
  )
  found = []
  for element in re.findall(rf'<{tag}\b[^>]*>', dom):
    attrs = dict(_ATTR.findall(element))
    duration = attrs.get('data-duration')
    found.append(
      {
        'src': html.unescape(attrs.get('src', '')),
        'state': attrs.get('data-state'),
        'duration': float(duration) if duration else None,
      }
    )
  return found
