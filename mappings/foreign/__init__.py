"""FHIR R4 written by others (EHR exports, Bulk Data, Synthea, public servers) -> SDTM tables and a
mapping report, with no profile assumed. Pure: no I/O (the reading and writing is `adapter.foreign`).

    result = map_foreign(resources, ForeignOptions(study="STUDY1"))
    result.tables["VS"].rows, result.report.to_json()

Rules, tables and deviations from the HL7/CDISC FHIR to CDISC Joint Mapping IG: docs/foreign-fhir.md.
"""

from mappings.foreign.mapping import (
    COLUMNS,
    DOMAINS,
    ForeignMapping,
    ForeignOptions,
    ForeignResource,
    Table,
    bundle_entries,
    map_foreign,
)
from mappings.foreign.report import MappingReport

__all__ = [
    "COLUMNS",
    "DOMAINS",
    "ForeignMapping",
    "ForeignOptions",
    "ForeignResource",
    "MappingReport",
    "Table",
    "bundle_entries",
    "map_foreign",
]
