"""The faust-streaming methods carelog patches are checked at import: a changed shape stops the
import with an error naming the method and the versions the patch was tested with."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from faust.transport.consumer import Consumer, TransactionManager

import processors.faust_recovery
import processors.transactions
from processors.patched_shapes import (
    TESTED,
    LibraryShapeError,
    require_names,
    require_source,
    source_digest,
)
from streams.settings import PROJECT_ROOT


def _import_after(change: str, module: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Import `module` in a fresh interpreter after `change` replaced a library method (from a
    file: the check reads the replacement's source)."""
    script = tmp_path / "changed_library.py"
    script.write_text(textwrap.dedent(change) + f"\nimport {module}\n")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_installed_library_is_the_shape_the_patches_were_written_for() -> None:
    # Both modules imported above: their checks passed on the locked versions.
    assert processors.transactions.SourcePartitionTransactions.send is not TransactionManager.send
    assert processors.faust_recovery.seek_before_resume is not None
    require_source(TransactionManager, "send", source_digest(TransactionManager.send), "test")
    require_names(Consumer, "__init__", ("_acked", "_acked_index", "_gap"), "test")


def test_a_changed_method_stops_the_import_naming_it_and_the_tested_versions(
    tmp_path: Path,
) -> None:
    done = _import_after(
        """
        from faust.transport.consumer import TransactionManager
        async def send(self, topic, key, value, partition, timestamp, headers, *, transactional_id=None):
            return await self.producer.send(topic, key, value, partition, timestamp, headers)
        TransactionManager.send = send
        """,
        "processors.transactions",
        tmp_path,
    )
    assert done.returncode != 0
    assert "LibraryShapeError" in done.stderr, done.stderr
    assert "faust.transport.consumer.TransactionManager.send changed" in done.stderr
    assert "the patch in processors.transactions" in done.stderr
    assert f"faust-streaming {TESTED['faust-streaming']}" in done.stderr


def test_a_replaced_recovery_method_stops_the_recovery_patch(tmp_path: Path) -> None:
    done = _import_after(
        """
        from faust.tables.recovery import Recovery
        async def on_recovery_completed(self, generation_id=0):
            pass
        Recovery.on_recovery_completed = on_recovery_completed
        """,
        "processors.faust_recovery",
        tmp_path,
    )
    assert done.returncode != 0
    assert "Recovery.on_recovery_completed changed" in done.stderr, done.stderr


def test_an_attribute_or_method_the_library_no_longer_has_is_named() -> None:
    class Changed:
        def __init__(self) -> None:
            self._acked: dict[int, int] = {}

    with pytest.raises(
        LibraryShapeError, match=r"Changed.__init__ no longer sets _acked_index, _gap"
    ):
        require_names(Changed, "__init__", ("_acked", "_acked_index", "_gap"), "a patch")
    with pytest.raises(LibraryShapeError, match=r"Changed.send is gone.*aiokafka 0\.14\.0"):
        require_source(Changed, "send", "b8d126be9f10fc69", "a patch")
