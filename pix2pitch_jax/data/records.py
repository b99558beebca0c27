"""The on-disk dataset format: one module shared by data_prep (writer) and the trainer (reader).

A dataset directory is a TensorFlow Datasets dataset in `array_record` format:

    <data_dir>/
      pix2pitch-train.array_record-00000-of-00004 ...   shards, written with group_size:1
      pix2pitch-validation.array_record-...              (random access for grain)
      pix2pitch-test.array_record-...
      dataset_info.json, features.json                   TFDS metadata
      pix2pitch_meta.json                                 audio parameters, eras, build info

Each record is one painting/clip pair with the features in `make_features`. The mel image follows
`audio/spectrogram.py` exactly; its parameters are in `pix2pitch_meta.json` under `mel_params`, so
generation inverts what was built. No TensorFlow is needed to write or read.

Datasets built with audio (`DatasetMeta.stores_audio`; data_prep's `--store_audio`, on for the
built-in demo corpora) also carry each clip's waveform as 16-bit PCM (`audio`, `clip_samples`
values): what a neural vocoder trains on (training/vocoder_task.py). Datasets without it read as
before, and everything but the vocoder ignores it.

Painting and mel are stored as raw bytes (uint8 pixels, float16 values) in uncompressed records:
decoding is a copy, about 5x less host CPU per example than the PNG paintings and zstd-compressed
records of the first format, for ~10-30 % more disk (docs/training.md, "Input pipeline"). Datasets
in the first format still read: TFDS decodes each dataset as its own features.json describes.

Where a dataset can be read: a local folder (or a bucket mounted with gcsfuse), or `gs://` itself
(array-record's reader has its own GCS client; each random read is one ranged request, so a local
copy is faster). Other URIs (s3://, ...) are refused in one line: `check_readable`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pix2pitch_jax.audio import spectrogram
from pix2pitch_jax.core import cli
from pix2pitch_jax.core import workdir as workdir_lib

DATASET_NAME = 'pix2pitch'
FILE_FORMAT = 'array_record'
META_FILE = 'pix2pitch_meta.json'
SPLITS = ('train', 'validation', 'test')
# The mel is stored as float16: 2 bytes/pixel, ample for values in [-1, 1] (step <= 5e-4).
MEL_DTYPE = np.float16
# The optional clip waveform: 16-bit PCM, full scale 32767 (~2 bytes a sample, 176 kB per 4 s clip
# at 22 050 Hz).
AUDIO_DTYPE = np.int16
AUDIO_FULL_SCALE = 32767.0
# Uncompressed: the painting and mel bytes barely compress, and zstd would cost decode time.
RECORD_OPTIONS = 'group_size:1,uncompressed'


def make_features(image_size: int, era_names: Sequence[str], audio_samples: int = 0):
  """The TFDS feature spec of one example; with `audio_samples` > 0 also the clip's waveform."""
  import tensorflow_datasets as tfds

  audio = {}
  if audio_samples > 0:
    audio['audio'] = tfds.features.Tensor(
      shape=(audio_samples,),
      dtype=AUDIO_DTYPE,
      encoding='bytes',
      doc='The clip the mel was computed from: mono 16-bit PCM at the dataset sample rate.',
    )
  return tfds.features.FeaturesDict(
    {
      **audio,
      'painting': tfds.features.Tensor(
        shape=(image_size, image_size, 3),
        dtype=np.uint8,
        encoding='bytes',
        doc='RGB painting, S x S, raw uint8 pixels.',
      ),
      'mel': tfds.features.Tensor(
        shape=(image_size, image_size),
        dtype=MEL_DTYPE,
        encoding='bytes',
        doc='Log-mel image in [-1, 1]; low frequencies in the last row.',
      ),
      'era': tfds.features.ClassLabel(names=list(era_names)),
      'painting_id': tfds.features.Text(doc='Stable id of the painting (source-relative path).'),
      'clip_source_id': tfds.features.Text(doc='Stable id of the source recording.'),
      'clip_offset_s': tfds.features.Scalar(dtype=np.float32, doc='Clip start in the recording.'),
      'notes_json': tfds.features.Text(
        doc='JSON list of [onset_s, duration_s, midi_pitch, velocity, program] when the '
        'notes of the clip are known (synesthesia demo), else "".'
      ),
    }
  )


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
  """What a dataset directory says about itself beyond TFDS' own metadata."""

  mel_params: spectrogram.MelParams
  era_names: tuple[str, ...]
  source: str = ''  # e.g. 'demo:synesthesia', 'wikiart+maestro'
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)
  stores_audio: bool = False  # every record has `audio`, the clip as 16-bit PCM

  @property
  def image_size(self) -> int:
    return self.mel_params.image_size

  def features(self):
    """The TFDS feature spec of this dataset's examples."""
    if self.stores_audio:
      return make_features(self.image_size, self.era_names, self.mel_params.clip_samples)
    return make_features(self.image_size, self.era_names)

  def to_json(self) -> str:
    return json.dumps(
      {
        'mel_params': self.mel_params.to_dict(),
        'era_names': list(self.era_names),
        'source': self.source,
        'extra': self.extra,
        'stores_audio': self.stores_audio,
      },
      indent=2,
      sort_keys=True,
    )

  @classmethod
  def from_json(cls, text: str) -> DatasetMeta:
    d = json.loads(text)
    return cls(
      mel_params=spectrogram.MelParams.from_dict(d['mel_params']),
      era_names=tuple(d['era_names']),
      source=d.get('source', ''),
      extra=d.get('extra', {}),
      stores_audio=bool(d.get('stores_audio', False)),
    )


