"""A mapping tests can switch, for the re-drive and replay tests: the real translators with
two switches, on FHIR input whose bytes carry MARK only.

- `broken` (a file in the switch directory): such input is refused as a mapping error, as a
  mapper bug would refuse it (a TranslationError: a translate-stage Rejected);
- `v2`: such a Patient gets a birthDate, a mapping change.

`python -m tests.infra.mapping_switch DIR` runs a real `carelog worker` with the switches
read from DIR; the replay test patches `switched` into its own process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from processors import translators as translate_module
from processors.translation import Translation, TranslationError
from schemas.events import InboundMessage
from schemas.outcome import Issue

MARK = b"mapping-switch"
BIRTH_DATE = "1970-01-01"
Translator = Callable[[InboundMessage, bytes], Translation]


def switched(real: Translator, switches: Path) -> Translator:
    def translate(event: InboundMessage, payload: bytes) -> Translation:
        if MARK not in payload:
            return real(event, payload)
        if (switches / "broken").exists():
            issue = Issue("test mapping bug: cannot map this Patient", code="not-supported")
            raise TranslationError([issue])
        done = real(event, payload)
        if not (switches / "v2").exists():
            return done
        resources = [
            replace(r, resource={**r.resource, "birthDate": BIRTH_DATE})
            if r.resource.get("resourceType") == "Patient"
            else r
            for r in done.resources
        ]
        return Translation(resources, done.business_time, "test-mapping/2")

    return translate


if __name__ == "__main__":
    translate_module._translated = switched(translate_module._translated, Path(sys.argv[1]))
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", "info"]
    from processors.worker import main

    main()
