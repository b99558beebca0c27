"""Mesh, batch and parameter shardings on 8 virtual CPU devices (and one two-process mesh)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pix2pitch_jax.runtime import sharding


def test_mesh_is_one_auto_data_axis_over_all_devices():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ('data',) and mesh.size == jax.device_count() == 8
  assert mesh.axis_types == (jax.sharding.AxisType.Auto,)
  assert sharding.make_mesh(2).size == 2
  with pytest.raises(ValueError, match='num_devices'):
    sharding.make_mesh(9)


def test_shard_batch_splits_the_leading_dim():
  mesh = sharding.make_mesh()
  batch = {'x': np.arange(8 * 3, dtype=np.float32).reshape(8, 3), 'era': np.arange(8)}
  out = sharding.shard_batch(batch, mesh)
  assert out['x'].shape == (8, 3) and out['x'].sharding == sharding.data_sharding(mesh)
  assert {s.data.shape for s in out['x'].addressable_shards} == {(1, 3)}
  np.testing.assert_array_equal(np.asarray(out['x']), batch['x'])


def test_fsdp_shards_the_largest_divisible_dim():
  assert sharding.fsdp_spec((4, 4, 64, 128), 8) == P(None, None, None, 'data')
  assert sharding.fsdp_spec((4, 4, 3, 64), 8, min_size=0) == P(None, None, None, 'data')
  assert sharding.fsdp_spec((3,), 8) == P()  # not divisible: replicated
  assert sharding.fsdp_spec((), 8) == P()
  assert sharding.fsdp_spec((16, 8), 1) == P()
  mesh = sharding.make_mesh()
  tree = {
    'w': jax.ShapeDtypeStruct((16, 24), np.float32),
    'b': jax.ShapeDtypeStruct((5,), np.float32),
  }
  fsdp = sharding.state_shardings(tree, mesh, fsdp=True, min_size=0)
  assert fsdp['w'].spec == P(None, 'data') and fsdp['b'].spec == P()
  assert sharding.state_shardings(tree, mesh, fsdp=False)['w'].spec == P()


def test_check_global_batch():
  mesh = sharding.make_mesh()
  sharding.check_global_batch(16, mesh)
  with pytest.raises(ValueError, match='divisible'):
    sharding.check_global_batch(12, mesh)


def test_local_mesh_and_host_rows_of_one_process():
  assert sharding.make_mesh(local=True).devices.tolist() == jax.local_devices()
  assert sharding.make_mesh(3, local=True).size == 3
  np.testing.assert_array_equal(sharding.host_rows(5), np.arange(5))
  assert sharding.is_main_process()
  sharding.barrier('a no-op with one process')


def test_fsdp_keeps_small_leaves_replicated():
  """BatchNorm vectors and biases stay replicated under FSDP; kernels of 2**14+ elements shard."""
  assert sharding.fsdp_spec((512,), 8) == P()  # 512 < 2**14
  assert sharding.fsdp_spec((4, 4, 32, 64), 8) == P(None, None, None, 'data')  # 32768
  assert sharding.fsdp_spec((4, 4, 16, 32), 8) == P()  # 8192
  assert sharding.fsdp_spec((4, 4, 16, 32), 8, min_size=0) == P(None, None, None, 'data')
  mesh = sharding.make_mesh()
  tree = {
    'kernel': jax.ShapeDtypeStruct((4, 4, 64, 64), np.float32),
    'bn_scale': jax.ShapeDtypeStruct((64,), np.float32),
  }
  out = sharding.state_shardings(tree, mesh, fsdp=True)
  assert out['kernel'].spec == P(None, None, None, 'data') and out['bn_scale'].spec == P()
  everything = sharding.state_shardings(tree, mesh, fsdp=True, min_size=0)
  assert everything['bn_scale'].spec == P('data')


class FakeDevice:
  """A device of a TPU slice as `mesh_utils` sees it (CPU devices have no slice_index)."""

  platform = device_kind = 'cpu'

  def __init__(self, id, slice_index):
    self.id, self.slice_index, self.process_index = id, slice_index, slice_index

  def __repr__(self):
    return f'd{self.id}/s{self.slice_index}'


def test_hybrid_mesh_orders_devices_slice_by_slice():
  # Slices interleaved in the device list: the hybrid order groups each slice's devices.
  devices = [FakeDevice(i, i % 2) for i in range(8)]
  order = sharding.hybrid_devices(devices, 2)
  assert order.shape == (8,)
  assert [d.slice_index for d in order] == [0, 0, 0, 0, 1, 1, 1, 1]
  assert [d.id for d in order] == [0, 2, 4, 6, 1, 3, 5, 7]
  assert sharding.dcn_units(devices) == (2, 'slices')
  with pytest.raises(ValueError, match=r'span 2 slices; set it to 2'):
    sharding.hybrid_devices(devices, 4)


def test_dcn_data_parallelism_on_one_slice_is_a_clear_error():
  # 8 virtual CPU devices in one process: one DCN unit.
  assert sharding.dcn_units(jax.devices()) == (1, 'processes')
  with pytest.raises(ValueError, match=r'span 1 processes \(one slice needs no DCN axis'):
    sharding.make_mesh(dcn_data_parallelism=2)
  with pytest.raises(ValueError, match='uses every device'):
    sharding.make_mesh(4, dcn_data_parallelism=2)
  # 1 is the single-slice mesh of jax.make_mesh.
  assert sharding.make_mesh(dcn_data_parallelism=1).devices.tolist() == jax.devices()


def test_hybrid_mesh_over_two_processes(tmp_path):
  """Two loopback processes x 2 CPU devices: processes are the DCN units; a data-sharded sum
  over the hybrid mesh is right on both."""
  script = tmp_path / 'hybrid.py'
  script.write_text(HYBRID_SCRIPT)
  port = 20000 + os.getpid() % 20000
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_PLATFORMS')}
  env.update(
    JAX_PLATFORMS='cpu',
    XLA_FLAGS='--xla_force_host_platform_device_count=2',
    JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
    JAX_NUM_PROCESSES='2',
    PYTHONPATH=REPO,
  )
  procs = [
    subprocess.Popen(
      [sys.executable, str(script)],
      env=dict(env, JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  try:
    outputs = [p.communicate(timeout=240)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
    assert out.strip().splitlines()[-1] == 'hybrid OK', out[-3000:]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYBRID_SCRIPT = """
import jax, numpy as np
from pix2pitch_jax.runtime import sharding
sharding.maybe_initialize_distributed()
mesh = sharding.make_mesh(dcn_data_parallelism=2)
assert mesh.size == 4 and mesh.axis_types == (jax.sharding.AxisType.Auto,)
assert [d.process_index for d in mesh.devices] == [0, 0, 1, 1], mesh.devices
rows = np.arange(4, dtype=np.float32).reshape(4, 1)
local = rows[2 * jax.process_index() : 2 * jax.process_index() + 2]
x = sharding.shard_batch({'x': local}, mesh)['x']
total = jax.jit(lambda x: x.sum(), out_shardings=sharding.replicated(mesh))(x)
assert float(total) == 6.0, float(total)
try:
  sharding.make_mesh(dcn_data_parallelism=3)
except ValueError as e:
  assert 'span 2 processes' in str(e), e
else:
  raise AssertionError('dcn_data_parallelism=3 over 2 processes was accepted')
print('hybrid OK')
"""