def shard_path(
  data_dir: str | os.PathLike, split: str, index: int, num_shards: int
) -> pathlib.Path:
  return (
    pathlib.Path(data_dir) / f'{DATASET_NAME}-{split}.{FILE_FORMAT}-{index:05d}-of-{num_shards:05d}'
  )


def audio_to_pcm(y: Any) -> np.ndarray:
  """Float audio in [-1, 1] (clipped) -> the stored int16 PCM."""
  y = np.clip(np.asarray(y, np.float32), -1.0, 1.0)
  return np.round(y * AUDIO_FULL_SCALE).astype(AUDIO_DTYPE)


def pcm_to_audio(pcm: Any) -> np.ndarray:
  """The stored int16 PCM -> float32 audio in [-1, 1]."""
  return np.asarray(pcm, np.float32) / AUDIO_FULL_SCALE


def serialize_example(features, example: dict[str, Any]) -> bytes:
  """Encode one example dict (painting a uint8 (S, S, 3) array) to record bytes. An `audio`
  entry (float in [-1, 1], or int16 PCM) is stored as PCM when `features` has the field."""
  example = dict(example)
  if 'audio' in example:
    audio = np.asarray(example['audio'])
    example['audio'] = audio if audio.dtype == AUDIO_DTYPE else audio_to_pcm(audio)
  painting = np.asarray(example['painting'])
  if painting.dtype != np.uint8:
    raise ValueError(f'painting must be a uint8 array, got {painting.dtype}')
  example['painting'] = painting
  example['mel'] = np.asarray(example['mel'], MEL_DTYPE)
  example.setdefault('notes_json', '')
  return features.serialize_example(example)


def write_shard(path: str | os.PathLike, records: Iterable[bytes]) -> int:
  """Write serialized records to one ArrayRecord shard atomically; returns the record count.

  The shard is written under a temporary name and renamed at the end, so an interrupted write
  never leaves a file that looks finished.
  """
  from array_record.python import array_record_module

  path = pathlib.Path(path)
  tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
  writer = array_record_module.ArrayRecordWriter(str(tmp), RECORD_OPTIONS)
  count = 0
  try:
    for record in records:
      writer.write(record)
      count += 1
  finally:
    writer.close()
  os.replace(tmp, path)
  return count


