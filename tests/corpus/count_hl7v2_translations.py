"""Count the corpus and sample HL7 v2 messages that translate (and validate) vs are refused.

Not a test: a tally for the coverage work of issue 13. A message counts as translated when
translate() maps it and every resource passes processors.validation.resource_issues, as the
translate stage requires; otherwise it is refused, with the reason printed.

Run: .venv/bin/python tests/corpus/count_hl7v2_translations.py [--source REPO_ROOT]
(--source: import carelog from another checkout, e.g. a clean worktree of main, to count
the same messages before a change.)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
FOLDERS = sorted(p for p in CORPUS.glob("hl7v2*") if p.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="repository root to import carelog from")
    parser.add_argument("--quiet", action="store_true", help="totals only")
    args = parser.parse_args()
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))
    from processors.hl7v2.errors import Hl7v2Error
    from processors.hl7v2.translate import translate
    from processors.validation import resource_issues

    totals: Counter[str] = Counter()
    for folder in FOLDERS:
        for path in sorted(folder.glob("*.hl7")):
            try:
                resources = translate(path.read_bytes()).resources
                issues = [i for r in resources for i in resource_issues(r)]
                outcome = f"invalid: {issues[0]}" if issues else "translated"
            except Hl7v2Error as error:
                outcome = f"refused: {error}"
            kind = "translated" if outcome == "translated" else "refused"
            totals[f"{folder.name} {kind}"] += 1
            totals[kind] += 1
            if not args.quiet:
                print(f"{folder.name}/{path.name}: {outcome}")
    for key in sorted(totals):
        print(f"{key}: {totals[key]}")


if __name__ == "__main__":
    main()
