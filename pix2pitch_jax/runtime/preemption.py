"""Stop requests that every host agrees on: SIGTERM, Ctrl-C or a pre-emption notice on any host
makes every host stop after the same step, so they all save that step and exit.

One process: a Python handler turns SIGTERM and SIGINT into a flag the loop reads after each step.

Several processes (`jax.distributed`): no Python SIGTERM handler. `jax.distributed.initialize`
starts JAX's preemption service, whose notifier catches SIGTERM itself (a handler of our own
would replace it, and a host that stopped on its own schedule would leave the others waiting in
a collective). The notifier tells the coordination service; every host then reports how far it
got and all agree on the next step after the furthest one (the sync point), which
`multihost_utils.reached_preemption_sync_point` reports on every host at that same step. Ctrl-C
(SIGINT) is not watched by JAX, so it is handed on to the same notifier as a SIGTERM to this
process. Polling the sync point costs a mutex per step: no collective, no host-device sync.

The sync point is counted in steps since the loop started (`start_step`), not in absolute steps:
the counter on each host starts at 0, so a notice that arrives while a host is still restoring or
compiling still lands on the first step of the loop rather than on a step long past.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import jax
from absl import logging
from jax.experimental import multihost_utils


class StopRequest:
  """`reached(step)`: stop after `step`? The same answer on every host, checked every step.

  Use as a context manager around the training loop; signal handlers are restored on exit.
  Handlers are only installed from the main thread (elsewhere Python refuses them).
  """

  def __init__(self, start_step: int) -> None:
    self.start_step = start_step
    self.multi_process = jax.process_count() > 1
    self.received: int | None = None  # the signal seen by this process (one-process mode)
    self._sync_point = False  # JAX's preemption service answers (multi-process mode)
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> StopRequest:
    if self.multi_process:
      self._sync_point = _preemption_service_running()
    # Multi-process: SIGTERM stays with JAX's notifier; only Ctrl-C needs handing on.
    signals = (signal.SIGINT,) if self.multi_process else (signal.SIGTERM, signal.SIGINT)
    if threading.current_thread() is threading.main_thread():
      for sig in signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()

  def reached(self, step: int) -> bool:
    """Whether to save `step` and stop. Call once per step, on every host, in step order."""
    if not self.multi_process:
      return self.received is not None
    if not self._sync_point:
      return False
    return multihost_utils.reached_preemption_sync_point(step - self.start_step)

  def _handle(self, signum: int, frame: Any) -> None:
    del frame
    name = signal.Signals(signum).name
    # A second Ctrl-C / SIGTERM gets the previous behaviour (KeyboardInterrupt, termination).
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
    if not self.multi_process:
      logging.warning(
        'Received %s: saving a checkpoint and stopping (send it again to stop at once).', name
      )
      self.received = signum
    elif self._sync_point:
      logging.warning(
        'Received %s: passing it to the JAX preemption notifier; every process saves the same '
        'step and stops (send it again to stop at once).',
        name,
      )
      os.kill(os.getpid(), signal.SIGTERM)
    else:
      raise KeyboardInterrupt


def _preemption_service_running() -> bool:
  """Whether JAX's preemption service runs (it can be turned off: jax_enable_preemption_service).

  Asks for step 0 of the loop: the counter every host starts from.
  """
  try:
    multihost_utils.reached_preemption_sync_point(0)
  except RuntimeError as e:
    logging.warning(
      'JAX preemption service unavailable (%s): a SIGTERM or Ctrl-C will end this process '
      'without a checkpoint.',
      e,
    )
    return False
  return True
