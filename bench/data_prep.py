"""data_prep throughput: clips/s with 1 worker vs all workers, and demo corpus build times.

(eras and squiggles build once each, with all workers.)

  .venv/bin/python bench/data_prep.py [--out=/tmp/p2p_bench]

The worker comparison builds the same synesthesia corpus (default size) twice from scratch, so
both figures include process start-up; the ratio is what parallel workers buy on this machine.
"""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from data_prep import demos, workers


def _build(name, out, n_workers, **kw):
  shutil.rmtree(out, ignore_errors=True)
  start = time.perf_counter()
  report = demos.build_demo(name, out, workers=n_workers, progress=False, **kw)
  wall = time.perf_counter() - start
  examples = sum(c['examples'] for c in report['counts'].values())
  return report, wall, examples


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--out', default='/tmp/p2p_bench')
  args = parser.parse_args()
  cores = workers.resolve_workers(None)
  print(f'machine: {cores} usable cores')
  rates = {}
  for n in (1, cores):
    report, wall, examples = _build('synesthesia', f'{args.out}/syn_w{n}', n)
    rates[n] = report['throughput']['clips_per_s']
    print(
      f'synesthesia, {n} worker(s): {examples} examples, writing {rates[n]:.1f} clips/s, '
      f'build wall {wall:.1f} s'
    )
  print(f'speed-up {cores} workers vs 1: {rates[cores] / rates[1]:.2f}x')
  report, wall, examples = _build('eras', f'{args.out}/eras', cores)
  print(
    f'eras demo, {cores} worker(s): {examples} examples (music21 -> MIDI -> FluidSynth -> '
    f'mel), build wall {wall:.1f} s, writing {report["throughput"]["clips_per_s"]:.1f} clips/s'
  )
  start = time.perf_counter()
  demos.build_demo('eras', f'{args.out}/eras', workers=cores, progress=False)
  print(f'eras demo again on the complete directory (resume): {time.perf_counter() - start:.2f} s')
  report, wall, examples = _build('squiggles', f'{args.out}/squiggles', cores)
  print(
    f'squiggles demo, {cores} worker(s): {examples} examples (64 px, 1 s notes), build wall '
    f'{wall:.1f} s, writing {report["throughput"]["clips_per_s"]:.1f} clips/s'
  )


if __name__ == '__main__':
  main()
