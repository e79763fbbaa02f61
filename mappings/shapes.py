"""The shapes R4 allows for the elements the family readers read back, checked cheaply.

The family readers (`study`, `subject`, `medication`, `observation`, `biopsy`) read resources of the
adapter's own profile without checking every element's type: doing so on every resource would cost
more than the reading itself. Instead, `mappings.trial.TrialAssembler`:

- checks every resource's top-level elements against `TOP_LEVEL` (one `type()` per element: is
  `identifier` a list, `code` an object, `effectiveDateTime` a string?), which is cheap;
- when a reader fails on a resource all the same (KeyError, TypeError, AttributeError, ...), looks for
  the element that made it fail with `shape_problem`, a full walk of `ELEMENTS`, and reports it: file,
  line and element instead of a traceback (a failure no wrongly shaped element explains is a bug and
  keeps its traceback);
- asks `string_problem` about resources whose text may hold a control character (the reader flags
  `\\u00`) and about those a reader failed on (a date in the year 0000 makes `get_dtc` fail).

Cardinality is R4's: `Observation.identifier` is a list (0..*) while `AdverseEvent.identifier` is one
object (0..1); only the resource types the families take are described.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final

from mappings.sdtm import CONTROL_CHARACTER_RE

__all__ = ["ELEMENTS", "TOP_LEVEL", "shape_problem", "string_problem", "top_level_problem"]

Shape = Any
"""`str`, `NUMBER`, `bool`, `dict` (an object of any content), a dict of element -> shape (an object
whose listed elements are checked), or a one-item list `[shape]` (an array of that shape)."""

NUMBER: Final = "number"
"""A JSON number: int, float or Decimal (never a bool, never a string)."""
POSITIVE_INT: Final = "positiveInt"
"""A JSON integer of 1 or more."""

_ELEMENT: dict[str, Shape] = {}
EXTENSION: dict[str, Shape] = {
    "url": str,
    "valueString": str,
    "valueCode": str,
    "valueDecimal": NUMBER,
    "valueInteger": NUMBER,
    "valuePositiveInt": POSITIVE_INT,
    "valueBoolean": bool,
    "valueDate": str,
    "valueDateTime": str,
}
_ELEMENT["extension"] = [EXTENSION]
EXTENSION["extension"] = [EXTENSION]
PRIMITIVE_EXTENSION: Final = _ELEMENT
"""`_effectiveDateTime`, `_start`, ...: the object beside a primitive that carries its extensions."""
IDENTIFIER: Final = {"system": str, "value": str}
CODING: Final = {"system": str, "code": str, "display": str}
CODEABLE_CONCEPT: Final = {"coding": [CODING], "text": str, "extension": [EXTENSION]}
QUANTITY: Final = {"value": NUMBER, "unit": str, "system": str, "code": str}
REFERENCE: Final = {"reference": str, "display": str, "identifier": IDENTIFIER}
PERIOD: Final = {
    "start": str,
    "end": str,
    "_start": PRIMITIVE_EXTENSION,
    "_end": PRIMITIVE_EXTENSION,
}
EXTENSION.update(
    {
        "valueQuantity": QUANTITY,
        "valuePeriod": PERIOD,
        "valueCodeableConcept": CODEABLE_CONCEPT,
        "valueCoding": CODING,
        "valueReference": REFERENCE,
    }
)

_COMMON: Final[dict[str, Shape]] = {
    "resourceType": str,
    "id": str,
    "identifier": [IDENTIFIER],
    "extension": [EXTENSION],
}

ELEMENTS: Final[dict[str, dict[str, Shape]]] = {
    "CodeSystem": {**_COMMON, "url": str, "version": str},
    "ResearchStudy": {
        **_COMMON,
        "title": str,
        "status": str,
        "primaryPurposeType": CODEABLE_CONCEPT,
        "condition": [CODEABLE_CONCEPT],
        "arm": [{"name": str, "type": CODEABLE_CONCEPT, "extension": [EXTENSION]}],
        "period": PERIOD,
    },
    "Patient": {
        **_COMMON,
        "gender": str,
        "birthDate": str,
        "_birthDate": PRIMITIVE_EXTENSION,
        "address": [{"country": str}],
    },
    "ResearchSubject": {
        **_COMMON,
        "status": str,
        "study": REFERENCE,
        "individual": REFERENCE,
        "assignedArm": str,
        "_assignedArm": PRIMITIVE_EXTENSION,
        "actualArm": str,
        "_actualArm": PRIMITIVE_EXTENSION,
        "period": PERIOD,
    },
    "Condition": {
        **_COMMON,
        "code": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "category": [CODEABLE_CONCEPT],
        "onsetDateTime": str,
        "_onsetDateTime": PRIMITIVE_EXTENSION,
        "abatementDateTime": str,
        "_abatementDateTime": PRIMITIVE_EXTENSION,
        "recordedDate": str,
        "_recordedDate": PRIMITIVE_EXTENSION,
    },
    "AdverseEvent": {
        **_COMMON,
        "identifier": IDENTIFIER,
        "category": [CODEABLE_CONCEPT],
        "event": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "date": str,
        "_date": PRIMITIVE_EXTENSION,
        "seriousness": CODEABLE_CONCEPT,
        "severity": CODEABLE_CONCEPT,
        "outcome": CODEABLE_CONCEPT,
        "suspectEntity": [{"instance": REFERENCE, "causality": [{"assessment": CODEABLE_CONCEPT}]}],
    },
    "MedicationAdministration": {
        **_COMMON,
        "status": str,
        "medicationCodeableConcept": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "effectiveDateTime": str,
        "_effectiveDateTime": PRIMITIVE_EXTENSION,
        "effectivePeriod": PERIOD,
        "reasonCode": [CODEABLE_CONCEPT],
        "category": CODEABLE_CONCEPT,
        "dosage": {
            "text": str,
            "route": CODEABLE_CONCEPT,
            "dose": QUANTITY,
            "extension": [EXTENSION],
        },
    },
    "Observation": {
        **_COMMON,
        "status": str,
        "category": [CODEABLE_CONCEPT],
        "code": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "effectiveDateTime": str,
        "_effectiveDateTime": PRIMITIVE_EXTENSION,
        "valueQuantity": QUANTITY,
        "valueCodeableConcept": CODEABLE_CONCEPT,
        "valueString": str,
        "bodySite": CODEABLE_CONCEPT,
        "method": CODEABLE_CONCEPT,
        "specimen": REFERENCE,
        "referenceRange": [{"low": QUANTITY, "high": QUANTITY}],
        "interpretation": [CODEABLE_CONCEPT],
    },
    "Procedure": {
        **_COMMON,
        "status": str,
        "code": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "performedDateTime": str,
        "_performedDateTime": PRIMITIVE_EXTENSION,
        "performedPeriod": PERIOD,
        "bodySite": [CODEABLE_CONCEPT],
        "category": CODEABLE_CONCEPT,
    },
    "Specimen": {
        **_COMMON,
        "subject": REFERENCE,
        "type": CODEABLE_CONCEPT,
        "collection": dict,
        "condition": [CODEABLE_CONCEPT],
    },
    "DiagnosticReport": {
        **_COMMON,
        "status": str,
        "code": CODEABLE_CONCEPT,
        "subject": REFERENCE,
        "result": [REFERENCE],
        "specimen": [REFERENCE],
        "conclusion": str,
    },
}
"""Resource type -> the elements the family readers read, with the shape R4 gives each."""


def _kind(shape: Shape) -> type | str:
    if isinstance(shape, list):
        return list
    if isinstance(shape, dict):
        return dict
    return shape  # type: ignore[no-any-return]


TOP_LEVEL: Final[dict[str, dict[str, type | str]]] = {
    kind: {name: _kind(shape) for name, shape in elements.items()}
    for kind, elements in ELEMENTS.items()
}
"""Resource type -> element -> the Python type its JSON value must have (`NUMBER` for a number)."""

_NAMES: Final[dict[object, str]] = {
    list: "an array",
    dict: "an object",
    str: "a string",
    bool: "true or false",
}


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if value is None:
        return "null"
    return _NAMES.get(type(value), type(value).__name__)


def _wrong(value: object, kind: type | str) -> str | None:
    """Why `value` does not have the JSON type `kind`, or None."""
    if kind == NUMBER:
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return None
        return f"{_describe(value)} where R4 has a number"
    if kind == POSITIVE_INT:
        if type(value) is int and value >= 1:
            return None
        return f"{_describe(value)} where R4 has a positive integer"
    if type(value) is kind:
        return None
    expected = _NAMES.get(kind, str(kind))
    return f"{_describe(value)} where R4 has {expected}"


def top_level_problem(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(element, reason) for the first top-level element of `resource` whose JSON type R4 does not
    allow there (only the elements the readers read are known), else None. One `type()` per element."""
    kinds = TOP_LEVEL.get(resource.get("resourceType"))  # type: ignore[arg-type]
    if kinds is None:
        return None
    # in C: the type of every value, and the type expected for it (its own for elements not listed)
    types = tuple(map(type, resource.values()))
    if tuple(map(kinds.get, resource, types)) == types:
        return None
    for name, value in resource.items():
        kind = kinds.get(name)
        if kind is not None and type(value) is not kind:
            reason = _wrong(value, kind)
            if reason is not None:
                return f"{resource['resourceType']}.{name}", reason
    return None


