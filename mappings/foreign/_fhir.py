"""Reading FHIR R4 written by others: the cheap structural check and the element readers.

"Valid R4" here means: a known R4 resource type, and every element the mapping reads has the R4 JSON
type and cardinality (an object where R4 has 0..1 of a complex type, an array where it has 0..*, a
string for a code or dateTime, a number for a decimal). It is not a full validation: other elements
are never looked at (they cost nothing and change nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from mappings.primitives import decimal_text

JSON = dict[str, Any]

R4_RESOURCE_TYPES: Final = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
"""The 146 resource types of FHIR R4 (4.0.1)."""

# --- the structural check ----------------------------------------------------------------------------

_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)

# kinds: "str", "bool", "num", "dateTime", "CC" (CodeableConcept), "Ref" (Reference), "Qty" (Quantity),
# "Period", "Range", "Identifier", "obj"; a leading "*" means an array of that kind (0..*).
SHAPES: Final[dict[str, dict[str, str]]] = {
    "Patient": {
        "identifier": "*Identifier",
        "gender": "str",
        "birthDate": "dateTime",
        "deceasedBoolean": "bool",
        "deceasedDateTime": "dateTime",
        "extension": "*obj",
        "address": "*obj",
    },
    "ResearchStudy": {"identifier": "*Identifier", "status": "str"},
    "ResearchSubject": {
        "identifier": "*Identifier",
        "status": "str",
        "study": "Ref",
        "individual": "Ref",
        "assignedArm": "str",
        "actualArm": "str",
        "period": "Period",
    },
    "Observation": {
        "status": "str",
        "category": "*CC",
        "code": "CC",
        "subject": "Ref",
        "effectiveDateTime": "dateTime",
        "effectivePeriod": "Period",
        "effectiveInstant": "dateTime",
        "valueQuantity": "Qty",
        "valueCodeableConcept": "CC",
        "valueString": "str",
        "valueBoolean": "bool",
        "valueInteger": "num",
        "component": "*obj",
        "referenceRange": "*obj",
        "interpretation": "*CC",
        "specimen": "Ref",
        "method": "CC",
        "bodySite": "CC",
        "dataAbsentReason": "CC",
    },
    "MedicationStatement": {
        "status": "str",
        "medicationCodeableConcept": "CC",
        "medicationReference": "Ref",
        "subject": "Ref",
        "effectiveDateTime": "dateTime",
        "effectivePeriod": "Period",
        "dosage": "*obj",
        "reasonCode": "*CC",
        "category": "CC",
        "identifier": "*Identifier",
    },
    "MedicationRequest": {
        "status": "str",
        "medicationCodeableConcept": "CC",
        "medicationReference": "Ref",
        "subject": "Ref",
        "authoredOn": "dateTime",
        "dosageInstruction": "*obj",
        "reasonCode": "*CC",
        "category": "*CC",
        "doNotPerform": "bool",
        "identifier": "*Identifier",
    },
    "MedicationAdministration": {
        "status": "str",
        "medicationCodeableConcept": "CC",
        "medicationReference": "Ref",
        "subject": "Ref",
        "effectiveDateTime": "dateTime",
        "effectivePeriod": "Period",
        "dosage": "obj",
        "reasonCode": "*CC",
        "category": "CC",
        "identifier": "*Identifier",
    },
    "Medication": {"code": "CC"},
    "Specimen": {"type": "CC"},
    "AdverseEvent": {
        "identifier": "Identifier",
        "actuality": "str",
        "category": "*CC",
        "event": "CC",
        "subject": "Ref",
        "date": "dateTime",
        "seriousness": "CC",
        "severity": "CC",
        "outcome": "CC",
        "suspectEntity": "*obj",
        "resultingCondition": "*Ref",
    },
    "Condition": {
        "clinicalStatus": "CC",
        "verificationStatus": "CC",
        "category": "*CC",
        "code": "CC",
        "subject": "Ref",
        "onsetDateTime": "dateTime",
        "onsetPeriod": "Period",
        "abatementDateTime": "dateTime",
        "abatementPeriod": "Period",
        "recordedDate": "dateTime",
        "severity": "CC",
        "identifier": "*Identifier",
    },
    "Procedure": {
        "status": "str",
        "category": "CC",
        "code": "CC",
        "subject": "Ref",
        "performedDateTime": "dateTime",
        "performedPeriod": "Period",
        "bodySite": "*CC",
        "identifier": "*Identifier",
    },
}
"""The elements each mapped type reads, with their R4 kind: the whole structural check."""


def _cc_problem(value: Any) -> str | None:
    """`_kind_problem(value, "CC")`: loops written out (the hot check of every mapped resource)."""
    if not isinstance(value, dict):
        return "expected an object"
    coding = value.get("coding")
    if coding is not None:
        if not isinstance(coding, list):
            return "coding: expected an array of objects"
        for c in coding:
            if not isinstance(c, dict):
                return "coding: expected an array of objects"
        for c in coding:
            system, code, display = c.get("system", ""), c.get("code", ""), c.get("display", "")
            if not (isinstance(system, str) and isinstance(code, str) and isinstance(display, str)):
                return "coding: expected strings"
    if not isinstance(value.get("text", ""), str):
        return "text: expected a string"
    return None


def _str_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else "expected a string"


def _bool_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _num_problem(value: Any) -> str | None:
    ok = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    return None if ok else "expected a number"


def _datetime_problem(value: Any) -> str | None:
    if not isinstance(value, str) or _DATETIME_RE.fullmatch(value) is None:
        return "expected a date or dateTime"
    return None


def _obj_problem(value: Any) -> str | None:
    return None if isinstance(value, dict) else "expected an object"


def _qty_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "expected an object"
    if "value" in value and _num_problem(value["value"]) is not None:
        return "value: expected a number"
    unit, code = value.get("unit", ""), value.get("code", "")
    system, comparator = value.get("system", ""), value.get("comparator", "")
    if not (
        isinstance(unit, str)
        and isinstance(code, str)
        and isinstance(system, str)
        and isinstance(comparator, str)
    ):
        return "unit/code/system: expected strings"
    return None


def _identifier_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "expected an object"
    if not (isinstance(value.get("system", ""), str) and isinstance(value.get("value", ""), str)):
        return "system/value: expected strings"
    return None


def _ref_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "expected an object"
    if not isinstance(value.get("reference", ""), str):
        return "reference: expected a string"
    if "identifier" in value and _identifier_problem(value["identifier"]) is not None:
        return "identifier: expected an object"
    return None


def _period_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "expected an object"
    for key in ("start", "end"):
        if key in value and _datetime_problem(value[key]) is not None:
            return f"{key}: expected a dateTime"
    return None


_KIND_PROBLEMS: Final[dict[str, Callable[[Any], str | None]]] = {
    "str": _str_problem,
    "CC": _cc_problem,
    "bool": _bool_problem,
    "num": _num_problem,
    "dateTime": _datetime_problem,
    "Qty": _qty_problem,
    "Ref": _ref_problem,
    "Period": _period_problem,
    "Identifier": _identifier_problem,
}
"""Each kind's check, one function each (looked up once per element, not by a chain of tests)."""


