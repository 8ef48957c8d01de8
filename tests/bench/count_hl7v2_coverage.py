"""Count the corpus and sample HL7 v2 messages carelog translates vs refuses (not a test).

Translates every tests/corpus/hl7v2*/**/*.hl7 with the translator of `--source` (a checkout of
carelog; default: this one) and prints, per folder, how many translated (with their resources
passing processors/validation.py; how many of them with warnings, i.e. an optional field
dropped) and how many were refused, with each refusal's reason.

Run: .venv/bin/python tests/bench/count_hl7v2_coverage.py [--source /path/to/other/checkout]
[--quiet]; --source counts this checkout's corpus with another checkout's translator (e.g. a
`git worktree` of an older commit), so before and after are over the same messages.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--quiet", action="store_true", help="totals only, no refusal reasons")
    args = parser.parse_args()
    sys.path.insert(0, str(args.source.resolve()))
    from processors.hl7v2.errors import Hl7v2Error

    try:
        from processors.hl7v2.mapping import map_hl7v2
    except ImportError:  # a checkout from before the rename
        from processors.hl7v2.translate import translate as map_hl7v2
    from processors.validation import resource_issues

    totals: Counter[str] = Counter()
    for folder in sorted(p for p in CORPUS.glob("hl7v2*") if p.is_dir()):
        counts: Counter[str] = Counter()
        for path in sorted(folder.glob("*.hl7")):
            try:
                result = map_hl7v2(path.read_bytes())
                resources = result.resources
            except Hl7v2Error as exc:
                counts["refused"] += 1
                if not args.quiet:
                    print(f"  refused  {folder.name}/{path.name}: {exc}")
                continue
            issues = [i for r in resources for i in resource_issues(r)]
            if issues:
                counts["refused"] += 1
                if not args.quiet:
                    print(f"  invalid  {folder.name}/{path.name}: {issues[0]}")
            else:
                counts["translated"] += 1
                # an optional field dropped (processors/hl7v2/tolerance.py); older checkouts: none
                warnings = getattr(result, "warnings", ())
                if warnings:
                    counts["with warnings"] += 1
                    if not args.quiet:
                        where = ", ".join(str(w.location) for w in warnings)
                        print(f"  warned   {folder.name}/{path.name}: {where}")
        totals.update(counts)
        print(
            f"{folder.name}: {counts['translated']} translated "
            f"({counts['with warnings']} with warnings), {counts['refused']} refused"
        )
    print(
        f"all: {totals['translated']} translated ({totals['with warnings']} with warnings), "
        f"{totals['refused']} refused"
    )


if __name__ == "__main__":
    main()