def _walk(value: object, shape: Shape, path: str) -> tuple[str, str] | None:
    if not value and isinstance(value, str | list | dict):
        empty = {str: "an empty string", list: "an empty array", dict: "an empty object"}[
            type(value)
        ]
        return path, f"{empty}: R4 has no empty elements"
    if isinstance(shape, list):
        if type(value) is not list:
            return path, _wrong(value, list) or ""
        for index, item in enumerate(value):
            found = _walk(item, shape[0], f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(shape, dict):
        if type(value) is not dict:
            return path, _wrong(value, dict) or ""
        if shape is EXTENSION and "url" not in value:
            return f"{path}.url", "missing: R4 requires an extension's url"
        for name, item in value.items():
            inner = shape.get(name)
            if inner is not None:
                found = _walk(item, inner, f"{path}.{name}")
                if found is not None:
                    return found
        return None
    if shape is dict:
        return None if type(value) is dict else (path, _wrong(value, dict) or "")
    reason = _wrong(value, shape)
    return None if reason is None else (path, reason)


def shape_problem(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(element path, reason) for the first element the readers read whose shape R4 does not allow
    (`Observation.valueQuantity.value`: "a string where R4 has a number"), else None. A full walk:
    for diagnosis, not for every resource."""
    kind = resource.get("resourceType")
    elements = ELEMENTS.get(kind) if isinstance(kind, str) else None
    if elements is None:
        return None
    return _walk(resource, elements, str(kind))


_DATE_ELEMENT: Final = re.compile(
    r"(?:[a-z]*Date(?:Time)?|date|start|end|issued|recorded|lastUpdated|valueInstant)"
)
_YEAR_0000: Final = re.compile(r"0000(?:-|$)")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate code point on its own: JSON's `\\ud800` escape read without its pair."""


def _is_date(path: str) -> bool:
    """A date element (`effectiveDateTime`, `period.start`), or the SDTM date carried beside one
    (`_effectiveDateTime.extension[0].valueString`)."""
    steps = [step.split("[")[0] for step in path.split(".")]
    if _DATE_ELEMENT.fullmatch(steps[-1]):
        return True
    return steps[-1] == "valueString" and any(
        step.startswith("_") and _DATE_ELEMENT.fullmatch(step[1:]) for step in steps
    )


def _strings(value: object, path: str) -> tuple[str, str] | None:
    if isinstance(value, str):
        reason = None
        if CONTROL_CHARACTER_RE.search(value) is not None:
            code = ord(CONTROL_CHARACTER_RE.search(value).group())  # type: ignore[union-attr]
            reason = f"holds the control character U+{code:04X}, which FHIR strings cannot carry"
        elif _SURROGATE.search(value) is not None:
            code = ord(_SURROGATE.search(value).group())  # type: ignore[union-attr]
            reason = (
                f"holds a lone surrogate (U+{code:04X}, a \\u escape without its pair), "
                "which is not a Unicode character"
            )
        elif _YEAR_0000.match(value) and _is_date(path):
            reason = "year 0000 does not exist (FHIR dates start at year 0001)"
        return None if reason is None else (path, reason)
    if isinstance(value, dict):
        for name, item in value.items():
            found = _strings(item, f"{path}.{name}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _strings(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def string_problem(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(element path, reason) for the first string of `resource` that FHIR does not allow: one
    holding a control character (NUL, ...), or a date element in the year 0000. A full walk: for the
    resources whose text the reader flagged (`\\u00` in it) and those a reader failed on."""
    return _strings(resource, str(resource.get("resourceType")))
