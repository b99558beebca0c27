"""Device mesh and shardings: the one home for how arrays are laid out over devices and hosts.

One 1-D mesh axis, 'data', spans every device of every process. The global batch is sharded
over it (data parallelism); parameters are replicated, or with FSDP sharded over the same axis
along their largest divisible dimension (ZeRO-3 style: XLA all-gathers them where needed); leaves
smaller than `FSDP_MIN_SIZE` elements (BatchNorm vectors, biases) stay replicated, where sharding
would cost a collective per use and save nothing. Everything runs under `jax.jit` with
`NamedSharding`s; there is no pmap.

The device order along 'data' comes from `jax.make_mesh` (the physical topology: a ring on a TPU
slice) or, for several TPU slices joined by the data-centre network, from
`mesh_utils.create_hybrid_device_mesh`: slice by slice, so that the inner part of every
reduction stays on the fast inter-chip links (ICI) and only the outer part crosses DCN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pix2pitch_jax.data import batching

DATA_AXIS = 'data'
# FSDP leaves with fewer elements than this stay replicated (config.fsdp_min_size).
FSDP_MIN_SIZE = 2**14


def maybe_initialize_distributed() -> None:
  """`jax.distributed.initialize()` when this process is one of a multi-process job.

  Explicit: JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and
  JAX_PROCESS_ID. Auto-detected by jax (SLURM, Open MPI, Cloud TPU pods, ...): set
  PIX2PITCH_DISTRIBUTED=1. Must run before anything touches the devices.
  """
  address = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if jax.distributed.is_initialized():
    return
  if address:
    try:
      num_processes = int(os.environ['JAX_NUM_PROCESSES'])
      process_id = int(os.environ['JAX_PROCESS_ID'])
    except (KeyError, ValueError) as e:
      raise ValueError(
        'JAX_COORDINATOR_ADDRESS is set: also set JAX_NUM_PROCESSES and JAX_PROCESS_ID to integers'
      ) from e
    jax.distributed.initialize(address, num_processes, process_id)
  elif os.environ.get('PIX2PITCH_DISTRIBUTED', '') == '1':
    jax.distributed.initialize()
  else:
    return
  logging.info(
    'jax.distributed: process %d of %d, %d local / %d global devices',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def make_mesh(
  num_devices: int | None = None, *, local: bool = False, dcn_data_parallelism: int = 1
) -> Mesh:
  """A 1-D ('data',) mesh over the first `num_devices` devices (default: all, all hosts).

  `local`: over this process's devices only. Batch inference uses it in a multi-process job:
  each host runs its own share of the inputs, with no collective between hosts.
  `dcn_data_parallelism` > 1 builds a hybrid mesh over that many slices (TPU multi-slice; on
  GPU and CPU clusters one process is one unit) with every device, the 'data' axis running
  slice by slice. 1 is a single slice: the topology-aware `jax.make_mesh`.
  """
  devices = jax.local_devices() if local else jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f'num_devices must be in [1, {len(devices)}], got {num_devices}')
    if not local and jax.process_count() > 1 and num_devices != len(devices):
      raise ValueError('a multi-process run must use all devices')
    devices = devices[:num_devices]
  # Classic (Auto) axis types: shardings propagate through jit as with pjit; jax.make_mesh
  # would default to Explicit axes.
  axis_types = (jax.sharding.AxisType.Auto,)
  if dcn_data_parallelism == 1:
    units, unit_name = dcn_units(devices)
    if units > 1 and unit_name == 'slices':
      raise ValueError(
        f'the devices span {units} slices: set --config.mesh.dcn_data_parallelism={units}'
      )
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=axis_types, devices=devices)
  if num_devices is not None and num_devices != len(jax.devices()):
    raise ValueError('a multi-slice (dcn_data_parallelism > 1) mesh uses every device')
  return Mesh(hybrid_devices(devices, dcn_data_parallelism), (DATA_AXIS,), axis_types=axis_types)


def dcn_units(devices) -> tuple[int, str]:
  """(number, name) of the units the data-centre network joins: TPU slices (or any devices that
  report several slices), else processes (hosts of a GPU or CPU cluster)."""
  slices = {getattr(d, 'slice_index', None) for d in devices}
  if len(slices) > 1 or devices[0].platform == 'tpu':
    return len(slices), 'slices'
  return len({d.process_index for d in devices}), 'processes'


def hybrid_devices(devices, dcn_data_parallelism: int) -> np.ndarray:
  """The devices ordered for one 'data' axis over `dcn_data_parallelism` slices (1-D array)."""
  if dcn_data_parallelism < 1:
    raise ValueError(f'dcn_data_parallelism must be >= 1, got {dcn_data_parallelism}')
  units, unit_name = dcn_units(devices)
  if units != dcn_data_parallelism:
    hint = ' (one slice needs no DCN axis: use 1)' if units == 1 else ''
    raise ValueError(
      f'mesh.dcn_data_parallelism={dcn_data_parallelism} but the devices span {units} '
      f'{unit_name}{hint}; set it to {units}'
    )
  per_unit = len(devices) // units
  return mesh_utils.create_hybrid_device_mesh(
    (per_unit,),
    (dcn_data_parallelism,),
    devices,
    process_is_granule=unit_name == 'processes',
  )


def host_rows(n: int) -> np.ndarray:
  """This process's share of `n` items in a multi-process job: i % process_count == index.

  Interleaved rather than in blocks, so a set sorted by size or era spreads evenly over hosts.
  """
  return np.arange(jax.process_index(), n, jax.process_count())


def is_main_process() -> bool:
  """Process 0: the one that writes what the job's processes share (reports, indexes)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Wait until every process of the job gets here (no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over 'data'; the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], axis_size: int, min_size: int = FSDP_MIN_SIZE) -> P:
  """Shard the largest dimension divisible by `axis_size` over 'data'; replicate otherwise.

  Leaves of fewer than `min_size` elements stay replicated: gathering a BatchNorm vector at
  every use costs a collective's latency and saves a few hundred bytes per device.
  """
  candidates = [(dim, i) for i, dim in enumerate(shape) if dim % axis_size == 0 and dim > 0]
  if axis_size == 1 or not candidates or math.prod(shape) < min_size:
    return P()
  _, axis = max(candidates)
  spec: list[str | None] = [None] * len(shape)
  spec[axis] = DATA_AXIS
  return P(*spec)


