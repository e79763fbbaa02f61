"""Lossless FHIR primitives: decimals that keep their written precision, SDTM dates that stay as written,
and the generic carrier for SDTM variables without a FHIR element of their own.

Mapping output is plain JSON-ready dicts; decimals in them are `decimal.Decimal` (the JSON writer emits
them as written: Decimal("74.50") -> 74.50). On the way back a number may arrive as Decimal, int or
float (a float only when the reader has checked that its shortest repr is the text that was written).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from mappings.sdtm import ISO_DTC_RE
from mappings.terminology import EXT_SDTM_DTC, EXT_SDTM_VARIABLE

JSON = dict[str, Any]


def to_decimal(text: str) -> Decimal:
    """A numeric SDTM cell (already checked against the decimal grammar) as a FHIR decimal."""
    return Decimal(text)


def decimal_text(value: object) -> str:
    """The text of a FHIR decimal as written: Decimal and int exactly; a float as the JSON layer
    writes it (orjson's shortest form), which is the written text whenever the reader let a float
    through (it checks exactly that). Anything else, a string included, raises TypeError (the trial
    assembler then names the element: a string where R4 has a number)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a decimal")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return orjson.dumps(value).decode()
    raise TypeError(f"not a decimal: {type(value).__name__}")  # a JSON string is not a FHIR decimal


# --- dates ----------------------------------------------------------------------------------------


def dtc_to_fhir(text: str) -> tuple[str, JSON | None]:
    """An SDTM --DTC value -> (FHIR date/dateTime value, primitive extension element or None).

    Dates (`1991`, `1991-04`, `1991-04-17`) are valid FHIR as written. A value with a time has no time
    zone (and often no seconds), which a FHIR dateTime requires: the FHIR value is then the date part
    (nothing invented) and the value as written rides in the `sdtm-dtc` extension on the primitive.
    """
    m = ISO_DTC_RE.fullmatch(text)
    if m is None or m["hour"] is None:
        return text, None
    date_part = text[:10]
    return date_part, {"extension": [{"url": EXT_SDTM_DTC, "valueString": text}]}


def set_dtc(target: JSON, key: str, text: str) -> None:
    """Set `target[key]` from an SDTM date/time, with `_key` when the written form needs carrying."""
    if not text:
        return
    value, primitive = dtc_to_fhir(text)
    target[key] = value
    if primitive is not None:
        target["_" + key] = primitive


def get_dtc(source: JSON, key: str) -> str:
    """The SDTM date/time written at `source[key]` ("" when absent): the carried form wins.

    Raises:
        ValueError: the date is in the year 0000."""
    primitive = source.get("_" + key)
    if isinstance(primitive, dict):
        for ext in primitive.get("extension", ()):
            if ext.get("url") == EXT_SDTM_DTC and "valueString" in ext:
                return _not_year_0000(str(ext["valueString"]))
    value = source.get(key)
    return "" if value is None else _not_year_0000(str(value))


def _not_year_0000(text: str) -> str:
    """`text`, unless it is a date in the year 0000 (no such year: FHIR dates start at 0001), which
    raises ValueError (the trial assembler then names the element)."""
    if text.startswith("0000"):
        raise ValueError("year 0000 does not exist (FHIR dates start at year 0001)")
    return text


# --- SDTM variables without a FHIR home --------------------------------------------------------------


def variable_extension(name: str, value: str) -> JSON:
    """The `sdtm-variable` extension carrying one cell (name and value exactly as written)."""
    return {
        "url": EXT_SDTM_VARIABLE,
        "extension": [
            {"url": "name", "valueString": name},
            {"url": "value", "valueString": value},
        ],
    }


def variable_extensions(row: dict[str, str], names: list[str] | tuple[str, ...]) -> list[JSON]:
    """`sdtm-variable` extensions for the non-empty cells of `row` among `names`, in that order."""
    return [variable_extension(n, row[n]) for n in names if row.get(n, "") != ""]


def read_variable_extensions(element: JSON) -> dict[str, str]:
    """The cells carried by `sdtm-variable` extensions on `element` (name -> value)."""
    cells: dict[str, str] = {}
    for ext in element.get("extension", ()):
        if ext.get("url") != EXT_SDTM_VARIABLE:
            continue
        name = value = None
        for part in ext.get("extension", ()):
            if part.get("url") == "name":
                name = part.get("valueString")
            elif part.get("url") == "value":
                value = part.get("valueString")
        if name is not None and value is not None:
            cells[str(name)] = str(value)
    return cells


def extension_value(element: JSON, url: str, key: str) -> Any:
    """The `key` (e.g. "valueString") of the first extension with `url` on `element`, or None."""
    for ext in element.get("extension", ()):
        if ext.get("url") == url:
            return ext.get(key)
    return None
