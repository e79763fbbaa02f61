"""The results of a reanalysis: one EndpointResult per endpoint, and their JSON form.

JSON shape (keys sorted, no timestamps):
`{"study", "title", "source", "reconstructed", "computable_endpoints", "endpoints": {"E1": {"title",
"values", "published", "methods", "excluded", "null_reasons", "computable", "missing_inputs",
"agreement", "supplementary"}, ...}}`. `missing_inputs` names what an endpoint needs and the trial
lacks (domain, variable, test code, period); `computable_endpoints` lists those that lack nothing.
`values` holds exactly the spec's value names; anything else the analysis reports goes to
`supplementary`. What the report draws beside the numbers is in `Results` too, not in the JSON: the
per-subject analysis datasets (`datasets`, written as CSV and plotted) and every subject's score
trajectory (`trajectories`, plotted), so the report needs nothing but the results.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from adapter.analysis.definition import PublishedFigure, Role, StudyDefinition
from mappings.errors import ExitCode, TrialfhirError

__all__ = [
    "Cell",
    "Dataset",
    "EndpointResult",
    "Exclusion",
    "NothingComputable",
    "Results",
    "Trajectories",
    "Trajectory",
    "TrajectoryPoint",
    "Value",
]

Value = float | int | None
Cell = str | int | float | None
"""A dataset cell: text, a number, or None (empty)."""


class NothingComputable(TrialfhirError, LookupError):
    """No endpoint can be computed from the trial: each lacks an input (`missing`: endpoint -> what it
    lacks). The results and the report are written all the same; the CLI exits 13."""

    code: ClassVar[str] = "nothing_computable"
    exit_code: ClassVar[ExitCode] = ExitCode.NOTHING_COMPUTABLE

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        lines = "\n".join(f"  {key}: {'; '.join(lacks)}" for key, lacks in sorted(missing.items()))
        super().__init__(
            "no endpoint can be computed from these data (results.json and the report, written, "
            f"say the same); each lacks what it needs:\n{lines}"
        )


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
    missing_inputs: list[str] = field(default_factory=list)
    """What the endpoint needs and the trial lacks (domain, variable, test code, period): each makes
    the endpoint not computable (adapter/analysis/inputs.py)."""

    @property
    def computable(self) -> bool:
        """Whether the trial holds everything this endpoint needs."""
        return not self.missing_inputs

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
            "computable": self.computable,
            "missing_inputs": list(self.missing_inputs),
            "agreement": self.agreement(),
            "supplementary": {
                name: _clean(value) if not isinstance(value, str) else value
                for name, value in sorted(self.supplementary.items())
            },
        }


@dataclass(frozen=True)
class Dataset:
    """A per-subject analysis table behind the numbers: its columns, and one dict per row."""

    columns: tuple[str, ...]
    rows: list[dict[str, Cell]] = field(default_factory=list)

    def to_csv(self) -> str:
        """CSV text ("\n" line ends, quoted only where needed): a number as Python writes it
        (`72.0`, `7.875`), None and NaN as an empty cell."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([_csv_cell(row[c]) for c in self.columns] for row in self.rows)
        return buffer.getvalue()


def _csv_cell(cell: Cell) -> str:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    return cell if isinstance(cell, str) else repr(cell)


@dataclass(frozen=True)
class TrajectoryPoint:
    """One reading of a subject's score, placed in time and by the treatment being received."""

    day: int
    """Days from the subject's first study-drug dose."""
    value: float
    treatment: Role | None
    """The role of the treatment period the reading falls in (after its first dose, on or before
    its end); None off treatment (screening, baseline, between periods)."""


@dataclass(frozen=True)
class Trajectory:
    """Every dated reading of one subject's score, with the arm the subject was randomised to."""

    usubjid: str
    arm: Role
    points: tuple[TrajectoryPoint, ...]


@dataclass(frozen=True)
class Trajectories:
    """The score trajectories the report draws (E1's score): one per subject that has a randomised
    study arm, a treatment period and a dated study-drug dose, in USUBJID order."""

    testcd: str
    subjects: tuple[Trajectory, ...] = ()
    scored_subjects: int = 0
    """Subjects with at least one reading, drawn or not (the figure fades its marks by it)."""
    missing: str | None = None
    """Why no trajectory can be drawn (a domain or variable the trial lacks), else None."""


@dataclass
class Results:
    """A whole reanalysis: study identity, where the data came from, E1-E8, and what the report
    draws beside them (trajectories and datasets)."""

    study: str
    title: str
    source: str
    reconstructed: bool
    endpoints: dict[str, EndpointResult]
    definition: StudyDefinition
    trajectories: Trajectories
    datasets: dict[str, Dataset] = field(default_factory=dict)

    @property
    def computable(self) -> list[str]:
        """The endpoints the trial holds every input of, in key order."""
        return [key for key in sorted(self.endpoints) if self.endpoints[key].computable]

    def require_computable(self) -> None:
        """Raise NothingComputable when no endpoint can be computed (an empty trial, or one from a
        clinical system without the study's domains), instead of reporting "0 of 0" matches."""
        if not self.computable:
            raise NothingComputable(
                {key: result.missing_inputs for key, result in self.endpoints.items()}
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the results.json document)."""
        return {
            "study": self.study,
            "computable_endpoints": self.computable,
            "title": self.title,
            "source": self.source,
            "reconstructed": self.reconstructed,
            "endpoints": {key: self.endpoints[key].to_dict() for key in sorted(self.endpoints)},
        }

    def to_json(self) -> str:
        """results.json text: deterministic (sorted endpoint keys, stable value order), UTF-8."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
