"""UCUM unit expressions: a parser for the grammar of the UCUM specification, section 2.

term      := component (('.' | '/') component)*      with a leading '/' allowed
component := annotatable annotation? | annotation | factor | '(' term ')'
annotatable := [prefix] atom [exponent]             (prefix only on metric atoms)
annotation := '{' anything but braces '}'

The atom table holds the base units and the derived and customary units in clinical use
(the metric ones accept the 20 SI prefixes). It is not the full UCUM essence table, so a rare
but valid unit may be reported unknown: the caller treats that as a warning.
"""

from __future__ import annotations

import re
from functools import lru_cache

PREFIXES = (
    "Y",
    "Z",
    "E",
    "P",
    "T",
    "G",
    "M",
    "k",
    "h",
    "da",
    "d",
    "c",
    "m",
    "u",
    "n",
    "p",
    "f",
    "a",
    "z",
    "y",
    "Ki",
    "Mi",
    "Gi",
    "Ti",
)
METRIC = frozenset(
    [
        "m",
        "s",
        "g",
        "rad",
        "K",
        "C",
        "cd",
        "mol",
        "sr",
        "Hz",
        "N",
        "Pa",
        "J",
        "W",
        "A",
        "V",
        "F",
        "Ohm",
        "S",
        "Wb",
        "Cel",
        "T",
        "H",
        "lm",
        "lx",
        "Bq",
        "Gy",
        "Sv",
        "l",
        "L",
        "ar",
        "t",
        "bar",
        "u",
        "eV",
        "pc",
        "gf",
        "Ky",
        "Gal",
        "dyn",
        "erg",
        "P",
        "Bi",
        "St",
        "Mx",
        "G",
        "Oe",
        "Gb",
        "sb",
        "Lmb",
        "ph",
        "Ci",
        "R",
        "RAD",
        "REM",
        "eq",
        "osm",
        "kat",
        "U",
        "[iU]",
        "[IU]",
        "B",
        "Np",
        "cal",
        "m[Hg]",
        "m[H2O]",
        "mho",
        "st",
        "bit",
        "By",
        "Bd",
        "[CFU]",
    ]
)
NON_METRIC = frozenset(
    [
        "10*",
        "10^",
        "[pi]",
        "%",
        "[ppth]",
        "[ppm]",
        "[ppb]",
        "[pptr]",
        "min",
        "h",
        "d",
        "a",
        "wk",
        "mo",
        "a_t",
        "a_j",
        "a_g",
        "mo_s",
        "mo_j",
        "mo_g",
        "'",
        "''",
        "deg",
        "gon",
        "[in_i]",
        "[ft_i]",
        "[yd_i]",
        "[mi_i]",
        "[nmi_i]",
        "[lb_av]",
        "[oz_av]",
        "[gr]",
        "[dr_av]",
        "[ston_av]",
        "[degF]",
        "[degR]",
        "[pH]",
        "[arb'U]",
        "[USP'U]",
        "[GPL'U]",
        "[MPL'U]",
        "[APL'U]",
        "[beth'U]",
        "[todd'U]",
        "[dye'U]",
        "[smgy'U]",
        "[bdsk'U]",
        "[ka'U]",
        "[knk'U]",
        "[mclg'U]",
        "[tb'U]",
        "[HPF]",
        "[LPF]",
        "[drp]",
        "[gal_us]",
        "[qt_us]",
        "[pt_us]",
        "[foz_us]",
        "[tsp_us]",
        "[tbs_us]",
        "[cup_us]",
        "[fdr_us]",
        "[min_us]",
        "[gal_br]",
        "[pt_br]",
        "[foz_br]",
        "[mesh_i]",
        "[Ch]",
        "[car_m]",
        "[car_Au]",
        "[hp_X]",
        "[hp_C]",
        "[kp_X]",
        "[kp_C]",
        "[lne]",
        "[D'ag'U]",
        "[FFU]",
        "[PFU]",
        "[BAU]",
        "[AU]",
        "[Lf]",
        "[PRU]",
        "[EID_50]",
        "[TCID_50]",
        "[CCID_50]",
        "[PNU]",
        "[S]",
        "[HP]",
        "[m_p]",
        "[m_e]",
        "[c]",
        "[h]",
        "[k]",
        "[e]",
        "[G]",
        "[g]",
        "[ly]",
        "[Btu]",
        "[Cal]",
        "cal_th",
        "[diop]",
        "[hnsf'U]",
        "[mi_us]",
        "[ft_us]",
        "[in_us]",
        "[yd_us]",
        "[rd_us]",
        "[ch_us]",
        "[lk_us]",
        "[smoot]",
        "[sct]",
        "[twp]",
        "[psi]",
        "[den]",
        "[MET]",
        "[iU]",
        "[IU]",
        "[Amb'a'1'U]",
        "[anti'Xa'U]",
        "[ELU]",
        "[EU]",
        "[wood'U]",
        "[mg_o]",
        "[gal_wi]",
        "[cr_i]",
        "[bf_i]",
        "[cml_i]",
        "[mil_i]",
        "[mil_us]",
        "[hd_i]",
        "[lcwt_av]",
        "[scwt_av]",
        "[lton_av]",
        "[pwt_tr]",
        "[oz_tr]",
        "[lb_tr]",
        "[sc_ap]",
        "[dr_ap]",
        "[oz_ap]",
        "[lb_ap]",
        "[oz_m]",
    ]
)
ATOMS = METRIC | NON_METRIC
_EXPONENT = re.compile(r"^(.*?)([+-]?\d+)?$")