def write_metadata(data_dir: str | os.PathLike, meta: DatasetMeta, description: str = '') -> None:
  """Write TFDS metadata (split sizes computed from the shards on disk) and our own meta file."""
  import tensorflow_datasets as tfds

  data_dir = pathlib.Path(data_dir)
  # Split sizes are counted here: TFDS' own counting reads shards through tf.data, which needs
  # TensorFlow for array_record files.
  tfds.folder_dataset.write_metadata(
    data_dir=data_dir,
    features=meta.features(),
    split_infos=_split_infos(data_dir),
    check_data=False,
    description=description or 'Paintings paired with log-mel clips of music of the same era.',
  )
  tmp = data_dir / f'.{META_FILE}.tmp'
  tmp.write_text(meta.to_json())
  os.replace(tmp, data_dir / META_FILE)


_SHARD_RE = re.compile(
  rf'^{DATASET_NAME}-(?P<split>[\w]+)\.{FILE_FORMAT}-(?P<index>\d{{5}})-of-(?P<num>\d{{5}})$'
)


def _shard_name(path: pathlib.Path) -> re.Match[str]:
  m = _SHARD_RE.match(path.name)
  if m is None:
    raise ValueError(f'{path} is not named like a finished shard ({_SHARD_RE.pattern})')
  return m


def finished_shards(data_dir: str | os.PathLike) -> dict[str, list[pathlib.Path]]:
  """Completed shard files per split (temporary files of interrupted writes are ignored)."""
  found: dict[str, list[pathlib.Path]] = {}
  for path in sorted(pathlib.Path(data_dir).iterdir()):
    m = _SHARD_RE.match(path.name)
    if m:
      found.setdefault(m['split'], []).append(path)
  return found


def _split_infos(data_dir: pathlib.Path):
  import tensorflow_datasets as tfds
  from array_record.python import array_record_module

  infos = []
  for split, paths in finished_shards(data_dir).items():
    nums = {int(_shard_name(p)['num']) for p in paths}
    if nums != {len(paths)}:
      raise ValueError(
        f'split {split!r} in {data_dir} is incomplete: {len(paths)} shard files, '
        f'names say {sorted(nums)}'
      )
    lengths = []
    for p in paths:
      reader = array_record_module.ArrayRecordReader(str(p))
      lengths.append(reader.num_records())
      reader.close()
    infos.append(
      tfds.core.SplitInfo(
        name=split, shard_lengths=lengths, num_bytes=sum(p.stat().st_size for p in paths)
      )
    )
  if not infos:
    raise ValueError(f'no shards found in {data_dir}')
  return infos


def read_meta(data_dir: str | os.PathLike) -> DatasetMeta:
  # Through epath: a small JSON file, readable wherever the dataset is (even a bucket).
  path = workdir_lib.as_path(data_dir) / META_FILE
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: is {data_dir} a dataset built by data_prep.build?')
  return DatasetMeta.from_json(path.read_text())


def write_split(
  data_dir: str | os.PathLike,
  split: str,
  examples: Sequence[dict[str, Any]],
  meta: DatasetMeta,
  num_shards: int = 1,
) -> None:
  """Write a whole small split in one go (tests and tiny corpora); then call `write_metadata`."""
  features = meta.features()
  pathlib.Path(data_dir).mkdir(parents=True, exist_ok=True)
  for i in range(num_shards):
    write_shard(
      shard_path(data_dir, split, i, num_shards),
      (serialize_example(features, ex) for ex in examples[i::num_shards]),
    )


# URI schemes the ArrayRecord reader opens itself; anything else must be mounted or copied.
READABLE_SCHEMES = ('gs',)
_MOUNT_OR_COPY = 'mount it (gcsfuse, s3fs, ...) or copy it to local disk, and pass that path'


class UnreadableDatasetError(cli.UserInputError):
  """A data_dir the ArrayRecord reader cannot open; the message says what to do instead."""


def unreadable_reason(data_dir: str | os.PathLike) -> str | None:
  """Why the ArrayRecord reader cannot open `data_dir` (a URI of another scheme), else None."""
  scheme = os.fspath(data_dir).split('://', 1)[0] if workdir_lib.is_uri(data_dir) else None
  if scheme is None or scheme in READABLE_SCHEMES:
    return None
  return (
    f'data_dir {os.fspath(data_dir)}: the ArrayRecord reader opens local paths and '
    f'{", ".join(s + "://" for s in READABLE_SCHEMES)} only; {_MOUNT_OR_COPY}'
  )


