"""`trialfhir pull` by `--patient`, `--group` and `--search`, and `--study --all-events`, against
canned servers (pytest-httpx) for the shapes a live HAPI does not show on demand: a server without
`Patient/$everything`, one that offers it and then refuses it, paging, errors with their
OperationOutcome. The live pulls are in tests/integration/test_cohorts_hapi.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from adapter.cli import main
from adapter.cli._common import (
    EXIT_AUTH,
    EXIT_NOT_FOUND,
    EXIT_NOTHING_CONVERTED,
    EXIT_SERVER_ANSWER,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from adapter.cohorts import (
    LEFT_OUT_INACTIVE,
    LEFT_OUT_NOT_PATIENT,
    InvalidSelection,
    group_members,
    parse_search,
)
from mappings.identity import SID_STUDY
from mappings.terminology import EXT_RESEARCH_STUDY

BASE = "http://fhir.test/fhir"
JSON = dict[str, Any]


def capability(*, everything: bool) -> JSON:
    patient: JSON = {"type": "Patient"}
    if everything:
        patient["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            }
        ]
    types = ["Observation", "Condition", "Group", "Practitioner"]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "fhirVersion": "4.0.1",
        "kind": "instance",
        "format": ["json"],
        "date": "2026-11-30",
        "rest": [{"mode": "server", "resource": [patient, *({"type": t} for t in types)]}],
    }


def bundle(resources: list[JSON], *, next_url: str | None = None, mode: str = "match") -> JSON:
    page: JSON = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": mode}} for r in resources],
    }
    if next_url:
        page["link"] = [{"relation": "next", "url": next_url}]
    return page


def outcome(text: str) -> JSON:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


def patient(pid: str) -> JSON:
    return {"resourceType": "Patient", "id": pid}


def observation(oid: str, pid: str, **extra: Any) -> JSON:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 70.5, "unit": "kg"},
        **extra,
    }


Route = Callable[[httpx.Request], httpx.Response | None]


class FakeServer:
    """A FHIR server scripted per test: routes by method and path, everything asked recorded."""

    def __init__(self, httpx_mock: HTTPXMock, *, everything: bool) -> None:
        self.seen: list[httpx.Request] = []
        self.routes: dict[str, Route] = {}
        self.route(
            "/metadata", lambda r: httpx.Response(200, json=capability(everything=everything))
        )
        httpx_mock.add_callback(self.answer, is_reusable=True)

    def route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path.removeprefix("/fhir")
        handler = self.routes.get(path)
        found = handler(request) if handler is not None else None
        return found if found is not None else httpx.Response(404, json=outcome("no route"))

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/fhir") for r in self.seen]


def patients_by_id(*known: str) -> Route:
    def answer(request: httpx.Request) -> httpx.Response:
        asked = request.url.params["_id"].split(",")
        return httpx.Response(200, json=bundle([patient(p) for p in asked if p in known]))

    return answer


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def lines(folder: Path, name: str) -> list[JSON]:
    text = (folder / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def pull(runner: CliRunner, out: Path, *args: str) -> Any:
    return runner.invoke(main, ["pull", "--server", BASE, "--out", str(out), *args])


# -- what to pull ------------------------------------------------------------------------------------


def test_a_search_is_percent_decoded_and_keeps_a_plus() -> None:
    query = parse_search(
        "Observation?code=http://loinc.org%7C29463-7&date=ge2020-01-01T00:00:00+01:00"
    )
    assert query.resource_type == "Observation"
    assert query.params == (
        ("code", "http://loinc.org|29463-7"),
        ("date", "ge2020-01-01T00:00:00+01:00"),
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("http://x/fhir/Observation?code=1", "not a full URL"),
        ("Patient/123", "a read or operation"),
        ("?code=1", "no resource type"),
        ("Observation?_summary=count", "_summary gives partial resources"),
        ("Observation?=1", "parameter 1 has no valid name"),
    ],
)
def test_what_is_not_a_search_is_refused(text: str, said: str) -> None:
    with pytest.raises(InvalidSelection, match=said):
        parse_search(text)


def test_group_members_are_the_active_patients_of_this_server() -> None:
    group = {
        "resourceType": "Group",
        "member": [
            {"entity": {"reference": "Patient/a"}},
            {"entity": {"reference": f"{BASE}/Patient/b/_history/2"}},
            {"entity": {"reference": "Patient/a"}},
            {"entity": {"reference": "Practitioner/x"}},
            {"entity": {"reference": "http://elsewhere/fhir/Patient/c"}},
            {"entity": {"identifier": {"system": "urn:mrn", "value": "1"}}},
            {"entity": {"reference": "Patient/d"}, "inactive": True},
        ],
    }
    ids, left_out = group_members(group, BASE)
    assert ids == ["a", "b"]
    assert left_out == {LEFT_OUT_NOT_PATIENT: 3, LEFT_OUT_INACTIVE: 1}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--patient", "a", "--group", "g"], "exactly one of"),
        ([], "exactly one of"),
        (["--patient", "a", "--all-events"], "--all-events goes with --study"),
        (["--study", "S", "--include", "Observation:patient"], "--include goes with --search"),
        (
            ["--search", "Observation", "--type", "Condition"],
            "--type goes with --patient or --group",
        ),
        (["--search", "Observation", "--include", "patient"], "not Type:parameter"),
        (["--patient", "a/b"], "--patient 1: not a FHIR id"),
        (["--patient", "a", "--type", "Nonsense"], "--type Nonsense"),
    ],
)
def test_a_wrong_selection_is_a_usage_error_before_any_request(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock, args: list[str], said: str
) -> None:
    result = pull(runner, tmp_path / "out", *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert said in result.output
    assert httpx_mock.get_requests() == []
    assert not (tmp_path / "out").exists()


# -- by patient --------------------------------------------------------------------------------------


def test_without_everything_each_type_is_searched_for_the_patients_with_paging(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=False)
    server.route("/Patient", patients_by_id("p1", "p2"))

    def observations(request: httpx.Request) -> httpx.Response:
        if "page" in request.url.params:  # the second page, by the server's next link
            return httpx.Response(200, json=bundle([observation("o2", "p2")]))
        assert request.url.params["subject"] == "Patient/p1,Patient/p2"
        return httpx.Response(
            200, json=bundle([observation("o1", "p1")], next_url=f"{BASE}/Observation?page=2")
        )

    server.route("/Observation", observations)
    server.route("/Condition", lambda r: httpx.Response(200, json=bundle([])))
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1,p2", "--patient", "p1")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(out, "Observation.ndjson")] == ["o1", "o2"]
    assert [r["id"] for r in lines(out, "Patient.ndjson")] == ["p1", "p2"]
    assert not any("$everything" in p for p in server.paths())
    # only the types the CapabilityStatement lists are asked for, and the summary says which not
    assert sorted(set(server.paths())) == ["/Condition", "/Observation", "/Patient", "/metadata"]
    assert "does not offer Patient/$everything" in result.output
    assert "not asked (the server's CapabilityStatement does not list them)" in result.output


def test_everything_refused_with_400_falls_back_to_searches_and_says_why(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1"))
    server.route(
        "/Patient/p1/$everything",
        lambda r: httpx.Response(400, json=outcome("HAPI-0000: Operation not supported here")),
    )
    server.route(
        "/Observation", lambda r: httpx.Response(200, json=bundle([observation("o1", "p1")]))
    )
    server.route("/Condition", lambda r: httpx.Response(200, json=bundle([])))
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1")
    assert result.exit_code == 0, result.output
    assert (
        "Patient/$everything answered HTTP 400: HAPI-0000: Operation not supported here"
        in result.output
    )
    assert [r["id"] for r in lines(out, "Observation.ndjson")] == ["o1"]


def test_everything_pages_are_followed_and_a_shared_resource_is_kept_once(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1", "p2"))
    doctor = {"resourceType": "Practitioner", "id": "dr"}

    def everything_of(pid: str) -> Route:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.params.get("page") == "2":
                return httpx.Response(200, json=bundle([observation(f"o-{pid}", pid)]))
            assert request.url.params["_count"] == "500"
            nxt = f"{BASE}/Patient/{pid}/$everything?page=2"
            return httpx.Response(200, json=bundle([patient(pid), doctor], next_url=nxt))

        return answer

    server.route("/Patient/p1/$everything", everything_of("p1"))
    server.route("/Patient/p2/$everything", everything_of("p2"))
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1", "--patient", "p2")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(out, "Observation.ndjson")] == ["o-p1", "o-p2"]
    assert [r["id"] for r in lines(out, "Practitioner.ndjson")] == ["dr"]
    assert "Patient/$everything for each of the 2 patients" in result.output
    assert server.paths().count("/Patient/p1/$everything") == 2  # both pages


def test_everything_with_types_sends_type_and_leaves_out_what_was_not_asked(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1"))
    sent: list[str] = []

    def everything(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["_type"])
        condition = {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
        }
        return httpx.Response(200, json=bundle([patient("p1"), observation("o1", "p1"), condition]))

    server.route("/Patient/p1/$everything", everything)
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1", "--type", "Observation")
    assert result.exit_code == 0, result.output
    assert sent == ["Observation,Patient"]
    assert not (out / "Condition.ndjson").exists()
    assert "left out: 1 resources of a type not among --type" in result.output


def test_an_unknown_patient_exits_6_by_position_and_nothing_else_is_asked(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1"))
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1,secret-id")
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "1 of the 2 patients" in result.output and "--patient 2" in result.output
    assert "secret-id" not in result.output
    assert server.paths() == ["/metadata", "/Patient"]
    assert not out.exists()


def test_a_refusal_half_way_exits_with_its_class_and_the_server_outcome(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1", "p2"))
    server.route(
        "/Patient/p1/$everything", lambda r: httpx.Response(200, json=bundle([patient("p1")]))
    )
    server.route(
        "/Patient/p2/$everything",
        lambda r: httpx.Response(403, json=outcome("Access to this compartment is denied")),
    )
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1,p2")
    assert result.exit_code == EXIT_AUTH, result.output
    assert "Access to this compartment is denied" in result.output
    assert not out.exists()


def test_a_looping_everything_chain_exits_10(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    server.route("/Patient", patients_by_id("p1"))
    loop = f"{BASE}/Patient/p1/$everything?page=2"
    server.route(
        "/Patient/p1/$everything",
        lambda r: httpx.Response(200, json=bundle([patient("p1")], next_url=loop)),
    )
    result = pull(runner, tmp_path / "out", "--patient", "p1")
    assert result.exit_code == EXIT_SERVER_ANSWER, result.output
    assert "repeats the link of page" in result.output


def test_the_whole_pull_is_bounded_by_max_duration(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        import asyncio

        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=capability(everything=True))
        await asyncio.sleep(30)
        return httpx.Response(200, json=bundle([]))

    httpx_mock.add_callback(slow, is_reusable=True)
    out = tmp_path / "out"
    result = pull(runner, out, "--patient", "p1", "--max-duration", "0.5")
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert "--max-duration" in result.output
    assert not out.exists()


# -- by group ----------------------------------------------------------------------------------------


def test_a_group_pulls_its_active_patient_members_and_says_what_it_left_out(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    group = {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"reference": "Patient/p1"}},
            {"entity": {"reference": "Patient/p2"}, "inactive": True},
            {"entity": {"reference": "Device/d1"}},
        ],
    }
    server.route("/Group/g1", lambda r: httpx.Response(200, json=group))
    server.route("/Patient", patients_by_id("p1", "p2"))
    server.route(
        "/Patient/p1/$everything",
        lambda r: httpx.Response(200, json=bundle([patient("p1"), observation("o1", "p1")])),
    )
    out = tmp_path / "out"
    result = pull(runner, out, "--group", "g1")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(out, "Group.ndjson")] == ["g1"]
    assert [r["id"] for r in lines(out, "Patient.ndjson")] == ["p1"]
    assert "/Patient/p2/$everything" not in server.paths()
    assert f"left out: 1 {LEFT_OUT_INACTIVE}" in result.output
    assert f"left out: 1 {LEFT_OUT_NOT_PATIENT}" in result.output


def test_a_group_without_patients_exits_12_and_an_unknown_group_6(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=True)
    empty = {"resourceType": "Group", "id": "g0", "type": "person", "actual": True}
    server.route("/Group/g0", lambda r: httpx.Response(200, json=empty))
    assert pull(runner, tmp_path / "a", "--group", "g0").exit_code == EXIT_NOTHING_CONVERTED
    result = pull(runner, tmp_path / "b", "--group", "missing")
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- by search ---------------------------------------------------------------------------------------


def test_searches_keep_matches_and_includes_and_report_the_server_messages(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=False)
    asked: list[list[tuple[str, str]]] = []

    def observations(request: httpx.Request) -> httpx.Response:
        asked.append(list(request.url.params.multi_items()))
        page = bundle([observation("o1", "p1"), observation("o2", "p1")])
        page["entry"] += [
            {"resource": patient("p1"), "search": {"mode": "include"}},
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "informational",
                            "diagnostics": "Unknown code ignored",
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            },
        ]
        return httpx.Response(200, json=page)

    server.route("/Observation", observations)
    out = tmp_path / "out"
    result = pull(
        runner, out,
        "--search", "Observation?code=http://loinc.org|29463-7",
        "--include", "Observation:patient",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert asked == [
        [
            ("code", "http://loinc.org|29463-7"),
            ("_include", "Observation:patient"),
            ("_count", "500"),
        ]
    ]
    assert [r["id"] for r in lines(out, "Observation.ndjson")] == ["o1", "o2"]
    assert [r["id"] for r in lines(out, "Patient.ndjson")] == ["p1"]
    assert not (out / "OperationOutcome.ndjson").exists()
    assert "search 1: 2 matches (Observation)" in result.output
    assert "warning informational: Unknown code ignored" in result.output


def test_a_search_that_matches_nothing_exits_12_and_a_refused_one_shows_the_outcome(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=False)
    server.route("/Observation", lambda r: httpx.Response(200, json=bundle([])))
    server.route(
        "/Condition",
        lambda r: httpx.Response(400, json=outcome('HAPI-0488: Unknown search parameter "nope"')),
    )
    result = pull(runner, tmp_path / "a", "--search", "Observation?code=x")
    assert result.exit_code == EXIT_NOTHING_CONVERTED, result.output
    assert "matched nothing" in result.output
    result = pull(runner, tmp_path / "b", "--search", "Condition?nope=1")
    assert result.exit_code == 4, result.output
    assert "HAPI-0488: Unknown search parameter" in result.output


# -- by study, every event ---------------------------------------------------------------------------


def test_study_pull_says_truthfully_why_events_were_left_out_and_all_events_keeps_them(
    runner: CliRunner, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    server = FakeServer(httpx_mock, everything=False)
    study = {
        "resourceType": "ResearchStudy",
        "id": "s1",
        "identifier": [{"system": SID_STUDY, "value": "S1"}],
    }
    subject = {
        "resourceType": "ResearchSubject",
        "id": "rs1",
        "study": {"reference": "ResearchStudy/s1"},
        "individual": {"reference": "Patient/p1"},
    }

    def linked(oid: str, study_ref: str) -> JSON:
        ext = [{"url": EXT_RESEARCH_STUDY, "valueReference": {"reference": study_ref}}]
        return observation(oid, "p1", extension=ext)

    server.route("/ResearchStudy", lambda r: httpx.Response(200, json=bundle([study])))
    server.route(
        "/ResearchSubject",
        lambda r: httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {"resource": subject, "search": {"mode": "match"}},
                    {"resource": patient("p1"), "search": {"mode": "include"}},
                ],
            },
        ),
    )
    events = [
        linked("mine", "ResearchStudy/s1"),
        linked("theirs", "ResearchStudy/s2"),
        observation("hospital", "p1"),
    ]
    server.route("/Observation", lambda r: httpx.Response(200, json=bundle(events)))
    for rt in (
        "Condition",
        "Specimen",
        "MedicationAdministration",
        "Procedure",
        "DiagnosticReport",
        "AdverseEvent",
    ):
        server.route(f"/{rt}", lambda r: httpx.Response(200, json=bundle([])))
    out = tmp_path / "out"
    result = pull(runner, out, "--study", "S1")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(out, "Observation.ndjson")] == ["mine"]
    assert (
        "left out: 1 events linked to no study (no workflow-researchStudy extension)"
        in result.output
    )
    assert "left out: 1 events linked to another study" in result.output
    assert "belong to other studies" not in result.output
    assert "--all-events keeps every event" in result.output

    every = tmp_path / "every"
    result = pull(runner, every, "--study", "S1", "--all-events")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(every, "Observation.ndjson")] == ["hospital", "mine", "theirs"]
    assert "left out" not in result.output