def state_shardings(
  abstract_state: Any, mesh: Mesh, fsdp: bool, *, min_size: int = FSDP_MIN_SIZE
) -> Any:
  """NamedShardings for a pytree of arrays / ShapeDtypeStructs: replicated or FSDP."""
  axis_size = mesh.shape[DATA_AXIS]

  def sharding_for(leaf):
    shape = tuple(getattr(leaf, 'shape', ()))
    return NamedSharding(mesh, fsdp_spec(shape, axis_size, min_size) if fsdp else P())

  return jax.tree.map(sharding_for, abstract_state)


def check_global_batch(global_batch_size: int, mesh: Mesh) -> None:
  """One clear error when the global batch cannot be split over devices and hosts."""
  n, hosts = mesh.size, jax.process_count()
  if global_batch_size % n or global_batch_size % hosts:
    raise ValueError(
      f'batch_size={global_batch_size} must be divisible by the number of devices '
      f'({n}) and processes ({hosts})'
    )


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local numpy batch (this process's slice) -> global jax.Arrays sharded over 'data'.

  Each process passes its own `global_batch / process_count` rows; on one process this is just a
  device_put with the data sharding.
  """
  sharding = data_sharding(mesh)
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
  }


def map_in_batches(
  fn: Callable[..., Any],
  arrays: Mapping[str, np.ndarray],
  *,
  batch_size: int,
  mesh: Mesh | None = None,
  progress: str | None = None,
) -> Any:
  """`fn(**batch)` over the leading axis of `arrays` in fixed-size batches, results concatenated.

  Every batch has one size (`data.batching`: the last padded, the padding dropped from the
  output), so a jitted `fn` compiles once. With a mesh the batch size is rounded up to a multiple
  of the device count and each batch is sharded over the 'data' axis; the mesh is one process's
  (`make_mesh(local=True)`, or any mesh of a single-process job), every row of `arrays` being
  this process's. `fn` may return an array or a pytree of arrays; the result has the same
  structure, as numpy.
  """
  n = batching.num_rows(arrays)
  if not n:
    raise ValueError('map_in_batches needs at least one row')
  if mesh is not None:
    batch_size = batching.round_up(batch_size, mesh.size)
  batches = batching.padded_batches(arrays, batch_size)
  if progress:
    from tqdm import tqdm

    batches = tqdm(batches, desc=progress, unit='batch', total=-(-n // batch_size), leave=False)
  outputs = []
  for batch in batches:
    rows = int(batch.pop(batching.MASK).sum())
    inputs = shard_batch(batch, mesh) if mesh is not None else batch
    result = jax.device_get(fn(**inputs))
    outputs.append(jax.tree.map(lambda x, rows=rows: np.asarray(x)[:rows], result))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)
