"""Study reanalysis: endpoints E1-E8 beside the published figures, and a report a clinician can read.

    trial = read_trial("adapter/studies/dalakas1993")  # or fhir_to_trial(resources)
    definition = load_definition("adapter/studies/dalakas1993/study.json")
    results = analyze(trial, definition, source="adapter/studies/dalakas1993")
    paths = write_outputs(results, "out/")

`trial` is a `mappings.sdtm.Trial`: upper-case domain codes ("DM", "SE", ...) to tables whose cells
are strings ("" = missing). `Results` carries everything the report shows, so `write_outputs` needs
nothing else. The analysis never receives a client or reads files other than the definition.
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
from adapter.analysis.results import (
    Dataset,
    EndpointResult,
    Exclusion,
    NothingComputable,
    Results,
    Trajectories,
    Trajectory,
    TrajectoryPoint,
)

__all__ = [
    "VALUE_NAMES",
    "Dataset",
    "DefinitionError",
    "EndpointResult",
    "Exclusion",
    "NothingComputable",
    "Results",
    "StudyDefinition",
    "Trajectories",
    "Trajectory",
    "TrajectoryPoint",
    "analyze",
    "load_definition",
    "parse_definition",
    "write_outputs",
]
