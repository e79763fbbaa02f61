"""Opt-in structural validation of FHIR resources with the fhir.resources R4B models (wire-compatible
with R4). Slow next to the mappings (it builds a pydantic model per resource), so it is never in the
conversion's hot path: `trialfhir convert --validate` or tests ask for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["validate_all", "validate_resource"]

MAX_LISTED = 50
"""How many problem lines `validate_all` keeps (the counts are always complete)."""


def _model_class(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def validate_resource(resource: dict[str, Any]) -> list[str]:
    """The problems the R4B model finds in `resource` ("" list when it is valid), each as
    `element.path: message`."""
    from pydantic import ValidationError

    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return ["resourceType: missing"]
    try:
        model = _model_class(resource_type)
    except (KeyError, ValueError, LookupError):
        return [f"resourceType: {resource_type!r} is not an R4B resource type"]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ())) or resource_type
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return problems
    return []


def validate_all(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Validate every resource; a summary: `resources`, `invalid`, `by_type` ({type: {"resources",
    "invalid"}}) and `problems` (the first `MAX_LISTED` lines, `Type/id: path: message`)."""
    total = invalid = 0
    by_type: dict[str, dict[str, int]] = {}
    listed: list[str] = []
    for resource in resources:
        resource_type = str(resource.get("resourceType"))
        counts = by_type.setdefault(resource_type, {"resources": 0, "invalid": 0})
        counts["resources"] += 1
        total += 1
        problems = validate_resource(resource)
        if problems:
            invalid += 1
            counts["invalid"] += 1
            for problem in problems:
                if len(listed) < MAX_LISTED:
                    listed.append(f"{resource_type}/{resource.get('id')}: {problem}")
    return {
        "resources": total,
        "invalid": invalid,
        "by_type": dict(sorted(by_type.items())),
        "problems": listed,
    }