def _kind_problem(value: Any, kind: str) -> str | None:
    """Why `value` is not of `kind` (None when it is); any other kind (`obj`): an object."""
    return _KIND_PROBLEMS.get(kind, _obj_problem)(value)


def _dosage_problem(dosage: JSON) -> str | None:
    """Why an R4 Dosage is not valid for the elements read (text, route, timing, doseAndRate)."""
    if not isinstance(dosage.get("text", ""), str):
        return "text: expected a string"
    if "route" in dosage and _cc_problem(dosage["route"]) is not None:
        return "route: expected a CodeableConcept"
    if "timing" in dosage and not isinstance(dosage["timing"], dict):
        return "timing: expected an object"
    rates = dosage.get("doseAndRate", [])
    if not isinstance(rates, list) or not all(isinstance(r, dict) for r in rates):
        return "doseAndRate: expected an array of objects"
    for rate in rates:
        if "doseQuantity" in rate and _qty_problem(rate["doseQuantity"]) is not None:
            return "doseAndRate.doseQuantity: expected a Quantity with a number"
    return None


MAX_EXTENSION_DEPTH: Final = 8
"""Nested extensions looked at (an extension's own `extension` parts, e.g. US Core race's
`ombCategory`); deeper ones are not looked at (they are never read)."""


