"""Logs a job adds to while it runs, on any storage `etils.epath` reaches: TensorBoard event files
(`EventWriter`, `read_events`) and JSON-lines files (`JsonLinesLog`, e.g. metrics.jsonl).

A local folder is appended to and flushed as things happen. Cloud objects (`gs://...`) cannot be
appended to: an object is written whole, once, and GCS takes about one write per second to the same
object. So on a URI:
  events  every flush writes a new, complete event file `<name>.<part>` holding only the events
          since the previous flush. TensorBoard reads the event files of a folder in name order
          as one stream, so the parts read as one file, and an object never appears half-written.
          (tensorboardX's own GCS writer crashes, and re-uploading one growing file on every
          flush, as TensorFlow's writer does, costs time quadratic in the run's length.)
  jsonl   the file is read once when opened (a resumed run keeps its earlier lines) and rewritten
          whole on flush; it holds one short line per logged step, so the rewrite stays small.
On a URI flushes happen at most every `flush_secs` (and on `flush()` / `close()`): a job killed
without warning loses at most that much of its log, while a stop request (which closes the logs)
loses nothing.

Event records are framed as TFRecords (u64 length, masked crc32c of it, payload, masked crc32c)
around tensorboardX's `Event` protobufs; no TensorFlow is needed to write or read them.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import time
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from pix2pitch_jax.core import workdir as workdir_lib

FLUSH_SECS = 30.0
EVENT_FILE_PREFIX = 'events.out.tfevents.'
_writer_ids = itertools.count()  # two writers of one process, started in the same second


def _event_file_name() -> str:
  """`events.out.tfevents.<unix time>.<host>.<pid>.<n>`: sorts by start time, unique per writer."""
  return (
    f'{EVENT_FILE_PREFIX}{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}'
    f'.{next(_writer_ids)}'
  )


def _record(data: bytes) -> bytes:
  from tensorboardX.record_writer import masked_crc32c

  header = struct.pack('<Q', len(data))
  return (
    header
    + struct.pack('<I', masked_crc32c(header))
    + data
    + struct.pack('<I', masked_crc32c(data))
  )


class _Flusher:
  """When to flush: at once on local disk, at most every `flush_secs` on a URI."""

  def __init__(self, uri: bool, flush_secs: float):
    self.uri, self._flush_secs, self._last = uri, flush_secs, -float('inf')

  def due(self) -> bool:
    return not self.uri or time.monotonic() - self._last >= self._flush_secs

  def flushed(self) -> None:
    self._last = time.monotonic()


class EventWriter:
  """TensorBoard scalars, images and audio in `log_dir` (a local folder or a URI).

  Like tensorboardX's `SummaryWriter` for what this project logs, but every byte goes through
  `etils.epath` (see the module docstring for how files are cut on cloud storage).
  """

  def __init__(self, log_dir: str | os.PathLike, *, flush_secs: float = FLUSH_SECS):
    from tensorboardX.proto import event_pb2

    self.log_dir = workdir_lib.as_path(log_dir)
    self.log_dir.mkdir(parents=True, exist_ok=True)  # a no-op on object stores
    self._name = _event_file_name()
    self._when = _Flusher(workdir_lib.is_uri(self.log_dir), flush_secs)
    self._local: IO[bytes] | None = None
    if not self._when.uri:
      self._local = (self.log_dir / self._name).open('ab')
    self._parts = itertools.count()
    self._pending: list[bytes] = []
    self._closed = False
    self._add(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  def scalar(self, tag: str, value: float, step: int) -> None:
    from tensorboardX import summary

    self._summary(summary.scalar(tag, float(value)), step)

  def images(self, tag: str, images: np.ndarray, step: int) -> None:
    """uint8 (N, H, W, C) images as one grid image."""
    from tensorboardX import summary

    self._summary(summary.image(tag, np.asarray(images), dataformats='NHWC'), step)

  def audio(self, tag: str, clip: np.ndarray, step: int, *, sample_rate: int) -> None:
    """One clip (samples,) in [-1, 1]."""
    from tensorboardX import summary

    self._summary(summary.audio(tag, np.asarray(clip), sample_rate=sample_rate), step)

  def _summary(self, summary_proto: Any, step: int) -> None:
    from tensorboardX.proto import event_pb2

    self._add(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_proto))
    if self._when.due():
      self.flush()

  def _add(self, event: Any) -> None:
    if self._closed:
      raise ValueError(f'event writer for {self.log_dir} is closed')
    self._pending.append(_record(event.SerializeToString()))

  def flush(self) -> None:
    """Write what is pending: appended locally, as the next part file on a URI."""
    if self._pending:
      data = b''.join(self._pending)
      if self._local is not None:
        self._local.write(data)
        self._local.flush()
      else:
        (self.log_dir / f'{self._name}.{next(self._parts):06d}').write_bytes(data)
      self._pending.clear()
    self._when.flushed()

  def close(self) -> None:
    if self._closed:
      return
    self.flush()
    if self._local is not None:
      self._local.close()
    self._closed = True

  def __enter__(self) -> EventWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_events(log_dir: str | os.PathLike) -> list[Any]:
  """Every `Event` proto in the event files directly in `log_dir`, in TensorBoard's file order.

  For tests and notebooks: needs only tensorboardX's protobufs, not the tensorboard package.
  Checksums are not verified; a record still being written at the end of a file is skipped.
  """
  from tensorboardX.proto import event_pb2

  root = workdir_lib.as_path(log_dir)
  if not root.is_dir():
    return []
  paths = sorted(
    (p for p in root.iterdir() if p.name.startswith(EVENT_FILE_PREFIX)), key=lambda p: p.name
  )
  events = []
  for path in paths:
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[pos : pos + 8])
      start, end = pos + 12, pos + 12 + length
      if end + 4 > len(data):
        break
      events.append(event_pb2.Event.FromString(data[start:end]))
      pos = end + 4
  return events


class JsonLinesLog:
  """A JSON-lines file (one object per `write`) that a run adds to, resumed runs included."""

  def __init__(self, path: str | os.PathLike, *, flush_secs: float = FLUSH_SECS):
    self.path = workdir_lib.as_path(path)
    self._when = _Flusher(workdir_lib.is_uri(self.path), flush_secs)
    self._local: IO[str] | None = None
    self._text: list[str] = []  # on a URI: the whole file, rewritten on flush
    self._dirty = False
    if self._when.uri:
      if self.path.exists():
        self._text.append(self.path.read_text())
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._local = self.path.open('a')

  def write(self, record: Mapping[str, Any]) -> None:
    line = json.dumps(dict(record)) + '\n'
    if self._local is not None:
      self._local.write(line)
      self._local.flush()
      return
    self._text.append(line)
    self._dirty = True
    if self._when.due():
      self.flush()

  def flush(self) -> None:
    if self._dirty:
      self.path.write_text(''.join(self._text))
      self._dirty = False
    self._when.flushed()

  def close(self) -> None:
    self.flush()
    if self._local is not None:
      self._local.close()
      self._local = None
