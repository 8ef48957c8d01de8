"""UCUM unit expressions: a parser for the grammar of the UCUM specification, section 2.

term      := component (('.' | '/') component)*      with a leading '/' allowed
component := annotatable annotation? | annotation | factor | '(' term ')'
annotatable := [prefix] atom [exponent]             (prefix only on metric atoms)
annotation := '{' anything but braces '}'

The atom table is the UCUM essence's: every base unit and unit (the metric ones take the 20
SI prefixes and the 4 binary ones). A symbol that is not an atom, prefixed or not, is not
UCUM: "furlongs" is refused, "[fur_us]" is the US survey furlong.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _symbols(text: str) -> frozenset[str]:
    return frozenset(text.split())


PREFIXES = tuple(sorted(_symbols("Y Z E P T G M k h da d c m u n p f a z y Ki Mi Gi Ti")))
# The atoms of the UCUM essence (ucum-essence.xml, version 2.1): base units and units, by
# whether they take a prefix (isMetric="yes") or not.
METRIC = _symbols(
    """
    m s g rad K C cd
    mol sr Hz N Pa J W A V F Ohm S Wb Cel T H lm lx Bq Gy Sv
    l L ar t bar u eV pc [c] [h] [k] [eps_0] [mu_0] [e] [m_e] [m_p] [G] [g] [ly] gf
    Ky Gal dyn erg P St Mx G Oe Gb sb Lmb ph Ci R RAD REM Bi
    cal_[15] cal_[20] cal_m cal_IT cal_th cal tex m[H2O] m[Hg] eq osm g% kat U [iU] [IU]
    Np B B[SPL] B[V] B[mV] B[uV] B[10.nV] B[W] B[kW] st mho bit By Bd [CFU]
    """
)
NON_METRIC = _symbols(
    """
    10* 10^ [pi] % [ppth] [ppm] [ppb] [pptr]
    gon deg ' '' min h d a_t a_j a_g a wk mo_s mo_j mo_g mo AU
    [in_i] [ft_i] [yd_i] [mi_i] [fth_i] [nmi_i] [kn_i] [sin_i] [sft_i] [syd_i] [cin_i]
    [cft_i] [cyd_i] [bf_i] [cr_i] [mil_i] [cml_i] [hd_i]
    [ft_us] [yd_us] [in_us] [rd_us] [ch_us] [lk_us] [rch_us] [rlk_us] [fth_us] [fur_us]
    [mi_us] [acr_us] [srd_us] [smi_us] [sct] [twp] [mil_us]
    [in_br] [ft_br] [rd_br] [ch_br] [lk_br] [fth_br] [pc_br] [yd_br] [mi_br] [nmi_br]
    [kn_br] [acr_br]
    [gal_us] [bbl_us] [qt_us] [pt_us] [gil_us] [foz_us] [fdr_us] [min_us] [crd_us] [bu_us]
    [gal_wi] [pk_us] [dqt_us] [dpt_us] [tbs_us] [tsp_us] [cup_us] [foz_m] [cup_m] [tsp_m]
    [tbs_m]
    [gal_br] [pk_br] [bu_br] [qt_br] [pt_br] [gil_br] [foz_br] [fdr_br] [min_br]
    [gr] [lb_av] [oz_av] [dr_av] [scwt_av] [lcwt_av] [ston_av] [lton_av] [stone_av]
    [pwt_tr] [oz_tr] [lb_tr] [sc_ap] [dr_ap] [oz_ap] [lb_ap] [oz_m]
    [lne] [pnt] [pca] [pnt_pr] [pca_pr] [pied] [pouce] [ligne] [didot] [cicero]
    [degF] [degR] [degRe] [Cal] [Btu_39] [Btu_59] [Btu_60] [Btu_m] [Btu_IT] [Btu_th] [Btu]
    [HP] [den]
    [in_i'H2O] [in_i'Hg] [PRU] [wood'U] [diop] [p'diop] %[slope] [mesh_i] [Ch] [drp]
    [hnsf'U] [MET] [hp'_X] [hp'_C] [hp'_M] [hp'_Q] [hp_X] [hp_C] [hp_M] [hp_Q]
    [kp_X] [kp_C] [kp_M] [kp_Q] [pH] [S] [HPF] [LPF]
    [arb'U] [USP'U] [GPL'U] [MPL'U] [APL'U] [beth'U] [anti'Xa'U] [todd'U] [dye'U]
    [smgy'U] [bdsk'U] [ka'U] [knk'U] [mclg'U] [tb'U] [CCID_50] [TCID_50] [EID_50] [PFU]
    [FFU] [IR] [BAU] [AU] [Amb'a'1'U] [PNU] [Lf] [D'ag'U] [FEU] [ELU] [EU] [NTU] [FNU]
    Ao b att [psi] circ sph [car_m] [car_Au] [smoot] [m/s2/Hz^(1/2)] bit_s
    """
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
