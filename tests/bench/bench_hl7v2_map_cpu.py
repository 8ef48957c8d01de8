"""Micro-benchmark (not a test): CPU time to map one ORU^R01 with 10 OBX, this checkout against
another, in one run.

Wall-clock figures swing with the machine's load; CPU time of the mapping process (best of 5
batches of 500 messages, in a fresh process per sample, the two checkouts alternating) gives
a before/after ratio that holds on a loaded machine. Without --before it measures this checkout.

Run: .venv/bin/python -m tests.bench.bench_hl7v2_map_cpu [--before /path/to/other/checkout]
(e.g. `git worktree add --detach ../base main`, then --before ../base)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
GOAL_MS = 0.5
SAMPLES = 3
# Runs inside the checkout measured; the message comes from this checkout's bench module.
_PROGRAM = r"""
import sys, time
sys.path.insert(1, {bench_root!r})
from processors.hl7v2.context import MappingContext
from processors.hl7v2.parser import parse
try:
    from processors.hl7v2.mapping import map_parsed
except ImportError:  # a checkout from before the rename
    from processors.hl7v2.translate import translate_message as map_parsed
from tests.bench.bench_hl7v2_translate import oru_10_obx
msg, ctx = parse(oru_10_obx()), MappingContext()
for _ in range(300):
    map_parsed(msg, ctx)
best = float("inf")
for _ in range(5):
    start = time.process_time()
    for _ in range(500):
        map_parsed(msg, ctx)
    best = min(best, (time.process_time() - start) / 500 * 1e3)
print(best)
"""


def cpu_ms(checkout: Path) -> float:
    program = _PROGRAM.format(bench_root=str(HERE))
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=checkout, capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout of carelog to compare")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(SAMPLES):
        if args.before:
            runs["before"].append(cpu_ms(args.before.resolve()))
        runs["after"].append(cpu_ms(HERE))
    after = statistics.median(runs["after"])
    print(f"ORU^R01 with 10 OBX, map CPU per message (median of {SAMPLES} processes)")
    if args.before:
        before = statistics.median(runs["before"])
        print(f"  before ({args.before})  {before:8.3f} ms")
        print(f"  after  (this checkout)  {after:8.3f} ms   ratio {after / before:.2f}")
    else:
        print(f"  this checkout           {after:8.3f} ms")
    print(f"  goal <= {GOAL_MS} ms: {'met' if after <= GOAL_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
