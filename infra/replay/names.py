"""Where a shadow lives: its topics (carelog.shadow.<name>.*), store file and manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from streams.settings import Settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, Topic, catalogue

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
SHADOW_PREFIX = "carelog.shadow."
# A shadow is a trial, dropped when done: its topics are not kept forever.
_SHADOW_RETENTION = {"retention.ms": str(30 * 24 * 3600 * 1000), "cleanup.policy": "delete"}


class ShadowError(ValueError):
    """A shadow name is malformed, taken, or unknown."""


@dataclass(frozen=True)
class Shadow:
    name: str
    var_dir: Path

    @classmethod
    def named(cls, name: str, settings: Settings) -> Shadow:
        if not _NAME.match(name):
            raise ShadowError(
                f"shadow name {name!r}: use lower-case letters, digits, - and _ (41 at most)"
            )
        return cls(name, settings.var_dir / "shadow")

    @property
    def prefix(self) -> str:
        """What every topic of this shadow, and no other, begins with."""
        return f"{SHADOW_PREFIX}{self.name}."

    def topic(self, live: str) -> str:
        """carelog.fhir.changes -> carelog.shadow.<name>.fhir.changes"""
        return self.prefix + live.removeprefix("carelog.")

    @property
    def changes(self) -> str:
        return self.topic(FHIR_CHANGES)

    @property
    def translated(self) -> str:
        return self.topic(FHIR_TRANSLATED)

    @property
    def rejected(self) -> str:
        return self.topic(REJECTED)

    @property
    def store(self) -> Path:
        return self.var_dir / f"{self.name}.sqlite"

    @property
    def manifest(self) -> Path:
        return self.var_dir / f"{self.name}.json"

    def topics(self, environment: str, partitions: int | None = None) -> list[Topic]:
        """The shadow's topics, shaped like the live ones they stand in for."""
        live = {t.name: t for t in catalogue(environment, partitions)}
        return [
            replace(live[name], name=self.topic(name), configs=dict(_SHADOW_RETENTION))
            for name in (FHIR_TRANSLATED, FHIR_CHANGES, REJECTED)
        ]
