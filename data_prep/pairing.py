"""Splits without leakage, painting/clip pairing, and the shard plan.

Leakage: a painting, and a source recording (with all its clips), belongs to exactly one split.
Splits are assigned per era (so every era with >= 3 items appears in every split) by ranking the
items on a stable hash of their id: the same id lands in the same split on every run and machine,
whatever the worker count or seed.

Pairing: each painting gets K clips of its era *from its own split*. The clip pool of each
(era, split) is shuffled with the seed and dealt round-robin, so clips are used evenly and the
result is deterministic given the seed.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

SPLITS = ('train', 'validation', 'test')


def stable_hash(text: str, salt: str = '') -> int:
  """A 64-bit hash that, unlike hash(), is the same in every process and Python version."""
  return int.from_bytes(hashlib.sha1(f'{salt}\x00{text}'.encode()).digest()[:8], 'big')


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
  """(train, validation, test) counts for n items of one era; small eras still get each split."""
  n_val = round(n * val_fraction)
  n_test = round(n * test_fraction)
  if val_fraction > 0 and n >= 2:
    n_val = max(n_val, 1)
  if test_fraction > 0 and n >= 3:
    n_test = max(n_test, 1)
  while n_val + n_test >= n and n > 0:  # train keeps at least one item
    if n_test >= n_val and n_test > 0:
      n_test -= 1
    else:
      n_val -= 1
  return n - n_val - n_test, n_val, n_test


def assign_splits(
  ids_by_era: Mapping[str, Sequence[str]], val_fraction: float, test_fraction: float
) -> dict[str, str]:
  """id -> split name, grouped by era, ranked by stable hash of the id."""
  out = {}
  for era in sorted(ids_by_era):
    ranked = sorted(set(ids_by_era[era]), key=lambda i: (stable_hash(i, 'split'), i))
    n_train, n_val, _ = split_sizes(len(ranked), val_fraction, test_fraction)
    for rank, item_id in enumerate(ranked):
      out[item_id] = (
        'train' if rank < n_train else 'validation' if rank < n_train + n_val else 'test'
      )
  return out


@dataclasses.dataclass(frozen=True)
class Example:
  """One planned record: everything a worker needs to materialise it."""

  painting_id: str
  painting: Any  # a painting reference with .load(size, mode)
  clip_source_id: str
  clip: Any  # a clip reference with .waveform(params) and .notes_json()
  clip_offset_s: float
  era: int  # index into the dataset's era names


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A clip available for pairing."""

  source_id: str
  offset_s: float
  ref: Hashable


def pair(
  paintings: Sequence[tuple[str, Any, str, str]],
  clips: Sequence[tuple[Candidate, str, str]],
  era_names: Sequence[str],
  k: int,
  seed: int,
) -> tuple[dict[str, list[Example]], list[tuple[str, str]]]:
  """Pair each painting with `k` clips of its era and split.

  Args:
    paintings: (painting_id, ref, era, split), in the order records should be written.
    clips: (candidate, era, split).

  Returns:
    examples per split, and (painting_id, reason) for paintings that found no clip.
  """
  if k < 1:
    raise ValueError(f'clips per painting must be >= 1, got {k}')
  pools: dict[tuple[str, str], list[Candidate]] = collections.defaultdict(list)
  for candidate, era, split in clips:
    pools[era, split].append(candidate)
  for key, shuffled in pools.items():
    shuffled.sort(key=lambda c: (c.source_id, c.offset_s))
    rng = np.random.default_rng([seed, stable_hash('/'.join(key), 'pool') % 2**32])
    rng.shuffle(shuffled)
  dealt: collections.Counter[tuple[str, str]] = collections.Counter()
  examples: dict[str, list[Example]] = {split: [] for split in SPLITS}
  unpaired: list[tuple[str, str]] = []
  era_index = {name: i for i, name in enumerate(era_names)}
  for painting_id, ref, era, split in paintings:
    pool = pools.get((era, split))
    if not pool:
      unpaired.append((painting_id, f'no usable clips of era {era!r} in split {split!r}'))
      continue
    for _ in range(k):
      clip = pool[dealt[era, split] % len(pool)]
      dealt[era, split] += 1
      examples[split].append(
        Example(painting_id, ref, clip.source_id, clip.ref, clip.offset_s, era_index[era])
      )
  return examples, unpaired


@dataclasses.dataclass(frozen=True)
class ShardPlan:
  split: str
  index: int
  num_shards: int
  examples: tuple[Example, ...]


def plan_shards(examples: Mapping[str, Sequence[Example]], shard_size: int) -> list[ShardPlan]:
  """Cut each split into ceil(n / shard_size) near-equal shards, in order."""
  if shard_size < 1:
    raise ValueError(f'shard size must be >= 1, got {shard_size}')
  plans = []
  for split in SPLITS:
    items = list(examples.get(split, ()))
    if not items:
      continue
    num = -(-len(items) // shard_size)
    bounds = np.linspace(0, len(items), num + 1).round().astype(int)
    plans += [ShardPlan(split, i, num, tuple(items[bounds[i] : bounds[i + 1]])) for i in range(num)]
  return plans
