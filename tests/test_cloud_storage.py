"""Workdirs on cloud storage: train -> resume -> evaluate -> generate against a local GCS emulator,
with nothing of the run written to local disk; and the one-line refusal of unreadable data_dirs.

The emulator (`gcp-storage-emulator`, a dev dependency) runs in memory on 127.0.0.1
(tests/gcs_emulator.py); the round trip runs in a process of its own (tests/gcs_round_trip.py)
because tensorstore reads its endpoint once per process.
"""

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from pix2pitch_jax.core import configs
from pix2pitch_jax.data import records
from pix2pitch_jax.training import loop

from conftest import tiny_config

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
BUCKET = 'pix2pitch-test'


def _get(url: str) -> bytes:
  with urllib.request.urlopen(url, timeout=10) as response:
    return response.read()


@pytest.fixture
def gcs_endpoint(monkeypatch, tmp_path_factory):
  """A fresh in-memory emulator with one bucket; its address in every variable the libraries
  read (set before any of them is used: gcsfs reads its variable when it creates a filesystem,
  tensorstore and array-record's GCS client when they first connect)."""
  pytest.importorskip('gcp_storage_emulator')
  import portpicker

  port = portpicker.pick_unused_port()
  endpoint = f'http://127.0.0.1:{port}'
  log = tmp_path_factory.mktemp('gcs_emulator') / 'emulator.log'
  with open(log, 'wb') as out:
    emulator = subprocess.Popen(
      [sys.executable, str(TESTS / 'gcs_emulator.py'), str(port), BUCKET],
      stdout=out,
      stderr=subprocess.STDOUT,
    )
  try:
    deadline = time.monotonic() + 60
    while True:
      try:
        _get(endpoint + '/')
        break
      except OSError:
        if emulator.poll() is not None or time.monotonic() > deadline:
          pytest.fail(f'the GCS emulator did not start: {log.read_text()[-2000:]}')
        time.sleep(0.2)
    for name in ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL'):
      monkeypatch.setenv(name, endpoint)
    monkeypatch.setenv('CLOUD_STORAGE_EMULATOR_ENDPOINT', endpoint)  # array-record (C++ client)
    # gcsfs would ask the emulator, which lacks that API, for each bucket's layout on every call.
    monkeypatch.setenv('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')
    yield endpoint
  finally:
    emulator.terminate()
    try:
      emulator.wait(timeout=10)
    except subprocess.TimeoutExpired:
      emulator.kill()
      emulator.wait()


def bucket_objects(endpoint: str, bucket: str) -> dict[str, int]:
  """Object name -> size, from the emulator's JSON API (no gcsfs in this process)."""
  found: dict[str, int] = {}
  token = ''
  while True:
    query = urllib.parse.urlencode({'pageToken': token} if token else {})
    page = json.loads(_get(f'{endpoint}/storage/v1/b/{bucket}/o?{query}'))
    found.update({item['name']: int(item['size']) for item in page.get('items', [])})
    token = page.get('nextPageToken', '')
    if not token:
      return found


def object_text(endpoint: str, bucket: str, name: str) -> str:
  quoted = urllib.parse.quote(name, safe='')
  return _get(f'{endpoint}/storage/v1/b/{bucket}/o/{quoted}?alt=media').decode()


@pytest.mark.slow
def test_train_resume_evaluate_generate_on_gcs(gcs_endpoint, tiny_dataset, tmp_path):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
  result = subprocess.run(
    [sys.executable, str(TESTS / 'gcs_round_trip.py'), tiny_dataset, BUCKET],
    cwd=tmp_path,  # a gs:// path mistaken for a local one would land here
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  print('round trip seconds:', report['seconds'])  # shown with -s

  assert report['first'] == {'step': 2, 'resumed_from': None, 'preempted': False}
  assert report['resumed'] == {'step': 4, 'resumed_from': 2, 'preempted': False}
  assert report['scalar_steps'] == [1, 2, 3, 4]  # both runs' summaries, read back from GCS
  assert {'painting', 'target_mel', 'generated_mel'} <= set(report['image_tags'])
  assert {'model/l1_db', 'model/mel', 'real/audio_0'} <= set(report['eval_tags'])
  assert report['evaluation']['step'] == 4
  assert report['evaluation']['metrics_json'] == f'gs://{BUCKET}/run/eval/metrics_4.json'
  assert report['generation']['step'] == 4 and report['generation']['count'] == 2
  assert report['generation']['index_html'] == f'gs://{BUCKET}/gallery/index.html'
  assert report['dataset_equal']

  objects = bucket_objects(gcs_endpoint, BUCKET)
  names = set(objects)
  for name in (
    'run/config.json',
    'run/metrics.jsonl',
    'run/eval/metrics_4.json',
    'run/eval/report_4.md',
    'run/era_classifier/classifier.json',
    'gallery/index.html',
    'gallery/manifest.json',
  ):
    assert objects.get(name, 0) > 0, (name, sorted(names))
  for prefix in (
    'run/checkpoints/2/',
    'run/checkpoints/4/',
    'run/tensorboard/events.out.tfevents.',
    'run/tensorboard/eval/events.out.tfevents.',
    'run/era_classifier/params/',
  ):
    assert any(n.startswith(prefix) for n in names), (prefix, sorted(names))
  wavs = sorted(n for n in names if n.startswith('gallery/') and n.endswith('.wav'))
  assert len(wavs) == 4 and sum('_reference' in n for n in wavs) == 2  # generated + references
  assert sum(n.startswith('gallery/') and n.endswith('_mel.png') for n in names) == 4
  # The resumed run kept the first run's lines (GCS objects cannot be appended to).
  logged = [
    json.loads(line) for line in object_text(gcs_endpoint, BUCKET, 'run/metrics.jsonl').splitlines()
  ]
  assert [r['step'] for r in logged if 'G_L1' in r] == [1, 2, 3, 4]
  assert [r['step'] for r in logged if 'val_L1' in r] == [2, 4]  # each run's final evaluation
  manifest = json.loads(object_text(gcs_endpoint, BUCKET, 'gallery/manifest.json'))
  assert manifest['workdir'] == f'gs://{BUCKET}/run' and len(manifest['entries']) == 2

  assert list(tmp_path.iterdir()) == []  # nothing of the run on local disk
  assert not (REPO / 'gs:').exists()


@pytest.mark.parametrize('data_dir', ['s3://bucket/pix2pitch', 'hf://datasets/x'])
def test_a_data_dir_arrayrecord_cannot_open_is_refused_in_one_line(data_dir, tmp_path):
  config = tiny_config()
  config.data_dir = data_dir
  with pytest.raises(configs.ConfigError) as error:
    loop.validate_common(config)
  message = str(error.value)
  assert '\n' not in message and data_dir in message and 'gcsfuse' in message
  with pytest.raises(records.UnreadableDatasetError, match='copy it to local disk'):
    records.open_split(data_dir, 'train')
  assert records.unreadable_reason('gs://bucket/data') is None
  assert records.unreadable_reason(tmp_path) is None


def test_the_demo_folder_must_be_local():
  from pix2pitch_jax.core import cli
  from pix2pitch_jax.demo import pipeline

  with pytest.raises(cli.UserInputError, match='must be local'):
    pipeline.run_demo('synesthesia', 'gs://bucket/demo')
