"""Record real HAPI FHIR responses into fixtures/recorded/ for replay with pytest-httpx.

    python tests/recorder/record_hapi.py                      # starts trialfhir's local HAPI
    python tests/recorder/record_hapi.py --base-url URL --expunge   # a server you run (EMPTIED!)

Each file holds a list of exchanges: the request (method, URL with the base rewritten to
``http://fhir.test/fhir``, body) and the response (status, the headers that matter, body). The data
are synthetic Organizations and Patients under the system ``urn:trialfhir:recorded`` with obviously
fake values. See fixtures/recorded/README.md for the list of files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adapter.testing import hapi  # noqa: E402

OUT = ROOT / "fixtures" / "recorded"
REPLAY_BASE = "http://fhir.test/fhir"
SYSTEM = "urn:trialfhir:recorded"
FHIR_JSON = "application/fhir+json"
KEPT_HEADERS = ("content-type", "location", "content-location", "etag", "last-modified")

JSON = dict[str, Any]


class Recorder:
    """Sends requests to the live server and keeps each exchange, base URL rewritten."""

    def __init__(self, base_url: str, out: Path = OUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.out = out
        self.http = httpx.Client(
            headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}, timeout=300.0
        )
        self.exchanges: list[JSON] = []

    def _rewrite(self, text: str) -> str:
        return text.replace(self.base_url, REPLAY_BASE)

    def send(
        self, method: str, url: str, body: JSON | None = None, **params: Any
    ) -> httpx.Response:
        absolute = url if url.startswith("http") else f"{self.base_url}/{url}".rstrip("/")
        response = self.http.request(method, absolute, json=body, params=params or None)
        try:
            response_body: Any = json.loads(self._rewrite(response.text))
        except ValueError:
            response_body = response.text
        self.exchanges.append(
            {
                "request": {
                    "method": method,
                    "url": self._rewrite(str(response.request.url)),
                    "body": body,
                },
                "response": {
                    "status": response.status_code,
                    "headers": {
                        name: self._rewrite(response.headers[name])
                        for name in KEPT_HEADERS
                        if name in response.headers
                    },
                    "body": response_body,
                },
            }
        )
        return response

    def save(self, name: str, description: str, *, compact: bool = False) -> None:
        """Write the exchanges kept so far to ``<out>/<name>`` and start afresh."""
        document = {"description": description, "exchanges": self.exchanges}
        path = self.out / name
        text = json.dumps(document, indent=None if compact else 2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        statuses = ", ".join(str(e["response"]["status"]) for e in self.exchanges)
        print(f"{path}: {len(self.exchanges)} exchange(s), status {statuses}")
        self.exchanges = []

    def silently(self, method: str, url: str, body: JSON | None = None) -> httpx.Response:
        """A set-up request that is not recorded."""
        absolute = url if url.startswith("http") else f"{self.base_url}/{url}"
        response = self.http.request(method, absolute, json=body)
        response.raise_for_status()
        return response


def organization(value: str, id_: str | None = None, name: str = "Recorded Test Org") -> JSON:
    resource: JSON = {
        "resourceType": "Organization",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": name,
    }
    if id_:
        resource["id"] = id_
    return resource


def transaction(entries: list[JSON]) -> JSON:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def put_entry(resource: JSON, url: str) -> JSON:
    return {
        "fullUrl": f"{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": url},
    }


def record_all(rec: Recorder) -> None:
    rec.send("GET", "metadata")
    rec.save(
        "capability_statement.json",
        "GET [base]/metadata: HAPI's CapabilityStatement (one line: it is large)",
        compact=True,
    )

    for n in range(1, 7):
        rec.silently("PUT", f"Organization/rec-org-{n}", organization("ORG-PAGE", f"rec-org-{n}"))
    page = rec.send("GET", "Organization", identifier=f"{SYSTEM}|ORG-PAGE", _count=2, _sort="_id")
    while True:
        links = {link["relation"]: link["url"] for link in page.json().get("link", [])}
        if "next" not in links:
            break
        page = rec.send("GET", links["next"])
    rec.save(
        "searchset_paging.json",
        "A 3-page searchset walk: 6 Organizations, _count=2, following HAPI's _getpages next links",
    )

    rec.send(
        "GET",
        f"{rec.base_url}?_getpages=00000000-dead-beef-0000-000000000000&_getpagesoffset=2&_count=2",
    )
    rec.save(
        "getpages_unknown.json", "A _getpages link the server does not know (expired or bogus)"
    )

    patient = {
        "resourceType": "Patient",
        "id": "rec-pt-0001",
        "identifier": [{"system": SYSTEM, "value": "FAKE-PT-0001"}],
        "gender": "unknown",
    }
    conditional_body = organization("ORG-COND", "rec-org-cond")
    if_none_exist_body = organization("ORG-INE")
    bundle = transaction(
        [
            put_entry(patient, "Patient/rec-pt-0001"),
            put_entry(conditional_body, f"Organization?identifier={SYSTEM}|ORG-COND"),
            {
                "fullUrl": "urn:uuid:7d1c3a52-0000-4000-8000-00000000000a",
                "resource": if_none_exist_body,
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": f"identifier={SYSTEM}|ORG-INE",
                },
            },
        ]
    )
    rec.send("POST", "", bundle)
    rec.save(
        "transaction_conditional_first.json",
        "Transaction on an empty server: PUT by id, conditional PUT (identifier, body id), "
        "POST with ifNoneExist: all created (201)",
    )
    rec.send("POST", "", bundle)
    rec.save(
        "transaction_conditional_repeat.json",
        "The same transaction again: every entry 200 with no new version (no change detected / matched)",
    )

    dangling = organization("ORG-FAIL-2", "rec-org-fail-2")
    dangling["partOf"] = {"reference": "Organization/rec-does-not-exist"}
    rec.send(
        "POST",
        "",
        transaction(
            [
                put_entry(
                    organization("ORG-FAIL-1", "rec-org-fail-1"), "Organization/rec-org-fail-1"
                ),
                put_entry(dangling, "Organization/rec-org-fail-2"),
            ]
        ),
    )
    rec.send("GET", "Organization/rec-org-fail-1")
    rec.save(
        "transaction_failing_entry.json",
        "A transaction whose 2nd entry references a missing resource: the whole transaction is "
        "refused (400, OperationOutcome) and the 1st entry is not written (then 404)",
    )

    rec.send(
        "POST",
        "",
        transaction(
            [
                put_entry(
                    organization("ORG-COND", "rec-org-other"),
                    f"Organization?identifier={SYSTEM}|ORG-COND",
                )
            ]
        ),
    )
    rec.save(
        "transaction_conditional_id_mismatch.json",
        "Conditional PUT whose body id differs from the matching resource's id: 400 (HAPI-2279)",
    )
    rec.send(
        "POST",
        "",
        transaction(
            [
                put_entry(
                    organization("ORG-NEW", "rec-org-cond"),
                    f"Organization?identifier={SYSTEM}|ORG-NEW",
                )
            ]
        ),
    )
    rec.save(
        "transaction_conditional_id_taken.json",
        "Conditional PUT with no match whose body id is taken by another resource: 409",
    )
    for id_ in ("rec-org-dup-1", "rec-org-dup-2"):
        rec.silently("PUT", f"Organization/{id_}", organization("ORG-DUP", id_))
    rec.send(
        "POST",
        "",
        transaction(
            [
                put_entry(
                    organization("ORG-DUP", "rec-org-dup-1"),
                    f"Organization?identifier={SYSTEM}|ORG-DUP",
                )
            ]
        ),
    )
    rec.save(
        "transaction_conditional_multiple_matches.json",
        "Conditional PUT whose search matches two resources: 412 Precondition Failed",
    )

    rec.send("POST", "Patient", {"resourceType": "Patient", "birthDate": "not-a-date"})
    rec.save(
        "create_invalid_resource.json",
        "POST of a Patient HAPI cannot parse: 400 with an OperationOutcome",
    )

    rec.send("GET", "Patient/rec-no-such-patient")
    rec.save("read_not_found.json", "Read of an unknown id: 404 with an OperationOutcome")

    rec.send(
        "POST",
        "Patient/$validate",
        {"resourceType": "Patient", "gender": "female", "birthDate": "1970"},
    )
    rec.save(
        "validate_valid.json", "$validate of a valid Patient: 200, OperationOutcome without errors"
    )
    rec.send("POST", "Patient/$validate", {"resourceType": "Patient", "contact": [{}]})
    rec.save(
        "validate_invalid.json",
        "$validate of an invalid Patient (pat-1): 200, OperationOutcome with error issues",
    )

    rec.send("GET", "Organization", _summary="count", identifier=f"{SYSTEM}|ORG-PAGE")
    rec.save("search_summary_count.json", "_summary=count: a searchset with total and no entries")


@contextlib.contextmanager
def server(base_url: str | None, expunge: bool) -> Iterator[str]:
    if base_url:
        if expunge:
            hapi.expunge_everything(base_url)
        else:
            found = httpx.get(
                f"{base_url.rstrip('/')}/Organization",
                params={"identifier": f"{SYSTEM}|", "_summary": "count"},
                headers={"Accept": FHIR_JSON},
                timeout=120,
            ).json()
            if found.get("total"):
                sys.exit(f"{base_url} already holds recorded data; pass --expunge to empty it")
        yield base_url.rstrip("/")
        return
    with hapi.start_server() as running:
        yield running.base_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running HAPI server (default: start the local one)")
    parser.add_argument(
        "--expunge", action="store_true", help="empty the server at --base-url first ($expunge)"
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="folder to write to (default fixtures/recorded)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with server(args.base_url, args.expunge) as base_url:
        recorder = Recorder(base_url, args.out)
        software = recorder.http.get(f"{base_url}/metadata").json().get("software", {})
        record_all(recorder)
    print(f"recorded from {software.get('name')} {software.get('version')} on {dt.date.today()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
