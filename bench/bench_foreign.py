"""Benchmark: the profile-free path (FHIR written by others -> SDTM) on a generated Synthea-like Bulk
Data export, as a ratio to the orjson parse floor of the same files, with its peak memory; and, side
by side in the same run, what fhiry and fhir-pyrate take to flatten the same files into generic
DataFrames. Run by hand (results go to docs/performance.md, "FHIR from elsewhere"):

    python bench/bench_foreign.py --patients 400          # ~113,000 resources
    python bench/bench_foreign.py --patients 20 --peers   # a quick look, with the peers

The peers produce generic tables (one column per JSON path, one frame per resource type or one for
all); the adapter produces SDTM (DM, VS, LB, CM, AE, MH, PR with CDISC test codes, standard units and
the mapping report). The times are comparable as "read these files into tables", not as equal work.

Every step runs in a fresh Python process and reports its wall time, CPU time and peak resident
memory (`ru_maxrss`, the interpreter and its imports included; the import-only baseline is printed).
Steps:

- orjson:      orjson.loads of every NDJSON line, nothing else (the floor)
- foreign:     adapter.foreign.convert_foreign(src, out, study=...): read, check, map, write the CSVs
               and the mapping report
- fhiry:       fhiry.Fhirndjson over the folder (process_source: pandas.json_normalize per line)
- fhir-pyrate: Pirate.bundles_to_dataframe over the same resources wrapped in searchset Bundles of
               1,000 entries (its input type), flatten_data, one DataFrame per resource type

The generated files follow Synthea's JSON shapes (US Core Patient with race/ethnicity extensions and
several identifiers, vital signs with a blood-pressure panel, laboratory panels, encounter
diagnoses, MedicationRequests with dosage timing, Procedures with a period, Encounters); AdverseEvent,
which Synthea does not write, in R4's shape (one identifier object). Deterministic (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JSON = dict[str, Any]
STUDY = "SYNBENCH"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

VITALS = (  # code, display, unit, low, high, decimals
    ("8302-2", "Body Height", "cm", 150.0, 195.0, 1),
    ("29463-7", "Body Weight", "kg", 50.0, 120.0, 1),
    ("39156-5", "Body Mass Index", "kg/m2", 18.0, 40.0, 2),
    ("8867-4", "Heart rate", "/min", 55.0, 110.0, 1),
    ("9279-1", "Respiratory rate", "/min", 12.0, 20.0, 1),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.5, 1),
)
LABS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11.0, 17.0, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 11.0, 1),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150.0, 400.0, 1),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65.0, 180.0, 1),
    ("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.6, 1.4, 2),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140.0, 260.0, 1),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 9.0, 1),
    ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.8, 1.4, 2),
    ("99999-9", "A local test without an LBTESTCD", "mg/L", 1.0, 9.0, 1),
)
CONDITIONS = (
    ("44054006", "Diabetes"),
    ("38341003", "Hypertension"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
    ("162864005", "Body mass index 30+ - obesity (finding)"),
    ("55822004", "Hyperlipidemia"),
)
MEDICATIONS = (
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("197361", "Amlodipine 5 MG Oral Tablet"),
)
PROCEDURES = (
    ("430193006", "Medication Reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("171207006", "Depression screening (procedure)"),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _coding(system: str, code: str, display: str) -> JSON:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _when(rng: random.Random, year: int) -> str:
    return (
        f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}-05:00"
    )


def _quantity(rng: random.Random, unit: str, low: float, high: float, decimals: int) -> JSON:
    return {
        "value": round(rng.uniform(low, high), decimals),
        "unit": unit,
        "system": UCUM,
        "code": unit,
    }


def _patient(rng: random.Random, pid: str) -> JSON:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                            "display": "White",
                        },
                    },
                    {"url": "text", "valueString": "White"},
                ],
            },
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2186-5",
                            "display": "Not Hispanic or Latino",
                        },
                    },
                    {"url": "text", "valueString": "Not Hispanic or Latino"},
                ],
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                "valueString": "Maiden" + str(rng.randint(1, 999)),
            },
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                "valueCode": "F",
            },
            {
                "url": "http://synthetichealth.github.io/synthea/quality-adjusted-life-years",
                "valueDecimal": round(rng.uniform(20, 70), 14),
            },
        ],
        "identifier": [
            {"system": "https://github.com/synthetichealth/synthea", "value": pid},
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical Record Number",
                        }
                    ],
                    "text": "Medical Record Number",
                },
                "system": "http://hospital.smarthealthit.org",
                "value": pid,
            },
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "SS",
                            "display": "Social Security Number",
                        }
                    ],
                    "text": "Social Security Number",
                },
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            },
        ],
        "name": [{"use": "official", "family": "Family", "given": ["Given"], "prefix": ["Ms."]}],
        "telecom": [{"system": "phone", "value": "555-555-5555", "use": "home"}],
        "gender": rng.choice(("female", "male")),
        "birthDate": f"{rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "address": [
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                        "extension": [
                            {"url": "latitude", "valueDecimal": 42.1},
                            {"url": "longitude", "valueDecimal": -71.1},
                        ],
                    }
                ],
                "line": ["1 Main St"],
                "city": "Boston",
                "state": "MA",
                "country": "US",
            }
        ],
        "maritalStatus": _coding(
            "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "M"
        ),
        "multipleBirthBoolean": False,
        "communication": [{"language": _coding("urn:ietf:bcp:47", "en-US", "English")}],
    }


def _observation(
    rng: random.Random,
    subject: JSON,
    encounter: JSON,
    when: str,
    category: str,
    test: tuple[str, str, str, float, float, int],
) -> JSON:
    code, display, unit, low, high, decimals = test
    return {
        "resourceType": "Observation",
        "id": _uuid(rng),
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category, "display": category}]}],
        "code": _coding(LOINC, code, display),
        "subject": subject,
        "encounter": encounter,
        "effectiveDateTime": when,
        "issued": when[:19] + ".470-05:00",
        "valueQuantity": _quantity(rng, unit, low, high, decimals),
    }


def _blood_pressure(rng: random.Random, subject: JSON, encounter: JSON, when: str) -> JSON:
    components = [
        {
            "code": _coding(LOINC, code, display),
            "valueQuantity": _quantity(rng, "mm[Hg]", low, high, 0),
        }
        for code, display, low, high in (
            ("8462-4", "Diastolic Blood Pressure", 60.0, 95.0),
            ("8480-6", "Systolic Blood Pressure", 100.0, 160.0),
        )
    ]
    return {
        "resourceType": "Observation",
        "id": _uuid(rng),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": _coding(LOINC, "85354-9", "Blood pressure panel with all children optional"),
        "subject": subject,
        "encounter": encounter,
        "effectiveDateTime": when,
        "issued": when[:19] + ".470-05:00",
        "component": components,
    }


def generate(folder: Path, patients: int, seed: int = 1) -> dict[str, int]:
    """Write Patient, Encounter, Observation, Condition, MedicationRequest, Procedure and AdverseEvent
    NDJSON files into `folder` (Bulk Data layout: one file per type); returns the counts."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = (
        "Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Procedure",
        "AdverseEvent",
    )  # fmt: skip
    handles = {kind: (folder / f"{kind}.ndjson").open("w", encoding="utf-8") for kind in kinds}
    counts = dict.fromkeys(kinds, 0)

    def put(resource: JSON) -> None:
        kind = resource["resourceType"]
        handles[kind].write(json.dumps(resource, separators=(",", ":")) + "\n")
        counts[kind] += 1

    try:
        for _ in range(patients):
            pid = _uuid(rng)
            put(_patient(rng, pid))
            subject = {"reference": f"Patient/{pid}"}
            medications: list[str] = []
            for visit in range(20):
                eid = _uuid(rng)
                when = _when(rng, 2000 + visit)
                encounter = {"reference": f"Encounter/{eid}"}
                put(
                    {
                        "resourceType": "Encounter",
                        "id": eid,
                        "status": "finished",
                        "class": {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "AMB",
                        },
                        "type": [_coding(SNOMED, "185349003", "Encounter for check up")],
                        "subject": subject,
                        "period": {"start": when, "end": when},
                    }
                )
                for vital in VITALS[:5] if visit % 2 else VITALS:
                    put(_observation(rng, subject, encounter, when, "vital-signs", vital))
                put(_blood_pressure(rng, subject, encounter, when))
                for lab in LABS[:6] if visit % 2 else LABS:
                    put(_observation(rng, subject, encounter, when, "laboratory", lab))
                if visit % 4 == 0:
                    code, display = rng.choice(CONDITIONS)
                    condition: JSON = {
                        "resourceType": "Condition",
                        "id": _uuid(rng),
                        "clinicalStatus": _coding(
                            "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "active",
                            "active",
                        ),
                        "verificationStatus": _coding(
                            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "confirmed",
                            "confirmed",
                        ),
                        "category": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/condition-category",
                                "encounter-diagnosis",
                                "Encounter Diagnosis",
                            )
                        ],
                        "code": _coding(SNOMED, code, display),
                        "subject": subject,
                        "encounter": encounter,
                        "onsetDateTime": when,
                        "recordedDate": when,
                    }
                    put(condition)
                if visit % 3 == 0:
                    mid = _uuid(rng)
                    medications.append(mid)
                    code, display = rng.choice(MEDICATIONS)
                    put(
                        {
                            "resourceType": "MedicationRequest",
                            "id": mid,
                            "status": "active",
                            "intent": "order",
                            "medicationCodeableConcept": _coding(RXNORM, code, display),
                            "subject": subject,
                            "encounter": encounter,
                            "authoredOn": when,
                            "requester": {"reference": "Practitioner/p1", "display": "Dr. X"},
                            "dosageInstruction": [
                                {
                                    "sequence": 1,
                                    "timing": {
                                        "repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}
                                    },
                                    "asNeededBoolean": False,
                                    "doseAndRate": [{"doseQuantity": {"value": 1.0}}],
                                }
                            ],
                        }
                    )
                if visit % 4 == 1:
                    code, display = rng.choice(PROCEDURES)
                    put(
                        {
                            "resourceType": "Procedure",
                            "id": _uuid(rng),
                            "status": "completed",
                            "code": _coding(SNOMED, code, display),
                            "subject": subject,
                            "encounter": encounter,
                            "performedPeriod": {"start": when, "end": when},
                        }
                    )
            put(
                {
                    "resourceType": "AdverseEvent",
                    "id": _uuid(rng),
                    "identifier": {"system": "http://example.org/ae", "value": _uuid(rng)},
                    "actuality": "actual",
                    "event": _coding(SNOMED, "39579001", "Anaphylaxis"),
                    "subject": subject,
                    "date": _when(rng, 2010),
                    "seriousness": _coding(
                        "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                        "serious",
                        "Serious",
                    ),
                    "severity": _coding(
                        "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
                        "moderate",
                        "Moderate",
                    ),
                    "outcome": _coding(
                        "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                        "resolved",
                        "Resolved",
                    ),
                    "suspectEntity": [
                        {
                            "instance": {"reference": f"MedicationRequest/{medications[0]}"},
                            "causality": [{"assessment": {"text": "Probably related"}}],
                        }
                    ],
                }
            )
    finally:
        for handle in handles.values():
            handle.close()
    return counts


