"""The results of a reanalysis: one EndpointResult per endpoint, and their JSON form.

JSON shape (keys sorted, no timestamps):
`{"study", "title", "source", "reconstructed", "endpoints": {"E1": {"title", "values", "published",
"methods", "excluded", "null_reasons", "agreement", "supplementary"}, ...}}`.
`values` holds exactly the spec's value names; anything else the analysis reports goes to
`supplementary`. The per-subject analysis datasets behind the numbers stay in `Results.datasets`
(DataFrames, for figures and CSV output), not in the JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from adapter.analysis.definition import PublishedFigure, StudyDefinition

__all__ = ["EndpointResult", "Exclusion", "Results", "Value"]

Value = float | int | None


@dataclass(frozen=True, order=True)
class Exclusion:
    """A subject left out of an endpoint, and why."""

    usubjid: str
    reason: str


def _clean(value: Value) -> Value:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class EndpointResult:
    """One endpoint's reanalysis, beside its published figures."""

    endpoint: str
    title: str
    values: dict[str, Value]
    published: dict[str, PublishedFigure] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    excluded: list[Exclusion] = field(default_factory=list)
    null_reasons: dict[str, str] = field(default_factory=dict)
    supplementary: dict[str, Value | str] = field(default_factory=dict)

    def agreement(self) -> dict[str, bool | None]:
        """Per published figure with a relation: does the reanalysis satisfy it (None: no value)."""
        return {
            name: figure.agrees_with(
                self.values.get(name),
                self.values.get(figure.than) if figure.than is not None else None,
            )
            for name, figure in sorted(self.published.items())
            if figure.relation is not None and name in self.values
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form of this endpoint."""
        return {
            "title": self.title,
            "values": {name: _clean(value) for name, value in self.values.items()},
            "published": {name: fig.as_dict() for name, fig in sorted(self.published.items())},
            "methods": dict(sorted(self.methods.items())),
            "excluded": [
                {"usubjid": e.usubjid, "reason": e.reason} for e in sorted(set(self.excluded))
            ],
            "null_reasons": dict(sorted(self.null_reasons.items())),
            "agreement": self.agreement(),
            "supplementary": {
                name: _clean(value) if not isinstance(value, str) else value
                for name, value in sorted(self.supplementary.items())
            },
        }


@dataclass
class Results:
    """A whole reanalysis: study identity, where the data came from, and E1-E8."""

    study: str
    title: str
    source: str
    reconstructed: bool
    endpoints: dict[str, EndpointResult]
    definition: StudyDefinition
    datasets: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the results.json document)."""
        return {
            "study": self.study,
            "title": self.title,
            "source": self.source,
            "reconstructed": self.reconstructed,
            "endpoints": {key: self.endpoints[key].to_dict() for key in sorted(self.endpoints)},
        }

    def to_json(self) -> str:
        """results.json text: deterministic (sorted endpoint keys, stable value order), UTF-8."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
