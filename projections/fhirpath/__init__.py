"""One FHIRPath engine for carelog: the store's search parameters and the lake's views.

parser.py reads the text into a syntax tree; compiler.py turns the tree into closures over
plain JSON (about a microsecond a path, where fhirpathpy interprets in ~250 µs); engine.py
wraps a compiled expression with fhirpathpy as its fallback (constructs the compiler does
not know) and oracle (property tests compare the two). model.py is the R4 type model the
compiler navigates by; search.py the per-step view the FHIR store's extraction plan shares
prefixes with; boundaries.py lowBoundary()/highBoundary().
"""

from projections.fhirpath.compiler import NO_ENV, Env, Fn, UndefinedVariable
from projections.fhirpath.engine import (
    CompiledPath,
    FHIRPathEvaluationError,
    compile_path,
    fhirpathpy_path,
)
from projections.fhirpath.model import CHOICES, reference_key
from projections.fhirpath.parser import FHIRPathSyntaxError

__all__ = [
    "CHOICES",
    "NO_ENV",
    "CompiledPath",
    "Env",
    "FHIRPathEvaluationError",
    "FHIRPathSyntaxError",
    "Fn",
    "UndefinedVariable",
    "compile_path",
    "fhirpathpy_path",
    "reference_key",
]
