"""Fixed-size batches over in-memory arrays: the one home for padding a batch.

A jitted function compiles once per input shape, so every caller that maps a model over a set of
examples (generation, evaluation, the era classifier, Griffin-Lim) cuts it into batches of one
size. The last batch is padded by repeating its final row (real data, so no NaN or odd
statistics can come from the padding) and carries a `mask` that is 1.0 on real rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

MASK = 'mask'


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  """`x` with its last row repeated until it has `rows` rows."""
  x = np.asarray(x)
  if len(x) > rows:
    raise ValueError(f'cannot pad {len(x)} rows down to {rows}')
  if len(x) == rows:
    return x
  return np.concatenate([x, np.repeat(x[-1:], rows - len(x), axis=0)])


def num_rows(arrays: Mapping[str, np.ndarray]) -> int:
  """The common leading dimension of `arrays` (ValueError if they disagree or are empty)."""
  sizes = {k: len(v) for k, v in arrays.items()}
  if not sizes:
    raise ValueError('no arrays to batch')
  if len(set(sizes.values())) != 1:
    raise ValueError(f'arrays disagree on the number of rows: {sizes}')
  return next(iter(sizes.values()))


def padded_batches(
  arrays: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
  """Batches of exactly `batch_size` rows over the leading axis, each with a float32 `mask`.

  Yields nothing for zero rows. The real rows of a batch are `batch[MASK] > 0` (a prefix).
  """
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  n = num_rows(arrays)
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    batch = {k: pad_rows(np.asarray(v)[start:stop], batch_size) for k, v in arrays.items()}
    batch[MASK] = (np.arange(batch_size) < stop - start).astype(np.float32)
    yield batch
