"""FHIRPath engine benchmark: the FHIR store's index extraction and the lake's view flattening.

    .venv/bin/python -m tests.bench.bench_fhirpath [--resources 20000] [--baseline DIR]

In process, no broker: index_rows() over bench_fhir_store's generated mix (20% Patient, 70%
Observation, 10% Encounter) and the 13 shipped views' rows over bench_lake's mix. CPU time of
the measuring process (the machine is shared), the fastest of 5 passes; median of 3 runs,
each in a fresh process.
With --baseline DIR (a checkout of another commit: `git worktree add /tmp/base main`) the
same measure runs there too, alternating with this tree, and the ratio this/baseline is
printed: the engine's speed before and after a change, from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.common import keys_in_this_process

HERE = Path(__file__).resolve()
TREE = HERE.parents[2]
PASSES = 5


def _measure(count: int) -> dict[str, float]:
    """Rates of this process's tree (imports resolve against the working directory)."""
    from projections.fhir_store.extract import index_rows
    from projections.lake.views import SHIPPED_VIEWS, load_views
    from streams.event_codec import decode_event
    from tests.bench.bench_fhir_store import generate
    from tests.bench.bench_lake import make_changes

    store = [json.loads(decode_event(v).resource) for _, _, _, v in generate(count)]  # type: ignore[union-attr]
    lake = [json.loads(decode_event(o.value).resource) for o in make_changes(count, seed=3)]  # type: ignore[union-attr]
    best = float("inf")
    for _ in range(PASSES):
        start = time.process_time()
        for r in store:
            index_rows(r["resourceType"], r)
        best = min(best, time.process_time() - start)
    extract = len(store) / best
    views = load_views(SHIPPED_VIEWS)
    by_type: dict[str, list[dict[str, object]]] = {}
    for r in lake:
        by_type.setdefault(str(r["resourceType"]), []).append(r)
    best, rows = float("inf"), 0
    for _ in range(PASSES):
        rows = 0
        start = time.process_time()
        for view in views:
            for r in by_type.get(view.resource, ()):
                rows += len(view.rows(r))
        best = min(best, time.process_time() - start)
    return {"extract": extract, "flatten": len(lake) / best, "rows": rows / best}


def _run(tree: Path, count: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(HERE), "--worker", "--resources", str(count)],
        cwd=tree, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--resources", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    keys_in_this_process()
    if args.worker:
        print(json.dumps(_measure(args.resources)))
        return
    trees = [("this tree", TREE)] + (
        [("baseline", args.baseline.resolve())] if args.baseline else []
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(args.runs):
        for name, tree in trees:  # alternating, so both see the same machine load
            results[name].append(_run(tree, args.resources))
    labels = {
        "extract": "store index extraction: resources/s",
        "flatten": "13 views flattened: resources/s",
        "rows": "  view rows made/s",
    }
    print(f"FHIRPath engine: {args.resources:,} resources, CPU time, median of {args.runs}")
    for key, label in labels.items():
        for name, _ in trees:
            values = [r[key] for r in results[name]]
            spread = ", ".join(f"{v:,.0f}" for v in values)
            print(
                f"{label + ' (' + name + ')':<60} {statistics.median(values):>10,.0f}   (runs: {spread})"
            )
        if args.baseline:
            now = statistics.median(r[key] for r in results["this tree"])
            then = statistics.median(r[key] for r in results["baseline"])
            print(f"{'  ratio this/baseline':<60} {now / then:>10.2f}")


if __name__ == "__main__":
    main()
