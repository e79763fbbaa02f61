"""Study reanalysis: endpoints E1-E8 beside the published figures, and a report a clinician can read.

    definition = load_definition("adapter/studies/dalakas1993/study.json")
    results = analyze(tables, definition, source="adapter/studies/dalakas1993")
    paths = write_outputs(results, tables, "out/")

`tables` maps upper-case domain codes ("DM", "SE", ...) to DataFrames of strings ("" = missing).
The analysis never receives a client or reads files other than the definition.
"""

from __future__ import annotations

from adapter.analysis.definition import (
    DefinitionError,
    StudyDefinition,
    load_definition,
    parse_definition,
)
from adapter.analysis.endpoints import VALUE_NAMES, analyze
from adapter.analysis.report import write_outputs
from adapter.analysis.results import EndpointResult, Exclusion, Results

__all__ = [
    "VALUE_NAMES",
    "DefinitionError",
    "EndpointResult",
    "Exclusion",
    "Results",
    "StudyDefinition",
    "analyze",
    "load_definition",
    "parse_definition",
    "write_outputs",
]