def check_readable(data_dir: str | os.PathLike) -> None:
  """UnreadableDatasetError (one line) when `unreadable_reason` has one."""
  reason = unreadable_reason(data_dir)
  if reason is not None:
    raise UnreadableDatasetError(reason)


class DecodedSource:
  """Random-access source of decoded examples for grain (a `grain.RandomAccessDataSource`).

  Wraps `tfds.data_source`, which reads the ArrayRecord shards and decodes them with no
  TensorFlow. Examples come back as numpy: painting uint8 (S, S, 3), mel float16 (S, S) as stored,
  era int64, strings as `str`. `png_paintings` is True for a dataset in the first format (PNG
  paintings), which reads correctly but costs several times the host CPU per example.
  """

  def __init__(self, data_dir: str | os.PathLike, split: str):
    import tensorflow_datasets as tfds

    check_readable(data_dir)
    self.data_dir = str(data_dir)
    self.split = split
    builder = tfds.builder_from_directory(self.data_dir)
    if split not in builder.info.splits:
      raise ValueError(f'split {split!r} not in {self.data_dir}: has {sorted(builder.info.splits)}')
    self._source = builder.as_data_source(split=split)
    self.png_paintings = isinstance(builder.info.features['painting'], tfds.features.Image)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    try:
      return _to_numpy(self._source[index])
    except RuntimeError as e:
      # An array-record too old for gs:// fails here ("open() failed ... gs://..."): say why.
      if not workdir_lib.is_uri(self.data_dir):
        raise
      raise UnreadableDatasetError(
        f'data_dir {self.data_dir}: the ArrayRecord reader could not open it '
        f'({str(e).splitlines()[0] if str(e) else type(e).__name__}); upgrade array-record, or '
        f'{_MOUNT_OR_COPY}'
      ) from e

  def __repr__(self) -> str:
    return f'DecodedSource({self.data_dir!r}, split={self.split!r}, len={len(self)})'

  # grain pickles sources into worker processes; the TFDS source is rebuilt there.
  def __getstate__(self):
    return {'data_dir': self.data_dir, 'split': self.split}

  def __setstate__(self, state):
    self.__init__(state['data_dir'], state['split'])


def _to_numpy(example: dict[str, Any]) -> dict[str, Any]:
  out = {}
  for key, value in example.items():
    if isinstance(value, bytes):
      value = value.decode('utf-8')
    elif key == 'mel':
      value = np.asarray(value, MEL_DTYPE)  # a no-op, except for first-format datasets
    out[key] = value
  return out


def open_split(data_dir: str | os.PathLike, split: str) -> DecodedSource:
  """A grain-ready random-access source over one split, every field decoded."""
  return DecodedSource(data_dir, split)


# The fields `TrainFieldsSource` can parse, and how.
TRAIN_FIELDS = ('painting', 'mel', 'era', 'audio')


