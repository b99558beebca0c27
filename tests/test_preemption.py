"""The stop decision (runtime/preemption.py) without training: one process turns SIGTERM and
Ctrl-C into a flag; several processes leave SIGTERM to JAX's notifier, hand Ctrl-C on to it,
and ask JAX's sync point in steps since the loop started. The two-process run itself is in
test_multihost.py."""

import signal

import pytest

from pix2pitch_jax.runtime import preemption


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_one_process_stops_after_a_signal_and_restores_the_handlers(sig):
  before = signal.getsignal(sig)
  with preemption.StopRequest(start_step=10) as stop:
    assert not stop.reached(11)
    signal.raise_signal(sig)
    assert stop.received == sig and stop.reached(12)
    # A second signal would get the previous behaviour (stop at once).
    assert signal.getsignal(sig) is before
  assert signal.getsignal(sig) is before


@pytest.fixture
def multi_process(monkeypatch):
  """A StopRequest that behaves as one of several processes with JAX's service running."""
  sync_point_calls: list[int] = []
  kills: list[tuple[int, int]] = []
  monkeypatch.setattr(preemption, '_preemption_service_running', lambda: True)
  monkeypatch.setattr(
    preemption.multihost_utils,
    'reached_preemption_sync_point',
    lambda tick: sync_point_calls.append(tick) or tick == 3,
  )
  monkeypatch.setattr(preemption.os, 'kill', lambda pid, sig: kills.append((pid, sig)))
  stop = preemption.StopRequest(start_step=100)
  stop.multi_process = True
  return stop, sync_point_calls, kills


def test_several_processes_ask_jax_in_steps_since_the_start(multi_process):
  stop, sync_point_calls, _ = multi_process
  term_before = signal.getsignal(signal.SIGTERM)
  with stop:
    # No Python SIGTERM handler: it would replace JAX's preemption notifier.
    assert signal.getsignal(signal.SIGTERM) is term_before
    assert [stop.reached(step) for step in (101, 102, 103)] == [False, False, True]
  assert sync_point_calls == [1, 2, 3]


def test_several_processes_hand_ctrl_c_to_jax_as_sigterm(multi_process):
  stop, _, kills = multi_process
  int_before = signal.getsignal(signal.SIGINT)
  with stop:
    signal.raise_signal(signal.SIGINT)
    assert [sig for _, sig in kills] == [signal.SIGTERM]
    assert stop.received is None  # the decision is JAX's sync point, not this host's flag
    assert signal.getsignal(signal.SIGINT) is int_before
  assert signal.getsignal(signal.SIGINT) is int_before