def _extension_problem(extensions: Any, depth: int = 1) -> str | None:
    """Why an `extension` array is not valid R4 (every Extension is an object with a string `url`,
    R4 1..1), as the rest of the element path (`: ...` or `.extension: ...`), or None."""
    if not isinstance(extensions, list):
        return ": expected an array (0..*)"
    for extension in extensions:
        if not isinstance(extension, dict):
            return ": expected an array of objects"
        if "url" not in extension:
            return ".url: missing (every extension needs a url, R4 1..1)"
        if not isinstance(extension["url"], str):
            return ".url: expected a string"
        if "extension" in extension and depth < MAX_EXTENSION_DEPTH:
            problem = _extension_problem(extension["extension"], depth + 1)
            if problem is not None:
                return ".extension" + problem
    return None


_SHAPE_STEPS: Final = {
    rtype: tuple(
        (
            element,
            _KIND_PROBLEMS.get(kind.removeprefix("*"), _obj_problem),
            kind.startswith("*"),
        )
        for element, kind in shape.items()
    )
    for rtype, shape in SHAPES.items()
}
"""`SHAPES` as (element, its kind's check, 0..*) steps, the `*` and the kind read once."""


def structural_problem(resource: JSON) -> str | None:
    """Why `resource` is not valid R4 for the elements the mapping reads, or None.

    The reason names the element (`Observation.code: expected an object`), never a value."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or rtype not in R4_RESOURCE_TYPES:
        return "resourceType: not an R4 resource type"
    rid = resource.get("id")
    if rid is not None and not isinstance(rid, str):
        return f"{rtype}.id: expected a string"
    for element in ("extension", "modifierExtension"):
        if element in resource:
            problem = _extension_problem(resource[element])
            if problem is not None:
                return f"{rtype}.{element}{problem}"
    shape = _SHAPE_STEPS.get(rtype, ())
    if shape and "contained" in resource:
        shape = (*shape, ("contained", _obj_problem, True))
    for element, check, many in shape:
        if element not in resource:
            continue
        value = resource[element]
        if many:
            if not isinstance(value, list):
                return f"{rtype}.{element}: expected an array (0..*)"
            for item in value:
                problem = check(item)
                if problem is not None:
                    return f"{rtype}.{element}: {problem}"
        else:
            if isinstance(value, list):
                return f"{rtype}.{element}: expected one value (0..1), not an array"
            problem = check(value)
            if problem is not None:
                return f"{rtype}.{element}: {problem}"
    if rtype in ("MedicationStatement", "MedicationRequest"):
        element = "dosage" if rtype == "MedicationStatement" else "dosageInstruction"
        for dosage in resource.get(element, ()):
            problem = _dosage_problem(dosage)
            if problem is not None:
                return f"{rtype}.{element}.{problem}"
    if rtype == "MedicationAdministration" and "dosage" in resource:
        for key, kind in (("dose", "Qty"), ("route", "CC")):
            if key in resource["dosage"]:
                problem = _kind_problem(resource["dosage"][key], kind)
                if problem is not None:
                    return f"MedicationAdministration.dosage.{key}: {problem}"
    if rtype == "Observation":
        for component in resource.get("component", ()):
            for element, kind in (
                ("code", "CC"),
                ("valueQuantity", "Qty"),
                ("valueCodeableConcept", "CC"),
            ):
                if element in component:
                    problem = _kind_problem(component[element], kind)
                    if problem is not None:
                        return f"Observation.component.{element}: {problem}"
        for low_high in resource.get("referenceRange", ()):
            for key in ("low", "high"):
                if key in low_high:
                    problem = _qty_problem(low_high[key])
                    if problem is not None:
                        return f"Observation.referenceRange.{key}: {problem}"
    return None


# --- element readers ---------------------------------------------------------------------------------

LOINC: Final = "http://loinc.org"


def codings(concept: Any) -> list[JSON]:
    if not isinstance(concept, dict):
        return []
    found = concept.get("coding")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def concept_text(concept: Any) -> str:
    """A CodeableConcept as a person wrote it: `text`, else the first coding's display, else its code."""
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text")
    if isinstance(text, str) and text:
        return text
    for coding in codings(concept):
        for key in ("display", "code"):
            value = coding.get(key)
            if isinstance(value, str) and value:
                return value
    return ""


