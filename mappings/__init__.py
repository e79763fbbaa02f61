"""Pure mappings between SDTM-shaped trial tables and FHIR R4 resources (no I/O)."""