class TrainFieldsSource:
  """Random-access training fields of a split in the raw format (by default painting uint8
  (S, S, 3), mel float16 (S, S) and era; `fields` may also name `audio`, int16 (clip_samples,)),
  parsed straight from each record's tf.train.Example: no decoding of the ids and notes that
  training never reads, no per-feature Python of TFDS' generic decoder. ~1.6x the examples per
  CPU-second of `DecodedSource` (bench/input_pipeline.py); the same arrays (tests).
  """

  png_paintings = False

  def __init__(
    self,
    data_dir: str | os.PathLike,
    split: str,
    fields: Sequence[str] = ('painting', 'mel', 'era'),
  ):
    import tensorflow_datasets as tfds

    self.data_dir, self.split, self.fields = str(data_dir), split, tuple(fields)
    unknown = set(self.fields) - set(TRAIN_FIELDS)
    if unknown:
      raise ValueError(f'unknown training fields {sorted(unknown)}; choose from {TRAIN_FIELDS}')
    builder = tfds.builder_from_directory(self.data_dir)
    if split not in builder.info.splits:
      raise ValueError(f'split {split!r} not in {self.data_dir}: has {sorted(builder.info.splits)}')
    missing = set(self.fields) - set(builder.info.features.keys())
    if missing:
      raise ValueError(f'{self.data_dir} stores no {", ".join(sorted(missing))}')
    mel = builder.info.features['mel']
    if not isinstance(mel, tfds.features.Tensor) or not isinstance(
      builder.info.features['painting'], tfds.features.Tensor
    ):
      raise ValueError(f'{self.data_dir} is not in the raw format (PNG paintings)')
    self._size = mel.shape[0]
    self._source = builder.as_data_source(
      split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
    )

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    from tensorflow_datasets.proto import tf_example_pb2

    feature = tf_example_pb2.Example.FromString(self._source[index]).features.feature
    s = self._size
    out: dict[str, Any] = {}
    for name in self.fields:
      if name == 'painting':
        out[name] = np.frombuffer(feature[name].bytes_list.value[0], np.uint8).reshape(s, s, 3)
      elif name == 'mel':
        out[name] = np.frombuffer(feature[name].bytes_list.value[0], MEL_DTYPE).reshape(s, s)
      elif name == 'audio':
        out[name] = np.frombuffer(feature[name].bytes_list.value[0], AUDIO_DTYPE)
      else:
        out[name] = feature[name].int64_list.value[0]
    return out

  def __repr__(self) -> str:
    return f'TrainFieldsSource({self.data_dir!r}, split={self.split!r}, len={len(self)})'

  def __getstate__(self):
    return {'data_dir': self.data_dir, 'split': self.split, 'fields': self.fields}

  def __setstate__(self, state):
    self.__init__(
      state['data_dir'], state['split'], state.get('fields', ('painting', 'mel', 'era'))
    )


def open_train_split(
  data_dir: str | os.PathLike,
  split: str = 'train',
  fields: Sequence[str] = ('painting', 'mel', 'era'),
) -> TrainFieldsSource | DecodedSource:
  """`fields` of a split, as fast as its format allows: `TrainFieldsSource` for the raw format,
  the full TFDS decode (`DecodedSource`, `png_paintings`) for the first format."""
  import tensorflow_datasets as tfds

  features = tfds.builder_from_directory(str(data_dir)).info.features
  if isinstance(features['painting'], tfds.features.Tensor):
    return TrainFieldsSource(data_dir, split, fields)
  return DecodedSource(data_dir, split)


def stores_audio(data_dir: str | os.PathLike) -> bool:
  """Whether the dataset's records carry the clip waveform (`audio`)."""
  return read_meta(data_dir).stores_audio


def available_splits(data_dir: str | os.PathLike) -> list[str]:
  import tensorflow_datasets as tfds

  check_readable(data_dir)
  return sorted(tfds.builder_from_directory(str(data_dir)).info.splits)


# Array fields and the dtype `read_split` stacks them to; the rest come back as lists.
_STACKED = {'painting': np.uint8, 'mel': np.float32, 'era': np.int32, 'audio': AUDIO_DTYPE}


def read_split(
  data_dir: str | os.PathLike,
  split: str,
  *,
  max_examples: int | None = None,
  fields: Sequence[str] = ('painting', 'mel', 'era'),
) -> dict[str, Any]:
  """A split (or its first `max_examples`) in memory: the one reader for whole-split jobs.

  Array fields (painting uint8 (N,S,S,3), mel float32 (N,S,S), era int32 (N,), audio int16
  (N, clip_samples) where stored) are stacked;
  string fields (painting_id, notes_json, ...) come back as lists of str ('' when absent).
  ValueError when the split has no examples.
  """
  source = open_split(data_dir, split)
  n = len(source) if max_examples is None else min(len(source), max_examples)
  if not n:
    raise ValueError(f'split {split!r} of {data_dir} has no examples')
  examples = [source[i] for i in range(n)]
  out: dict[str, Any] = {}
  for name in fields:
    if name in _STACKED:
      out[name] = np.stack([np.asarray(e[name]) for e in examples]).astype(_STACKED[name])
    else:
      out[name] = [e.get(name, '') or '' for e in examples]
  return out