def first_coding(concept: Any, systems: tuple[str, ...] = ()) -> JSON | None:
    """The first coding of a preferred system (in `systems` order), else the first coding with a code."""
    found = [c for c in codings(concept) if isinstance(c.get("code"), str) and c["code"]]
    for system in systems:
        for coding in found:
            if coding.get("system") == system:
                return coding
    return found[0] if found else None


def coding_codes(concept: Any) -> set[str]:
    return {c["code"] for c in codings(concept) if isinstance(c.get("code"), str)}


def loinc_code(concept: Any) -> str:
    """The first LOINC coding's code (a string), or ''."""
    if not isinstance(concept, dict):
        return ""
    found = concept.get("coding")
    if not isinstance(found, list):
        return ""
    for coding in found:
        if isinstance(coding, dict) and coding.get("system") == LOINC:
            code = coding.get("code")
            if isinstance(code, str):
                return code
    return ""


def quantity_text(quantity: Any) -> tuple[str, str, str]:
    """(value as written, unit as written, UCUM code or ''): the unit is `unit`, else `code`."""
    if not isinstance(quantity, dict) or "value" not in quantity:
        return "", "", ""
    value = decimal_text(quantity["value"])
    comparator = quantity.get("comparator")
    if isinstance(comparator, str):
        value = comparator + value
    unit = quantity.get("unit") or quantity.get("code") or ""
    ucum = quantity.get("code", "") if quantity.get("system") == "http://unitsofmeasure.org" else ""
    return value, str(unit), str(ucum)


_ZONE_RE: Final = re.compile(r"(Z|[+-][0-9]{2}:[0-9]{2})$")


def dtc(value: Any) -> str:
    """A FHIR date/dateTime as an SDTM --DTC: the written local date and time, the zone offset left out
    (SDTM dates carry no zone; the source resource keeps it)."""
    if not isinstance(value, str):
        return ""
    if "T" in value:
        return _ZONE_RE.sub("", value)
    return value


def period_start_end(period: Any) -> tuple[str, str]:
    if not isinstance(period, dict):
        return "", ""
    return dtc(period.get("start")), dtc(period.get("end"))


def reference_keys(reference: Any) -> list[str]:
    """The keys a Reference can be looked up by: `Type/id` (relative or the tail of an absolute URL),
    the literal text (a `urn:uuid:` fullUrl), and `identifier|system|value` for a logical reference."""
    if not isinstance(reference, dict):
        return []
    keys: list[str] = []
    literal = reference.get("reference")
    if isinstance(literal, str) and literal:
        keys.append(literal)
        parts = literal.split("?")[0].rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and not literal.startswith("urn:"):
            keys.append(f"{parts[-2]}/{parts[-1]}")
    identifier = reference.get("identifier")
    if isinstance(identifier, dict):
        keys.append(f"identifier|{identifier.get('system', '')}|{identifier.get('value', '')}")
    return keys
