"""Lossless FHIR primitives: decimals that keep their written precision, SDTM dates that stay as written,
and the generic carrier for SDTM variables without a FHIR element of their own.

Mapping output is plain JSON-ready dicts; decimals in them are `decimal.Decimal` (the JSON writer emits
them as written: Decimal("74.50") -> 74.50). On the way back a number may arrive as Decimal, int or
float (a float only when the reader has checked that its shortest repr is the text that was written).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import orjson

from mappings.errors import ExitCode, TrialfhirError
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


# --- reading: every element a reader takes, checked where it is read ------------------------------------
#
# R4 has no null, no empty string, object or array, and one JSON type per element. The family readers
# read the adapter's own profile through these: a value R4 does not allow there raises TypeError, and
# the trial assembler names the element (`mappings.shapes.shape_problem`), never reading it as text
# with `str()` or skipping it by accident (an extension whose `url` is null is refused, not ignored).

_NO_ITEMS: tuple[()] = ()


class ElementMissing(TrialfhirError, LookupError):
    """An element the adapter's profile needs is absent (`element`: its path below the resource,
    e.g. `extension(sdtm-table).extension(column).valueString`); the trial assembler names it (as a
    `ResourceRefused`, so it is bad input)."""

    code: ClassVar[str] = "element_missing"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, element: str) -> None:
        self.element = element
        super().__init__(f"{element}: missing")


def text(element: JSON, key: str) -> str:
    """The string at `element[key]`, "" when the element is absent.

    Raises:
        TypeError: present but not a non-empty string (null, "", a number, an object, an array).
        ValueError: a NUL in it (FHIR strings cannot carry one; one C check, so the readers refuse it
            whether or not the caller asked for a full look at the strings)."""
    value = element.get(key)
    if type(value) is str:
        if value and "\x00" not in value:
            return value
        if value:
            raise ValueError(f"{key}: holds a NUL")
    elif value is None and key not in element:
        return ""
    raise TypeError(f"{key}: not a non-empty string")


def obj(element: JSON, key: str) -> JSON | None:
    """The object at `element[key]`, None when the element is absent.

    Raises:
        TypeError: present but not a non-empty object."""
    value = element.get(key)
    if type(value) is dict:
        if value:
            return value
    elif value is None and key not in element:
        return None
    raise TypeError(f"{key}: not an object with content")


def array(element: JSON, key: str) -> list[Any] | tuple[()]:
    """The array at `element[key]`, () when the element is absent.

    Raises:
        TypeError: present but not a non-empty array."""
    value = element.get(key)
    if type(value) is list:
        if value:
            return value
    elif value is None and key not in element:
        return _NO_ITEMS
    raise TypeError(f"{key}: not an array with content")


def url(extension: object) -> str:
    """The `url` of an extension (R4: required, a non-empty string).

    Raises:
        TypeError: `extension` is not an object, or its url is missing, null, empty or not a string."""
    if type(extension) is dict:
        value = extension.get("url")
        if type(value) is str and value:
            return value
    raise TypeError("extension: not an object with a url")


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
        ValueError: the date is in the year 0000.
        TypeError: the date, the element beside it (`_key`) or its extension is not of the shape R4
            allows (the trial assembler then names the element)."""
    value = source.get(key)
    if (  # the common case, checked inline: a date as written, nothing carried beside it
        type(value) is str
        and value
        and value[:4] != "0000"
        and "\x00" not in value
        and "_" + key not in source
    ):
        return value
    if value is None and key not in source and "_" + key not in source:
        return ""  # absent, nothing carried beside it
    primitive = source.get("_" + key)
    if primitive is not None or "_" + key in source:
        if type(primitive) is not dict or not primitive:
            raise TypeError(f"_{key}: not an object with content")
        for ext in array(primitive, "extension"):
            if url(ext) == EXT_SDTM_DTC and "valueString" in ext:
                return _not_year_0000(text(ext, "valueString"))
    return _not_year_0000(text(source, key))


def _not_year_0000(text: str) -> str:
    """`text`, unless it is a date in the year 0000 (no such year: FHIR dates start at 0001), which
    raises ValueError (the trial assembler then names the element)."""
    if text[:4] == "0000":
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
    """The cells carried by `sdtm-variable` extensions on `element` (name -> value).

    Raises:
        TypeError: an extension, or a part of one, not of the shape R4 allows (see `url`, `text`)."""
    cells: dict[str, str] = {}
    for ext in array(element, "extension"):
        if url(ext) != EXT_SDTM_VARIABLE:
            continue
        name = value = None
        for part in array(ext, "extension"):
            part_url = url(part)
            if part_url == "name":
                name = text(part, "valueString")
            elif part_url == "value":
                value = text(part, "valueString")
        if name and value:
            cells[name] = value
    return cells


def extension_value(element: JSON, ext_url: str, key: str) -> Any:
    """The `key` (e.g. "valueString") of the first extension with `ext_url` on `element`, or None."""
    for ext in array(element, "extension"):
        if url(ext) == ext_url:
            return ext.get(key)
    return None
