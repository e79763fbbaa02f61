"""Record the real HAPI FHIR responses only the client's tests need (the project's recordings in
fixtures/recorded/ cover the rest); run by hand against a live server.

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

    five = [patient(i) for i in range(5)]
    save("transaction-created", http.post(base, json=transaction([put(p) for p in five])))
    save("transaction-unchanged", http.post(base, json=transaction([put(p) for p in five[:2]])))
    save("transaction-updated", http.post(base, json=transaction([put(patient(0, "male"))])))
    save(
        "transaction-conditional-create",
        http.post(base, json=transaction([post(patient(1)), post(patient(7))])),
    )
    save(
        "searchset-empty",
        http.get(f"{base}/Patient", params={"identifier": f"{SYSTEM}|nobody-{run}"}),
    )
    save("search-invalid-date", http.get(f"{base}/Patient", params={"birthdate": "not-a-date"}))


if __name__ == "__main__":
    main(sys.argv[1])
