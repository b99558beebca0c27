"""The cloud-storage round trip of test_cloud_storage.py, run in its own process.

    python tests/gcs_round_trip.py DATA_DIR BUCKET

Trains the tiny config into gs://BUCKET/run for 2 steps, resumes it to 4, evaluates and generates
from it (the gallery into gs://BUCKET/gallery), reads the same split from a copy of the dataset in
gs://BUCKET/data, and prints what it saw as one JSON line. The emulator's address comes from the
environment (STORAGE_EMULATOR_HOST for gcsfs, TENSORSTORE_GCS_HTTP_URL for Orbax's tensorstore,
CLOUD_STORAGE_EMULATOR_ENDPOINT for array-record's reader): tensorstore reads its variable once
per process, hence a process of its own.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np
from etils import epath
from test_evaluation import TINY_CLASSIFIER

from pix2pitch_jax.data import records
from pix2pitch_jax.evaluation import job as evaluation_job
from pix2pitch_jax.generation import job as generation_job
from pix2pitch_jax.training import summaries, trainer

import conftest


def train(data_dir: str, workdir: str, steps: int) -> dict:
  config = conftest.tiny_config()
  config.data_dir, config.num_train_steps = data_dir, steps
  summary = trainer.train_and_evaluate(config, workdir)
  return {k: summary[k] for k in ('step', 'resumed_from', 'preempted')}


def copy_tree(src: epath.Path, dst: epath.Path) -> None:
  for path in src.iterdir():
    (dst / path.name).write_bytes(path.read_bytes())


def main(data_dir: str, bucket: str) -> None:
  logging.getLogger('gcsfs').setLevel(logging.ERROR)  # its bucket-type probe, per request
  run, gallery = f'gs://{bucket}/run', f'gs://{bucket}/gallery'
  clock = time.perf_counter()
  seconds = {}

  def lap(name: str) -> None:
    nonlocal clock
    seconds[name], clock = round(time.perf_counter() - clock, 1), time.perf_counter()

  report: dict = {'seconds': seconds, 'first': train(data_dir, run, 2)}
  lap('train')
  report['resumed'] = train(data_dir, run, 4)
  lap('resume')
  events = summaries.read_events(f'{run}/tensorboard')
  report['scalar_steps'] = sorted(
    {e.step for e in events for v in e.summary.value if v.tag == 'G_L1'}
  )
  report['image_tags'] = sorted(
    {v.tag for e in events for v in e.summary.value if v.HasField('image')}
  )
  evaluation = evaluation_job.evaluate(
    run, split='test', max_examples=3, griffin_lim_iters=2, classifier_config=TINY_CLASSIFIER
  )
  lap('evaluate')
  report['evaluation'] = {k: evaluation[k] for k in ('step', 'metrics_json', 'report_md')}
  report['eval_tags'] = sorted(
    {v.tag for e in summaries.read_events(f'{run}/tensorboard/eval') for v in e.summary.value}
  )
  generated = generation_job.generate(
    run, gallery, split='test', max_examples=2, griffin_lim_iters=2
  )
  lap('generate')
  report['generation'] = {k: generated[k] for k in ('step', 'count', 'index_html', 'manifest')}

  remote = f'gs://{bucket}/data'
  copy_tree(epath.Path(data_dir), epath.Path(remote))
  local, cloud = records.read_split(data_dir, 'test'), records.read_split(remote, 'test')
  report['dataset_equal'] = all(np.array_equal(local[k], cloud[k]) for k in local)
  lap('dataset')
  print(json.dumps(report))


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
