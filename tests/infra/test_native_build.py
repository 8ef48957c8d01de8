"""The compiled modules never run code older than their sources (infra/native_build.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra import cli
from infra.native_build import SUFFIX, extension_of, sources, stale, stale_message, up_to_date


def _tree(root: Path) -> Path:
    source = root / "processors" / "hl7v2" / "parser.py"
    source.parent.mkdir(parents=True)
    source.write_text("x = 1\n")
    (source.parent / "__init__.py").write_text("")
    return source


def _age(path: Path, seconds: float) -> None:
    at = path.stat().st_mtime - seconds
    os.utime(path, (at, at))


def test_a_module_without_an_extension_runs_interpreted_and_is_not_stale(tmp_path: Path) -> None:
    source = _tree(tmp_path)
    assert sources(tmp_path) == [source]  # package __init__ files stay plain Python
    assert stale(tmp_path) == []
    assert not up_to_date(tmp_path)


def test_an_extension_older_than_its_source_is_stale(tmp_path: Path) -> None:
    source = _tree(tmp_path)
    extension = extension_of(source)
    assert extension.name == "parser" + SUFFIX
    extension.write_bytes(b"")
    _age(extension, 60)
    assert stale(tmp_path) == [source]
    assert "processors/hl7v2/parser.py" in stale_message(stale(tmp_path), tmp_path)
    assert not up_to_date(tmp_path)
    os.utime(extension)  # built again
    assert stale(tmp_path) == []
    assert up_to_date(tmp_path)


def test_an_extension_of_a_module_no_longer_listed_is_stale(tmp_path: Path) -> None:
    """Taken off the list, a module's old extension would still be imported before it."""
    _tree(tmp_path)
    unlisted = tmp_path / "processors" / "pipeline.py"
    unlisted.write_text("y = 2\n")
    extension_of(unlisted).write_bytes(b"")  # newer than its source, but not built any more
    assert stale(tmp_path) == [unlisted]
    assert not up_to_date(tmp_path)


def test_carelog_refuses_to_start_on_stale_extensions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _tree(tmp_path)
    monkeypatch.setattr(cli, "stale", lambda: [source])
    monkeypatch.setattr(cli, "stale_message", lambda found: stale_message(found, tmp_path))
    assert cli.main(["topics", "list"]) == 1
    err = capsys.readouterr().err
    assert "older than their sources or no longer listed (processors/hl7v2/parser.py)" in err
    assert "make setup" in err
