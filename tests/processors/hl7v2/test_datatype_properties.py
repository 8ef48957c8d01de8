"""Property tests of the escapes and data type converters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from processors.hl7v2 import datatypes as dt
from processors.hl7v2.errors import MappingError
from processors.hl7v2.parser import parse
from processors.hl7v2.timestamps import to_date, to_datetime
from schemas.hl7v2.escapes import escape_text, unescape

UTC = ZoneInfo("UTC")


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("|^~\\&\n"))
)
def test_escape_then_unescape_is_identity(text: str) -> None:
    assert unescape(escape_text(text)) == text


@given(
    st.lists(st.binary(min_size=1, max_size=6) | st.text(alphabet="ab Z09", max_size=4)),
    st.sampled_from(["latin-1", "utf-8"]),
)
def test_hex_escapes_never_decode_to_a_control_character_fhir_forbids(
    parts: list[bytes | str], charset: str
) -> None:
    text = "".join(p if isinstance(p, str) else f"\\X{p.hex()}\\" for p in parts)
    decoded = unescape(text, charset=charset)
    assert not [c for c in decoded if ord(c) < 32 and c not in "\t\n\r"]


def test_nul_and_bell_escapes_are_dropped_tab_and_line_feed_kept() -> None:
    assert unescape("a\\X00\\b\\X07\\c\\X09\\d\\X0A\\e") == "abc\td\ne"


@given(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF) | st.sampled_from("|^~\\&")
    )
)
def test_escaped_text_survives_the_parser(text: str) -> None:
    msg = parse(
        ("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rNTE|1||" + escape_text(text)).encode()
    )
    seg = msg.segment("NTE")
    assert seg is not None
    assert seg.field(3).value == text


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
)
def test_dtm_to_fhir_keeps_the_instant(moment: datetime, offset_minutes: int) -> None:
    moment = moment.replace(microsecond=0)
    sign = "-" if offset_minutes < 0 else "+"
    hl7 = (
        moment.strftime("%Y%m%d%H%M%S")
        + f"{sign}{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}"
    )
    fhir = to_datetime(hl7, UTC)
    parsed = datetime.fromisoformat(fhir)
    assert parsed == moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))


@given(st.integers(min_value=1, max_value=9999), st.integers(1, 12), st.integers(1, 28))
def test_dtm_date_precisions(year: int, month: int, day: int) -> None:
    y = f"{year:04d}"
    assert to_datetime(y, UTC) == y
    assert to_datetime(f"{y}{month:02d}", UTC) == f"{y}-{month:02d}"
    assert to_datetime(f"{y}{month:02d}{day:02d}", UTC) == f"{y}-{month:02d}-{day:02d}"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6))
def test_nm_to_decimal(value: object) -> None:
    text = str(value)
    assert dt.decimal(text, "OBX-5") == (float(text) if "." in text else int(text))


@given(
    st.lists(
        st.text(alphabet="abcXYZ 019-'", min_size=1, max_size=8).map(str.strip),
        min_size=1,
        max_size=6,
    )
)
def test_xpn_takes_family_and_given_in_order(parts: list[str]) -> None:
    raw = "^".join(escape_text(p) for p in parts)
    msg = parse(("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||X||" + raw).encode())
    seg = msg.segment("PID")
    assert seg is not None
    name = dt.xpn(seg.field(5).rep(1)) or {}
    assert name.get("family", "") == parts[0]
    assert name.get("given", []) == [p for p in parts[1:3] if p]


def _prune_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """prune as first written: the definition the faster one must keep."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = _prune_spec(value)
        elif isinstance(value, list):
            value = [_prune_spec(v) if isinstance(v, dict) else v for v in value]
            value = [v for v in value if v not in (None, "", {}, [])]
        if value not in (None, "", {}, []):
            out[key] = value
    return out


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.floats()
    | st.sampled_from(["", " ", "x", "0"])
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from("abcd"), _JSON, max_size=4))
def test_prune_drops_exactly_the_empty_values(obj: dict[str, Any]) -> None:
    assert repr(dt.prune(obj)) == repr(_prune_spec(obj))


@given(
    st.sampled_from(
        [
            "2026",
            "202611",
            "20261106",
            "2026110607",
            "202611060710",
            "20261106071015.12",
            "20261106071015+0100",
            "20261340",
            "2026x",
        ]
    )
)
def test_to_datetime_remembers_values_not_locations_or_errors(value: str) -> None:
    for location in ("OBX-14", "OBR-7"):
        for instant in (False, True):
            try:
                first: str | Exception = to_datetime(value, UTC, location, instant=instant)
            except MappingError as exc:
                first = exc
            try:
                again: str | Exception = to_datetime(value, UTC, location, instant=instant)
            except MappingError as exc:
                again = exc
            if isinstance(first, Exception):
                assert isinstance(again, MappingError) and str(again) == str(first)
                assert location in str(again)
            else:
                assert again == first


@given(st.from_regex(r"\A\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?)?([+-]\d{4})?\Z"))
def test_to_date_accepts_what_to_datetime_accepts_and_keeps_its_date(value: str) -> None:
    """A DT field holding a whole DTM keeps its date part, and only if the DTM is valid:
    "2026010125" (hour 25) is no date either."""
    try:
        full: str | None = to_datetime(value, UTC)
    except MappingError:
        full = None
    try:
        date_part: str | None = to_date(value)
    except MappingError:
        date_part = None
    assert (full is None) == (date_part is None), (value, full, date_part)
    if full is not None:
        assert full.split("T")[0] == date_part
