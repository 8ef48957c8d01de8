"""The hot pure-Python modules compiled to C extensions with mypyc, in place.

The worker's translate and version path (the HL7 v2 parser and mappers, validation, the
canonical JSON, the event codec and the PHI envelope) is typed Python run per message;
compiled, the same source costs about two thirds of the CPU (bench_hl7v2_translate, same
run). The .py files stay the source of truth: an extension module sits beside each one
(`parser.cpython-311-x86_64-linux-gnu.so`) and Python imports it first.

`make setup` runs `python -m infra.native_build`, which builds only when a listed source
is newer than its extension (or has none). A machine without a C compiler runs the same
modules interpreted. An extension older than its source would run old code, so the tests
and the `carelog` command refuse to start until it is built again (`stale`).

    python -m infra.native_build [build|check|clean]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP = "carelog_native"  # the shared library of the group: carelog_native__mypyc.<suffix>
BUILD_DIR = ROOT / "var" / "native"  # the generated C and objects
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"

# Compiled together (calls between them are C calls). Left out, each for a reason:
# processors/pipeline.py (tests replace its functions to inject an erasure mid-message),
# schemas/events.py (its dataclasses are read by __slots__, which mypyc's classes lack).
MODULES: tuple[str, ...] = (
    "processors/hl7v2/*.py",
    "processors/hl7v2/mappers/*.py",
    "processors/validation.py",
    "processors/structure_shapes.py",
    "processors/ids.py",
    "processors/versioning.py",
    "processors/version_policy.py",
    "processors/canonical.py",
    "processors/lineage.py",
    "processors/translators.py",
    "processors/translation.py",
    "schemas/hl7v2/frame.py",
    "schemas/hl7v2/patient.py",
    "schemas/hl7v2/escapes.py",
    "schemas/hl7v2/charset.py",
    "schemas/plausibility.py",
    "schemas/codec.py",
    "schemas/flat_reader.py",
    "schemas/flat_writer.py",
    "streams/event_codec.py",
    "streams/privacy/envelope.py",
)


def sources(root: Path = ROOT) -> list[Path]:
    """The listed modules, package __init__ files left out (they stay plain Python)."""
    found = {p for pattern in MODULES for p in root.glob(pattern) if p.name != "__init__.py"}
    return sorted(found)


def extension_of(source: Path) -> Path:
    return source.with_name(source.stem + SUFFIX)


def stale(root: Path = ROOT) -> list[Path]:
    """Sources whose extension is older than they are: importing them runs old code."""
    return [
        s for s in sources(root)
        if extension_of(s).exists() and extension_of(s).stat().st_mtime < s.stat().st_mtime
    ]  # fmt: skip


def up_to_date(root: Path = ROOT) -> bool:
    return all(
        extension_of(s).exists() and extension_of(s).stat().st_mtime >= s.stat().st_mtime
        for s in sources(root)
    )


def stale_message(found: list[Path], root: Path = ROOT) -> str:
    names = ", ".join(str(s.relative_to(root)) for s in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return (
        f"compiled modules are older than their sources ({names}{more}): they would run old "
        "code. Build them again with `make setup` (or `python -m infra.native_build`), or "
        "remove them with `python -m infra.native_build clean` to run interpreted."
    )


def compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def build(root: Path = ROOT) -> bool:
    """Compile every listed module in place; False (and nothing changed) without a compiler."""
    if compiler() is None:
        print("native build: no C compiler found; carelog runs interpreted (slower)")
        return False
    from mypyc.build import mypycify  # build-time only: mypy is a dev dependency
    from setuptools import setup

    clean(root)
    paths = [str(s.relative_to(root)) for s in sources(root)]
    print(f"native build: compiling {len(paths)} modules with mypyc (about a minute)", flush=True)
    extensions = mypycify(paths, opt_level="3", group_name=GROUP, target_dir=str(BUILD_DIR))
    where = ["--build-temp", str(BUILD_DIR / "tmp"), "--build-lib", str(BUILD_DIR / "lib")]
    setup(
        name="carelog-native",
        packages=[],
        py_modules=[],
        ext_modules=extensions,
        script_args=["--quiet", "build_ext", "--inplace", *where],
    )
    return True


def clean(root: Path = ROOT) -> int:
    """Remove the extensions (the modules run interpreted); how many were removed."""
    removed = [extension_of(s) for s in sources(root) if extension_of(s).exists()]
    removed += list(root.glob(f"{GROUP}__mypyc*{SUFFIX}"))
    for path in removed:
        path.unlink()
    return len(removed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="build", choices=["build", "check", "clean"])
    action = parser.parse_args(argv).action
    if action == "clean":
        print(f"native build: removed {clean()} extension modules")
    elif action == "check":
        found = stale()
        if found:
            print(stale_message(found), file=sys.stderr)
            return 1
        print("native build: " + ("compiled, up to date" if up_to_date() else "interpreted"))
    elif up_to_date():
        print("native build: up to date")
    else:
        os.chdir(ROOT)  # setuptools resolves the sources and --inplace from here
        build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
