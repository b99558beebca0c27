#!/usr/bin/env bash
# Multi-host check on one machine: two processes (jax.distributed over a loopback coordinator,
# 2 CPU devices each) train the tiny config for a few steps; a single process with 4 CPU devices
# trains the same steps; the per-step losses must agree (same global batches, same program).
#
#   scripts/multihost_check.sh DATA_DIR [WORKDIR]   # DATA_DIR: a 32x32 records dataset
#
# Exits 0 and prints "multihost_check OK" when they match.
set -euo pipefail
DATA_DIR=${1:?usage: scripts/multihost_check.sh DATA_DIR [WORKDIR]}
WORKDIR=$(realpath -m "${2:-$(mktemp -d)}")
mkdir -p "$WORKDIR"
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}  # not realpath: the venv python is a symlink
PORT=${PORT:-$(( 20000 + RANDOM % 20000 ))}
STEPS=${STEPS:-3}
cd "$REPO"
COMMON=(--config=experiments/tiny.py "--config.data_dir=$DATA_DIR" "--config.num_train_steps=$STEPS"
        --config.checkpoint_every_steps=2 --config.log_every_steps=1)
export JAX_PLATFORMS=cpu

pids=()
# No persistent compile cache for the two processes: on XLA:CPU its key differs between the
# processes of one job and only process 0 writes entries, so with a warm cache process 0 starts
# at once while process 1 compiles for minutes on a loaded machine, and the first collective's
# set-up times out.
for id in 0 1; do
  JAX_ENABLE_COMPILATION_CACHE=false JAX_COORDINATOR_ADDRESS=127.0.0.1:$PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$id \
  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    "$PY" -m pix2pitch_jax.train "${COMMON[@]}" --workdir="$WORKDIR/multi" \
    >"$WORKDIR/process_$id.log" 2>&1 &
  pids+=($!)
done
XLA_FLAGS=--xla_force_host_platform_device_count=4 \
  "$PY" -m pix2pitch_jax.train "${COMMON[@]}" --workdir="$WORKDIR/single" >"$WORKDIR/single.log" 2>&1 ||
  { echo "the single-process run failed:"; tail -n 20 "$WORKDIR/single.log"; exit 1; }
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "a process failed; logs in $WORKDIR"; for f in "$WORKDIR"/process_*.log; do tail -n 20 "$f"; done; exit 1; }
done

"$PY" - "$WORKDIR" <<'PYEOF'
import json, sys
import numpy as np
workdir = sys.argv[1]
def losses(name):
  rows = [json.loads(l) for l in open(f'{workdir}/{name}/metrics.jsonl')]
  return [[r[k] for k in ('G_GAN', 'G_L1', 'D_real', 'D_fake')] for r in rows if 'G_GAN' in r]
multi, single = losses('multi'), losses('single')
print('2 processes x 2 devices:', np.round(multi, 5).tolist())
print('1 process  x 4 devices:', np.round(single, 5).tolist())
assert len(multi) == len(single) > 0, (len(multi), len(single))
np.testing.assert_allclose(multi, single, rtol=1e-5)
print('multihost_check OK')
PYEOF
