"""The one absl runner behind every command-line tool (`pix2pitch-*` and `python -m ...`).

    def main() -> None: ...              # reads its flags, calls a library function
    def run() -> None: cli.run(main)     # the console-script entry point

`run` gives every tool the same behaviour: extra positional arguments are a usage error, the
libraries' INFO chatter is filtered out of the console (logs.py), JAX's persistent compilation
cache is on (`enable_compilation_cache`), and the errors a user can fix (a bad config key or
value, a missing file, a bad input) end the program with one line, `error: ...`, and exit
status 1 instead of a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app, flags

from pix2pitch_jax.core import configs, logs


class UserInputError(ValueError):
  """Something the user asked for cannot be done as asked; the message says what to change."""


# What ends a tool with one line: problems in what the user gave, not bugs in the program.
USER_ERRORS = (configs.ConfigError, UserInputError, FileNotFoundError, NotADirectoryError)


def run(main: Callable[[], object], *, user_errors: tuple[type[BaseException], ...] = ()) -> None:
  """absl `app.run` around `main()` with the shared set-up; `user_errors` adds to USER_ERRORS."""

  def wrapped(argv: list[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logs.quiet_library_logs()
    enable_compilation_cache()
    try:
      main()
    except USER_ERRORS + user_errors as e:
      sys.exit(f'error: {e}')

  _adopt_main_module(main)
  try:
    app.run(wrapped, flags_parser=_parse_flags)
  except SystemExit as e:
    # absl exits 1 after printing the help it was asked for; asking is not a failure.
    if e.code == 1 and set(sys.argv[1:]) & _HELP_FLAGS:
      sys.exit(0)
    raise


_HELP_FLAGS = {'--help', '-h', '-?', '--helpshort', '--helpfull', '--helpxml'}
CACHE_ENV = 'JAX_COMPILATION_CACHE_DIR'


def default_compilation_cache_dir() -> str:
  """`$XDG_CACHE_HOME/pix2pitch_jax/jax`, else `~/.cache/pix2pitch_jax/jax`: a local disk."""
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'pix2pitch_jax', 'jax')


def enable_compilation_cache() -> str | None:
  """Turn on JAX's persistent compilation cache unless the user chose one; returns the folder.

  A `JAX_COMPILATION_CACHE_DIR` in the environment is the user's choice (JAX reads it itself;
  an empty value turns the cache off), as is a cache folder already set in `jax.config`.
  Otherwise the default folder is used: a rerun, a resumed job or the evaluation after training
  then loads its programs instead of compiling them again. Always on the local disk, never in
  a (possibly remote) workdir. This module stays free of JAX (data_prep uses it): the variable
  is set for a JAX imported later, and a JAX already imported is configured directly.
  """
  if CACHE_ENV in os.environ:
    return os.environ[CACHE_ENV] or None
  jax = sys.modules.get('jax')
  configured = jax.config.jax_compilation_cache_dir if jax is not None else None
  if configured:
    return configured
  path = default_compilation_cache_dir()
  os.environ[CACHE_ENV] = path
  if jax is not None:
    jax.config.update('jax_compilation_cache_dir', path)
  return path


def _adopt_main_module(main: Callable[[], object]) -> None:
  """Make a console script's `--help` show its module's docstring and flags.

  absl's `--help` lists the key flags of the `__main__` module; a console script's `__main__` is
  a generated stub, so the flags and usage text of the module that defines `main` are lent to it.
  """
  module = sys.modules[main.__module__]
  if module.__name__ == '__main__':
    return
  for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  main_module = sys.modules['__main__']
  if not main_module.__doc__:
    main_module.__doc__ = module.__doc__


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a mistyped `--config.<key>=...` reported in one line.

  ml_collections' config flag looks an override's key up while parsing and raises a bare
  AttributeError/KeyError (a traceback) for a key the config does not have.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    known = configs.flatten(configs.default_config())
    for arg in argv[1:]:
      if arg.startswith('--config.'):
        key = arg[len('--config.') :].split('=', 1)[0]
        if key not in known:
          sys.exit(f'error: {configs.unknown_key_message(key, known)}')
    sys.exit(f'error: bad flag value: {str(e).splitlines()[0]}')


def parse_checkpoint(value: str | int) -> str | int:
  """A --checkpoint flag value: 'latest' or a step number."""
  if value == 'latest' or isinstance(value, int):
    return value
  try:
    return int(value)
  except ValueError:
    raise UserInputError(f"--checkpoint must be 'latest' or a step number, got {value!r}") from None
