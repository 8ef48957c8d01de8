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
import contextlib
import io
import os
import shutil
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GROUP = "carelog_native"  # the shared library of the group: carelog_native__mypyc.<suffix>
BUILD_DIR = ROOT / "var" / "native"  # the generated C and objects
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
PACKAGES = ("schemas", "streams", "processors", "projections", "api", "infra")

# Compiled together (calls between them are C calls): the worker's path per message, the
# FHIR store's fold and index extraction (a rebuild), the lake's decode, bronze rows,
# and the FHIRPath engine silver's views are evaluated with.
# Left out, each for a reason:
# processors/pipeline.py and processors/translators.py (tests replace their functions: an
# erasure in the middle of a message, a mapping switched for re-drive and replay; a call
# within a compiled module cannot be replaced), schemas/events.py (its dataclasses are
# read by __slots__, which mypyc's classes lack).
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
    "projections/fhir_store/apply.py",
    "projections/fhir_store/fhir_dates.py",
    "projections/fhir_store/wide_insert.py",
    "projections/fhir_store/extract.py",
    "projections/fhir_store/index_values.py",
    "projections/lake/changes.py",
    "projections/lake/bronze.py",
    "projections/fhirpath/*.py",
    "projections/lake/silver.py",
)


def sources(root: Path = ROOT) -> list[Path]:
    """The listed modules, package __init__ files left out (they stay plain Python)."""
    found = {p for pattern in MODULES for p in root.glob(pattern) if p.name != "__init__.py"}
    return sorted(found)


def extension_of(source: Path) -> Path:
    return source.with_name(source.stem + SUFFIX)


def extensions(root: Path = ROOT) -> list[Path]:
    """Every extension module built here: in the packages, and the group's library."""
    found = [e for package in PACKAGES for e in (root / package).rglob(f"*{SUFFIX}")]
    return sorted(found + list(root.glob(f"{GROUP}__mypyc*{SUFFIX}")))


def stale(root: Path = ROOT) -> list[Path]:
    """Modules an extension would run old code for: older than its source, or left from a
    build when the module was listed and is no longer."""
    listed = set(sources(root))
    older = [
        s for s in listed
        if extension_of(s).exists() and extension_of(s).stat().st_mtime < s.stat().st_mtime
    ]  # fmt: skip
    unlisted = [
        e.with_name(e.name.removesuffix(SUFFIX) + ".py")
        for e in extensions(root)
        if e.parent != root and e.with_name(e.name.removesuffix(SUFFIX) + ".py") not in listed
    ]
    return sorted(older + unlisted)


def built(root: Path = ROOT) -> bool:
    """Every listed module has its extension (whether or not one is stale)."""
    return all(extension_of(s).exists() for s in sources(root))


def up_to_date(root: Path = ROOT) -> bool:
    return not stale(root) and built(root)


def stale_message(found: list[Path], root: Path = ROOT) -> str:
    names = ", ".join(str(s.relative_to(root)) for s in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return (
        f"compiled modules are older than their sources or no longer listed ({names}{more}): "
        "they would run old code. Build them again with `make setup` (or `python -m "
        "infra.native_build`), or remove them with `python -m infra.native_build clean` to "
        "run interpreted."
    )


# mypyc builds a generator inside a comprehension as a list; each of ours is consumed whole.
_CONSUMED_WHOLE = "warning: Treating generator comprehension as list"


def compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def build() -> None:
    """Compile every listed module in place (run from ROOT); nothing without a compiler."""
    if compiler() is None:
        print("native build: no C compiler found; carelog runs interpreted (slower)")
        return
    from mypyc.build import mypycify  # build-time only: mypy is a dev dependency
    from setuptools import setup

    clean()
    paths = [str(s.relative_to(ROOT)) for s in sources()]
    print(f"native build: compiling {len(paths)} modules with mypyc (a minute or two)", flush=True)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            extensions = mypycify(
                paths, opt_level="3", multi_file=True, group_name=GROUP, target_dir=str(BUILD_DIR)
            )
    finally:  # its errors, and warnings but the one that says nothing here
        for line in printed.getvalue().splitlines():
            if not line.endswith(_CONSUMED_WHOLE):
                print(line)
    # --force: each module's own extension is a small stub that may not change while the
    # group's library does; rebuilt, every file is at least as new as its source.
    where = ["--build-temp", str(BUILD_DIR / "tmp"), "--build-lib", str(BUILD_DIR / "lib")]
    setup(
        name="carelog-native",
        packages=[],
        py_modules=[],
        ext_modules=extensions,
        cmdclass={"build_ext": _build_ext_on_every_core()},
        script_args=["--quiet", "build_ext", "--inplace", "--force", *where],
    )


def _build_ext_on_every_core() -> type:
    """setuptools' build_ext, compiling an extension's C files side by side: the group is one
    extension of a C file a module (`multi_file`), which build_ext would compile one by one.
    It calls the compiler's own steps (private in distutils; uv.lock pins setuptools)."""
    from setuptools.command.build_ext import build_ext

    class BuildExt(build_ext):  # type: ignore[misc]  # setuptools is untyped here
        def build_extensions(self) -> None:
            cc = self.compiler

            def compile(sources: list[str], output_dir: str | None = None,
                        macros: Any = None, include_dirs: Any = None, debug: bool = False,
                        extra_preargs: Any = None, extra_postargs: Any = None,
                        depends: Any = None) -> list[str]:  # fmt: skip
                _, objects, postargs, pp_opts, todo = cc._setup_compile(
                    output_dir, macros, include_dirs, sources, depends, extra_postargs
                )
                cc_args = cc._get_cc_args(pp_opts, debug, extra_preargs)

                def one(obj: str) -> None:
                    src, ext = todo[obj]
                    cc._compile(obj, src, ext, cc_args, postargs, pp_opts)

                with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                    list(pool.map(one, [obj for obj in objects if obj in todo]))
                return list(objects)

            cc.compile = compile
            super().build_extensions()

    return BuildExt


def clean(root: Path = ROOT) -> int:
    """Remove the extensions (the modules run interpreted); how many were removed."""
    removed = extensions(root)
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
        if found := stale():
            print(stale_message(found), file=sys.stderr)
            return 1
        print("native build: " + ("compiled, up to date" if built() else "interpreted"))
    elif up_to_date():
        print("native build: up to date")
    else:
        os.chdir(ROOT)  # setuptools resolves the sources and --inplace from here
        build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