# --- the steps (each in its own process) ----------------------------------------------------------------


def _lines(src: Path) -> list[Path]:
    return sorted(src.glob("*.ndjson"))


def step_baseline(src: Path, out: Path) -> JSON:
    import orjson  # noqa: F401

    import adapter.foreign  # noqa: F401

    return {"count": 0}


def step_orjson(src: Path, out: Path) -> JSON:
    import orjson

    count = 0
    for path in _lines(src):
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    orjson.loads(line)
                    count += 1
    return {"count": count}


def step_foreign(src: Path, out: Path) -> JSON:
    from adapter.foreign import convert_foreign

    result = convert_foreign(src, out, study=STUDY)
    report = result.mapping.report.to_dict()
    rows = {domain: len(table.rows) for domain, table in result.mapping.tables.items()}
    return {"count": sum(rows.values()), "rows": rows, "report": report}


def step_fhiry(src: Path, out: Path) -> JSON:
    os.environ.setdefault("TQDM_DISABLE", "1")
    from fhiry import Fhirndjson

    reader = Fhirndjson()
    reader.folder = str(src)
    reader.process_source()
    frame = reader.df
    return {"count": int(frame.shape[0]), "columns": int(frame.shape[1])}


def step_pyrate(src: Path, out: Path) -> JSON:
    os.environ.setdefault("TQDM_DISABLE", "1")
    import orjson
    from fhir_pyrate import Pirate
    from fhir_pyrate.util.fhirobj import FHIRObj

    def bundles() -> Any:
        for path in _lines(src):
            entries: list[JSON] = []
            with path.open("rb") as handle:
                for line in handle:
                    entries.append({"resource": orjson.loads(line)})
                    if len(entries) == 1000:
                        yield FHIRObj(
                            **{"resourceType": "Bundle", "type": "searchset", "entry": entries}
                        )
                        entries = []
            if entries:
                yield FHIRObj(**{"resourceType": "Bundle", "type": "searchset", "entry": entries})

    pirate = Pirate(
        base_url="http://127.0.0.1:9/fhir",  # never contacted: bundles_to_dataframe is local
        auth=None,
        disable_multiprocessing_build=True,
        disable_multiprocessing_requests=True,
        silence_fhirpath_warning=True,
    )
    frames = pirate.bundles_to_dataframe(list(bundles()))
    if not isinstance(frames, dict):
        frames = {"all": frames}
    return {
        "count": int(sum(f.shape[0] for f in frames.values())),
        "columns": int(sum(f.shape[1] for f in frames.values())),
    }


