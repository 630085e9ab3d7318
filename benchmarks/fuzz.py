"""A larger fuzzing campaign on session NWB files (issue 7).

Mutates a small synthetic session N times (truncation, flipped bytes, removed groups
and datasets, wrong dtypes, strings for numbers, broken indices, NaN/negative/unsorted
spike times, empty units, duplicate ids, missing peak channels, unequal columns) and
runs `spikeprep export` on each. Prints how many were tried and how many misbehaved
(a traceback, another exit code, a hang, or a complete-looking session that does not
verify). Run: python benchmarks/fuzz.py [N] [--jobs 2]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT))
from spikeprep.synthetic import SynthSpec, write_session  # noqa: E402
from tests.mutants import judge, make_mutant  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("n", type=int, nargs="?", default=500)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = write_session(tmp / "source.nwb", SynthSpec(n_units=24, duration=40.0, n_probes=2, seed=31))

        def one(seed: int) -> tuple[int, str, bool, str]:
            work = tmp / f"m{seed}"
            work.mkdir()
            mutant = work / f"session_{seed}.nwb"
            what = make_mutant(source, mutant, 10_000 + seed)
            ok, why = judge(mutant, work / "out")
            return seed, what, ok, why

        t = time.perf_counter()
        with ThreadPoolExecutor(a.jobs) as pool:
            results = list(pool.map(one, range(a.n)))
    bad = [r for r in results if not r[2]]
    kinds = collections.Counter(r[1].split(" ")[0] + ("" if r[2] else " (MISBEHAVED)") for r in results)
    outcome = collections.Counter("exported" if r[3].startswith("exported") else "clean error" for r in results if r[2])
    print(f"{len(results)} mutants tried in {time.perf_counter() - t:.0f} s: {len(bad)} misbehaved; "
          f"{outcome['clean error']} clean one-line errors, {outcome['exported']} exported and verified")
    for k, v in sorted(kinds.items()):
        print(f"  {v:4d}  {k}")
    for seed, what, _, why in bad[:20]:
        print(f"  MISBEHAVED mutant {seed} ({what}): {why}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
