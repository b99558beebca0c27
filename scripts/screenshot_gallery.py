"""Screenshot a generated gallery in headless Chromium and check its audio players.

    python scripts/screenshot_gallery.py --index=runs/demo/gallery/test/index.html \
        --out=gallery.png [--width=1200 --height=1600]

Prints each <audio> element's source and whether the browser loaded it (state, duration in s);
exits non-zero when any player failed to load.
"""

import os
import sys

from absl import app, flags

# Runnable as a plain script from anywhere.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from pix2pitch_jax.generation import gallery

_INDEX = flags.DEFINE_string('index', None, 'Path to the gallery index.html.', required=True)
_OUT = flags.DEFINE_string('out', 'gallery.png', 'Where to write the screenshot.')
_WIDTH = flags.DEFINE_integer('width', 1200, 'Window width in pixels.')
_HEIGHT = flags.DEFINE_integer('height', 1600, 'Window height in pixels.')


def main(argv):
  del argv
  png = gallery.render_screenshot(
    _INDEX.value, _OUT.value, width=_WIDTH.value, height=_HEIGHT.value
  )
  players = gallery.probe_audio_elements(_INDEX.value)
  for player in players:
    print(
      f'{player["state"] or "not loaded":>10}  {player["duration"] or 0:6.2f} s  {player["src"]}'
    )
  broken = [p for p in players if p['state'] != 'ready']
  print(f'screenshot: {png}; {len(players) - len(broken)}/{len(players)} audio players loaded')
  if broken:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
