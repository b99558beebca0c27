"""Mesh, batch and parameter shardings on 8 virtual CPU devices."""

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
  assert sharding.fsdp_spec((4, 4, 3, 64), 8) == P(None, None, None, 'data')
  assert sharding.fsdp_spec((3,), 8) == P()  # not divisible: replicated
  assert sharding.fsdp_spec((), 8) == P()
  assert sharding.fsdp_spec((16, 8), 1) == P()
  mesh = sharding.make_mesh()
  tree = {
    'w': jax.ShapeDtypeStruct((16, 24), np.float32),
    'b': jax.ShapeDtypeStruct((5,), np.float32),
  }
  fsdp = sharding.state_shardings(tree, mesh, fsdp=True)
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
