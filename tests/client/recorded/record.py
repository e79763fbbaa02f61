"""Record real HAPI FHIR responses for the client's replay tests (run by hand against a live server).

    python tests/client/recorded/record.py http://127.0.0.1:8080/fhir

Writes one JSON file per exchange: {"request": {method, path}, "response": {status, headers, body}}, with
the server's base URL replaced by ``{base}`` so the tests can put their own base back. Uses plain httpx,
not trialfhir's client, so the recordings do not depend on the code they test.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
SYSTEM = "urn:trialfhir:recorded"
KEPT_HEADERS = ("content-type", "etag", "location", "last-modified")


def main(base: str) -> None:
    base = base.rstrip("/")
    run = uuid.uuid4().hex[:8]
    http = httpx.Client(headers={"Accept": "application/fhir+json"}, timeout=120)

    def save(name: str, response: httpx.Response) -> Any:
        text = response.text.replace(base, "{base}")
        record: dict[str, Any] = {
            "request": {
                "method": response.request.method,
                "path": str(response.request.url).replace(base, "{base}"),
            },
            "response": {
                "status": response.status_code,
                "headers": {
                    k: v.replace(base, "{base}")
                    for k, v in response.headers.items()
                    if k.lower() in KEPT_HEADERS
                },
                "body": json.loads(text) if text else None,
            },
        }
        (HERE / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        return record["response"]["body"]

    def patient(i: int, gender: str = "female") -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": f"rec-{run}-{i}",
            "gender": gender,
            "identifier": [{"system": SYSTEM, "value": f"{run}-{i}"}],
        }

    def put(resource: dict[str, Any]) -> dict[str, Any]:
        value = resource["identifier"][0]["value"]
        return {
            "fullUrl": f"{base}/Patient/{resource['id']}",
            "resource": resource,
            "request": {"method": "PUT", "url": f"Patient?identifier={SYSTEM}%7C{value}"},
        }

    def post(resource: dict[str, Any]) -> dict[str, Any]:
        value = resource["identifier"][0]["value"]
        return {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": resource,
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={SYSTEM}%7C{value}",
            },
        }

    def transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    statement = save("capability-statement", http.get(f"{base}/metadata"))
    trim_capability_statement(statement)
    five = [patient(i) for i in range(5)]
    save("transaction-created", http.post(base, json=transaction([put(p) for p in five])))
    save("transaction-unchanged", http.post(base, json=transaction([put(p) for p in five[:2]])))
    save("transaction-updated", http.post(base, json=transaction([put(patient(0, "male"))])))
    save(
        "transaction-conditional-create",
        http.post(base, json=transaction([post(patient(1)), post(patient(7))])),
    )

    ids = ",".join(p["id"] for p in five)
    page = save("searchset-page-1", http.get(f"{base}/Patient", params={"_id": ids, "_count": 2}))
    number = 1
    while link := next((k["url"] for k in page.get("link", []) if k["relation"] == "next"), None):
        number += 1
        page = save(f"searchset-page-{number}", http.get(link.replace("{base}", base)))
    save(
        "searchset-summary-count",
        http.get(f"{base}/Patient", params={"_id": ids, "_summary": "count"}),
    )
    save(
        "searchset-empty",
        http.get(f"{base}/Patient", params={"identifier": f"{SYSTEM}|nobody-{run}"}),
    )
    save(
        "expired-getpages",
        http.get(
            f"{base}", params={"_getpages": str(uuid.uuid4()), "_getpagesoffset": 2, "_count": 2}
        ),
    )

    save("read-not-found", http.get(f"{base}/Patient/missing-{run}"))
    save(
        "create-invalid-gender",
        http.post(f"{base}/Patient", json={"resourceType": "Patient", "gender": "x"}),
    )
    save("search-invalid-date", http.get(f"{base}/Patient", params={"birthdate": "not-a-date"}))
    twin = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": f"twin-{run}"}]}
    http.post(f"{base}/Patient", json=twin)
    http.post(f"{base}/Patient", json=twin)
    save(
        "conditional-update-multiple-matches",
        http.put(f"{base}/Patient", params={"identifier": f"{SYSTEM}|twin-{run}"}, json=twin),
    )
    save(
        "transaction-unparseable",
        http.post(base, json=transaction([put(patient(20)), put(patient(21, "x"))])),
    )
    dangling = {
        "resourceType": "Observation",
        "id": f"rec-{run}-obs",
        "status": "final",
        "identifier": [{"system": SYSTEM, "value": f"{run}-obs"}],
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/nobody-{run}"},
    }
    observation_put = {
        "fullUrl": f"{base}/Observation/{dangling['id']}",
        "resource": dangling,
        "request": {"method": "PUT", "url": f"Observation?identifier={SYSTEM}%7C{run}-obs"},
    }
    save(
        "transaction-rejected",
        http.post(base, json=transaction([put(patient(22)), observation_put])),
    )
    save(
        "validate-invalid",
        http.post(f"{base}/Observation/$validate", json={"resourceType": "Observation"}),
    )
    save("validate-valid", http.post(f"{base}/Patient/$validate", json=patient(30)))


def trim_capability_statement(statement: dict[str, Any]) -> None:
    """HAPI's CapabilityStatement is about 2 MB: keep its header and, per resource, the type and
    interactions (the file then says so in ``_trimmed``)."""
    path = HERE / "capability-statement.json"
    record = json.loads(path.read_text())
    body = record["response"]["body"]
    for rest in body.get("rest", []):
        rest["resource"] = [
            {"type": r["type"], "interaction": r.get("interaction", [])}
            for r in rest.get("resource", [])
        ]
        rest.pop("operation", None)
    body["_trimmed"] = "by record.py: resources keep only type and interaction"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