class UcumError(ValueError):
    pass


def _split_symbol(symbol: str) -> None:
    if symbol in ATOMS:
        return
    for prefix in PREFIXES:
        if symbol.startswith(prefix) and symbol[len(prefix) :] in METRIC:
            return
    raise UcumError(f"unknown unit atom {symbol!r}")


def _simple(token: str) -> None:
    if token.isdigit():  # a factor such as 10 or 1000
        return
    m = _EXPONENT.match(token)
    assert m is not None
    symbol, exponent = m.group(1), m.group(2)
    if not symbol:
        raise UcumError(f"{token!r} has an exponent but no unit")
    if symbol in ("10*", "10^") and exponent is None:
        raise UcumError(f"{symbol!r} needs an exponent")
    _split_symbol(symbol)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def term(self) -> None:
        if self.peek() == "/":
            self.i += 1
        self.component()
        while self.peek() in (".", "/") and self.peek():
            self.i += 1
            self.component()

    def component(self) -> None:
        ch = self.peek()
        if ch == "(":
            self.i += 1
            self.term()
            if self.peek() != ")":
                raise UcumError(f"missing ')' at {self.i} in {self.text!r}")
            self.i += 1
            return
        if ch == "{":
            self.annotation()
            return
        start = self.i
        depth = 0
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif depth == 0 and c in "./(){}":
                break
            self.i += 1
        token = self.text[start : self.i]
        if not token:
            raise UcumError(f"a unit is missing at {start} in {self.text!r}")
        if depth:
            raise UcumError(f"unbalanced '[' in {token!r}")
        _simple(token)
        if self.peek() == "{":
            self.annotation()

    def annotation(self) -> None:
        end = self.text.find("}", self.i)
        if end < 0:
            raise UcumError(f"unterminated annotation in {self.text!r}")
        body = self.text[self.i + 1 : end]
        if "{" in body or any(not (32 < ord(c) < 127) for c in body if c != " "):
            raise UcumError(f"invalid annotation {{{body}}}")
        self.i = end + 1


@lru_cache(maxsize=4096)
def problem(code: str) -> str | None:
    """Why `code` is not a UCUM expression, or None when it parses."""
    if not code or code != code.strip() or " " in code:
        return f"{code!r} is not a UCUM unit (empty or with spaces)"
    parser = _Parser(code)
    try:
        parser.term()
        if parser.i != len(code):
            raise UcumError(f"unexpected {code[parser.i]!r} at {parser.i}")
    except UcumError as exc:
        return f"UCUM {code!r}: {exc}"
    return None