STEPS = {
    "baseline": step_baseline,
    "orjson": step_orjson,
    "foreign": step_foreign,
    "fhiry": step_fhiry,
    "fhir-pyrate": step_pyrate,
}


IMPORTS = {
    "orjson": ("orjson",),
    "foreign": ("adapter.foreign",),
    "fhiry": ("fhiry",),
    "fhir-pyrate": ("orjson", "fhir_pyrate", "fhir_pyrate.util.fhirobj"),
}
"""Imported before the clock starts: a step's time is its work, not its imports."""


def _run_step(name: str, src: Path, out: Path) -> None:
    """In the child: run one step, print its numbers as one JSON line."""
    import importlib

    sys.path.insert(0, str(ROOT))
    for module in IMPORTS.get(name, ()):
        importlib.import_module(module)
    start, cpu = time.perf_counter(), time.process_time()
    numbers = STEPS[name](src, out)
    numbers["seconds"] = time.perf_counter() - start
    numbers["cpu_seconds"] = time.process_time() - cpu
    numbers["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(numbers, default=str))


def _child(name: str, src: Path, out: Path, timeout: float) -> JSON:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    command = [sys.executable, __file__, "--step", name, "--src", str(src), "--out", str(out)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s (stopped)"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"error": f"exit {done.returncode}: {last}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--peers", action="store_true", help="also run fhiry and fhir-pyrate")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per step")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        _run_step(args.step, args.src, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="bench-foreign-") as tmp:
        src = Path(tmp) / "export"
        counts = generate(src, args.patients)
        total = sum(counts.values())
        size = sum(p.stat().st_size for p in src.iterdir()) / 1e6
        print(f"generated {total:,} resources ({size:.0f} MB NDJSON): {counts}")
        steps = ["baseline", "orjson", "foreign"]
        if args.peers:
            steps += ["fhiry", "fhir-pyrate"]
        results: dict[str, JSON] = {}
        for name in steps:
            results[name] = _child(name, src, Path(tmp) / f"out-{name}", args.timeout)
            print(
                f"  {name}: {json.dumps({k: v for k, v in results[name].items() if k != 'report'})}"
            )
    floor = results["orjson"].get("seconds")
    floor_cpu = results["orjson"].get("cpu_seconds")
    print()
    print(
        "| step | wall s | CPU s | resources/s (CPU) | x parse floor (wall) | x parse floor (CPU) | peak MB | output |"
    )
    print("|---|---|---|---|---|---|---|---|")
    outputs = {
        "orjson": "parsed dicts, discarded",
        "foreign": "SDTM tables (CSV) + mapping report",
        "fhiry": "one generic DataFrame",
        "fhir-pyrate": "a generic DataFrame per resource type",
    }
    for name in steps[1:]:
        found = results[name]
        if "error" in found:
            print(f"| {name} | - | - | - | - | - | - | {found['error']} |")
            continue
        seconds, cpu = found["seconds"], found["cpu_seconds"]
        ratio = f"{floor / seconds:.2f}x" if floor else "-"
        ratio_cpu = f"{floor_cpu / cpu:.2f}x" if floor_cpu and cpu else "-"
        print(
            f"| {name} | {seconds:.1f} | {cpu:.1f} | {total / cpu:,.0f} | {ratio} | {ratio_cpu} | "
            f"{found['peak_mb']:.0f} | {outputs[name]} |"
        )
    print(f"(import-only baseline: {results['baseline'].get('peak_mb', 0):.0f} MB)")
    if "rows" in results["foreign"]:
        print(f"SDTM rows: {results['foreign']['rows']}")
        report = results["foreign"].get("report", {})
        print("report summary:", json.dumps(report.get("totals", report.get("summary", {})))[:600])


if __name__ == "__main__":
    main()
