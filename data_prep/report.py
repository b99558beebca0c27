"""The build report: a JSON file for programs and a Markdown summary for people."""

from __future__ import annotations

import collections
import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

REPORT_JSON = 'data_prep_report.json'
SUMMARY_MD = 'summary.md'
_LISTED = 25  # skipped/unmapped entries shown in the Markdown summary (all are in the JSON)


def reason_counts(skipped: Sequence[Mapping[str, str]]) -> dict[str, int]:
  """Skips grouped by the reason's first words ('truncated: ...' -> 'truncated')."""
  counts = collections.Counter(s['reason'].split(':')[0] for s in skipped)
  return dict(counts.most_common())


def write(out_dir: str | os.PathLike, report: Mapping[str, Any]) -> None:
  out_dir = pathlib.Path(out_dir)
  _atomic_write(out_dir / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True))
  _atomic_write(out_dir / SUMMARY_MD, summary_markdown(report))


def summary_markdown(report: Mapping[str, Any]) -> str:
  eras = report['era_names']
  lines = [
    f'# Dataset build: {report["source"]}',
    '',
    f'Output: `{report["out_dir"]}`; formats: {report["formats"]}.',
    '',
    '## Examples per split and era',
    '',
    '| split | ' + ' | '.join(eras) + ' | total | paintings | recordings |',
    '|---' * (len(eras) + 4) + '|',
  ]
  for split, c in report['counts'].items():
    lines.append(
      f'| {split} | '
      + ' | '.join(str(c['by_era'].get(e, 0)) for e in eras)
      + f' | {c["examples"]} | {c["paintings"]} | {c["recordings"]} |'
    )
  mel = report['mel_params']
  lines += [
    '',
    '## Audio parameters',
    '',
    f'{mel["sample_rate"]} Hz, {mel["clip_seconds"]} s clips '
    f'(hop between clips {report["options"].get("clip_hop_seconds")} s), '
    f'n_fft {mel["n_fft"]}, hop {mel["hop_length"]} samples, {mel["n_mels"]} mel bands x '
    f'{mel["n_frames"]} frames, dB range [{mel["min_db"]}, {mel["max_db"]}].',
    '',
    '## Inputs',
    '',
  ]
  lines += [f'- {k.replace("_", " ")}: {v}' for k, v in report['inputs'].items()]
  for title, key in (
    ('Unmapped (no era in the tables)', 'unmapped'),
    ('Mapped to an era outside the era set', 'outside_era_set'),
  ):
    lines += ['', f'## {title}', '']
    for kind, counts in report[key].items():
      shown = ', '.join(f'{label} ({n})' for label, n in list(counts.items())[:_LISTED])
      lines.append(f'- {kind}: {shown or "none"}')
  skipped = report['skipped']
  lines += ['', f'## Skipped: {len(skipped)}', '']
  lines += [f'- {reason}: {n}' for reason, n in report['skipped_by_reason'].items()]
  lines += [f'- `{s["id"]}` ({s["kind"]}): {s["reason"]}' for s in skipped[:_LISTED]]
  if len(skipped) > _LISTED:
    lines.append(f'- ... {len(skipped) - _LISTED} more in {REPORT_JSON}')
  t = report['throughput']
  lines += [
    '',
    '## Throughput',
    '',
    f'{t["examples_written"]} examples in {t["seconds"]:.1f} s with {t["workers"]} '
    f'worker(s): {t["clips_per_s"]:.1f} clips/s; shards written {report["shards"]["written"]}, '
    f'reused {report["shards"]["reused"]} of {report["shards"]["planned"]}.',
    '',
  ]
  return '\n'.join(lines)


def _atomic_write(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(text)
  os.replace(tmp, path)
