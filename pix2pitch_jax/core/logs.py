"""Console logging for the command-line tools: our progress lines, not the libraries' chatter.

Orbax, grain and JAX log every checkpoint step and backend probe at INFO, which buries the
progress and ETA lines a user watches. Their warnings and errors still come through.
"""

from __future__ import annotations

import logging
import os

from absl import logging as absl_logging

# The project's two packages, wherever they are installed (a checkout or site-packages).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_CODE = (
  _PACKAGE_DIR + os.sep,
  os.path.join(os.path.dirname(_PACKAGE_DIR), 'data_prep') + os.sep,
)


class _OwnInfoOnly(logging.Filter):
  """Passes warnings and above from anywhere, and lower levels only from this repository."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    return os.path.abspath(record.pathname).startswith(_OWN_CODE)


def quiet_library_logs() -> None:
  """Installs the filter on absl's handler (call from a main, after absl.app has started)."""
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
    handler.addFilter(_OwnInfoOnly())
