"""pytest plugin: HAPI FHIR fixtures (being written by the HAPI harness work)."""
