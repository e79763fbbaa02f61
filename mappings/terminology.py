"""Every code system, code, extension URL and the canonical base, in one place.

Nothing else in the project spells a system URI or an extension URL: import it from here.
"""

from __future__ import annotations

from typing import Final

FHIR_VERSION: Final = "4.0.1"
"""The FHIR release written and accepted (R4). R5 output is a later step; keep it a parameter."""

CANONICAL_BASE: Final = "https://trialfhir.org/fhir"
"""The project's canonical base: its CodeSystem, extensions and identifier systems live under it."""

# --- the project's own CodeSystem (everything without a public code) ---------------------------
PROJECT_CODESYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/trialfhir"
PROJECT_CODESYSTEM_ID: Final = "trialfhir"

# code -> display. QS/RS/MI test codes and the controlled answers that have no public code.
PROJECT_CONCEPTS: Final[dict[str, str]] = {
    # scores (QS)
    "MSSUM": "Muscle-strength sum score",
    "NSSTOT": "Neuromuscular symptom score",
    "RASHGR": "Rash grade",
    # clinical response (RS) and its answers
    "CLINRESP": "Clinical response",
    "MAJOR IMPROVEMENT": "Major improvement",
    "MILD IMPROVEMENT": "Mild improvement",
    "NO CHANGE": "No change",
    "WORSENING": "Worsening",
    # biopsy findings (MI) and their answers
    "FIBDIAM": "Mean muscle fibre diameter",
    "CAPDENS": "Capillary density",
    "CAPDIAM": "Mean capillary diameter",
    "MACCAP": "Membrane attack complex on capillaries",
    "ICAM1": "ICAM-1 expression",
    "MHC1": "MHC class I expression",
    "MICONCL": "Pathologist's conclusion",
    "PRESENT": "Present",
    "ABSENT": "Absent",
    "NONE": "None",
    "FOCAL": "Focal",
    "WIDESPREAD": "Widespread",
    # vital signs without a LOINC mapping below fall back to their VSTESTCD here
    "WEIGHT": "Body weight",
    "HEIGHT": "Body height",
}

# --- public systems -----------------------------------------------------------------------------
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC: Final = "http://www.whocc.no/atc"
UCUM: Final = "http://unitsofmeasure.org"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
NCIT: Final = "http://ncimeta.nci.nih.gov"
ARM_TYPE: Final = "http://terminology.hl7.org/CodeSystem/research-study-arm-type"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
STUDY_PURPOSE: Final = "http://terminology.hl7.org/CodeSystem/research-study-prp-type"
ADMIN_GENDER: Final = "http://hl7.org/fhir/administrative-gender"
DIAGNOSTIC_SERVICE_SECTION: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"
"""HL7 v2 table 0074 (DiagnosticReport.category): PAT = pathology."""
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
AE_SERIOUSNESS: Final = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_SEVERITY: Final = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME: Final = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"

# --- public codes (sources: shared/spec/fhir-conventions.md) ---------------------------------------
DERMATOMYOSITIS_SNOMED: Final = ("396230008", "Dermatomyositis")
DERMATOMYOSITIS_ICD10CM: Final = ("M33.12", "Other dermatomyositis with myopathy")
IVIG_ATC: Final = ("J06BA02", "Immunoglobulins, normal human, for intravascular administration")
PREDNISONE_RXNORM: Final = ("8640", "prednisone")
PREDNISONE_ATC: Final = ("H02AB07", "prednisone")
PLACEBO_NCIT: Final = ("C753", "Placebo")
BODY_WEIGHT_LOINC: Final = ("29463-7", "Body weight")
MUSCLE_BIOPSY_SNOMED: Final = ("178263003", "Biopsy of muscle")
QUADRICEPS_SNOMED: Final = ("21989003", "Quadriceps femoris muscle")
ROUTE_INTRAVENOUS_SNOMED: Final = ("47625008", "Intravenous route")
ROUTE_ORAL_SNOMED: Final = ("26643006", "Oral route")

# --- extensions ---------------------------------------------------------------------------------
EXT_RESEARCH_STUDY: Final = "http://hl7.org/fhir/StructureDefinition/workflow-researchStudy"
"""Standard: links an event (Observation, MedicationAdministration, Procedure, ...) to its ResearchStudy."""
EXT_DATA_ABSENT_REASON: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
"""Standard (valueCode): why a required element has no value, e.g. an empty cell where FHIR needs one."""


def _ext(name: str) -> str:
    return f"{CANONICAL_BASE}/StructureDefinition/{name}"


EXT_SDTM_VARIABLE: Final = _ext("sdtm-variable")
"""Complex: sub-extensions `name` (valueString) and `value` (valueString). Carries every SDTM variable that
has no FHIR element of its own (unknown sponsor columns included), so nothing is dropped."""
EXT_SDTM_DTC: Final = _ext("sdtm-dtc")
"""On a date/dateTime primitive (`_effectiveDateTime` etc.): the SDTM value exactly as written when FHIR
cannot hold it as is (a time without seconds or zone). The FHIR value then holds the date part only."""
EXT_SDTM_TABLE: Final = _ext("sdtm-table")
"""On ResearchStudy: one per domain of the export, sub-extensions `domain` (valueCode) and `column`
(valueString, repeated, in file order), so tables come back with their columns as written."""
EXT_EPOCH: Final = _ext("epoch")
"""valueString: the SDTM EPOCH (trial period) an event belongs to."""
EXT_VISIT: Final = _ext("visit")
"""Complex: `visitnum` (valueDecimal kept as written) and `visit` (valueString)."""
EXT_SUBJECT_ELEMENT: Final = _ext("subject-element")
"""On ResearchSubject, one per SE row: the subject's path through the trial's elements (R4 has no epoch)."""
EXT_ARM_ELEMENT: Final = _ext("arm-element")
"""On ResearchStudy.arm, one per TA row: the planned sequence of elements of that arm."""
EXT_TRIAL_SUMMARY: Final = _ext("trial-summary")
"""On ResearchStudy, one per TS row: the trial summary parameter exactly as written."""
EXT_AGE: Final = _ext("age")
"""On Patient: AGE/AGEU as recorded at the reference start (valueQuantity); never turned into a birth date."""
EXT_ARM_CODE: Final = _ext("arm-code")
"""valueCode: ARMCD / ACTARMCD beside R4's string assignedArm / actualArm."""
EXT_PRESCRIBED_DOSE: Final = _ext("prescribed-dose")
"""On MedicationAdministration.dosage: the prescription as written (e.g. 2 g/kg) beside the given grams."""


def project_coding(code: str, display: str | None = None) -> dict[str, str]:
    """A Coding in the project CodeSystem."""
    coding = {"system": PROJECT_CODESYSTEM, "code": code}
    shown = display if display is not None else PROJECT_CONCEPTS.get(code)
    if shown:
        coding["display"] = shown
    return coding
