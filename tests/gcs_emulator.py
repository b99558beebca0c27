"""A local GCS for tests: `gcp-storage-emulator`, in memory, on 127.0.0.1 only.

    python tests/gcs_emulator.py PORT BUCKET

Two things are changed from the emulator as installed, both before its server module is imported:
- its media downloads carry no `x-goog-generation` header. Real GCS always sends it; tensorstore
  (Orbax's storage layer) reads it and, without it, fails a checkpoint with many arrays
  ("Malformed StorageGeneration" while updating the OCDBT manifest). It is added here.
- its handler writes headers and body in separate segments with Nagle's algorithm on, so every
  response waits for the client's delayed ACK (~40 ms); a checkpoint makes hundreds of requests.
  TCP_NODELAY is set on its connections.
"""

from __future__ import annotations

import sys


def _add_generation_headers() -> None:
  from gcp_storage_emulator.exceptions import NotFound
  from gcp_storage_emulator.handlers import objects

  download = objects.download

  def download_with_generation(request, response, storage, *args, **kwargs):
    download(request, response, storage, *args, **kwargs)
    try:
      obj = storage.get_file_obj(request.params['bucket_name'], request.params['object_id'])
    except NotFound:
      return
    response['x-goog-generation'] = str(obj['generation'])
    response['x-goog-metageneration'] = str(obj['metageneration'])

  # Must happen before gcp_storage_emulator.server is imported: its route table holds the
  # function objects themselves.
  objects.download = download_with_generation


def main(port: int, bucket: str) -> None:
  _add_generation_headers()
  from gcp_storage_emulator import __main__ as emulator
  from gcp_storage_emulator import server

  server.RequestHandler.disable_nagle_algorithm = True

  emulator.main(
    [
      'start',
      '--host=127.0.0.1',
      f'--port={port}',
      f'--default-bucket={bucket}',
      '--in-memory',
      '--quiet',
    ]
  )


if __name__ == '__main__':
  main(int(sys.argv[1]), sys.argv[2])
