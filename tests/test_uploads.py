"""Foreign uploads without a server (adapter.uploads): which path each resource takes, references
rewritten, dependency order, transaction Bundles split only where nothing ties them, everything
checked before the first write."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synthea_like import (
    SYNTHEA,
    hospital_batch,
    hospital_transaction,
    ndjson_folder,
    patient_resources,
    synthea_folder,
    transaction,
)

from adapter.bundles import bundle_result
from adapter.fhir_files import FhirFileError, write_bundle
from adapter.sources import detect
from adapter.uploads import (
    ForeignPlan,
    Step,
    Upload,
    UploadInputError,
    dependency_order,
    is_own,
    pack,
    read_upload,
    split_transaction,
    transaction_problems,
    upload_of,
)

JSON = dict[str, Any]
FIXTURE = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"


def counter() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"00000000-0000-4000-8000-{n:012d}"


def answer(bundle: JSON, first_id: int = 1) -> JSON:
    """A transaction-response creating every entry: 201 and `Type/srv-N/_history/1`."""
    entries = []
    for n, entry in enumerate(bundle["entry"], start=first_id):
        rt = entry["request"]["url"].split("?")[0].split("/")[0]
        entries.append(
            {"response": {"status": "201 Created", "location": f"{rt}/srv-{n}/_history/1"}}
        )
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def run(plan: ForeignPlan) -> list[JSON]:
    """Every Bundle the plan hands out, each answered as created (ids srv-1, srv-2, ...)."""
    plan.check()
    sent: list[JSON] = []
    for step in plan.steps():
        sent.append(copy.deepcopy(step.bundle))
        assert plan.done(bundle_result(answer(step.bundle, plan.sent + 1), step.bundle)) == []
    return sent


def bulk_order() -> list[JSON]:
    """The patient's resources as a Bulk export lists them: by type name, Patient last."""
    resources = json.loads(
        json.dumps(patient_resources("b", observations=3)).replace("urn:uuid:", "")
    )
    for r in resources:
        r.pop("serviceProvider", None)
        if "subject" in r:
            r["subject"]["reference"] = "Patient/" + r["subject"]["reference"]
        if "encounter" in r:
            r["encounter"]["reference"] = "Encounter/" + r["encounter"]["reference"]
    return sorted(resources, key=lambda r: r["resourceType"])


# --- which path -------------------------------------------------------------------------------


def test_the_adapters_resources_are_its_own_and_synthea_ones_are_not() -> None:
    ours = list(detect(FIXTURE).resources())
    assert all(is_own(r) for r in ours)
    assert not any(is_own(r) for r in patient_resources())
    assert not is_own(
        {"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "1"}]}
    )
    assert not is_own({"resourceType": "CodeSystem", "url": "http://loinc.org"})


def test_a_trials_own_transaction_bundle_is_read_as_its_resources(tmp_path: Path) -> None:
    write_bundle(detect(FIXTURE).resources(), tmp_path / "bundle.json")
    upload = read_upload(tmp_path / "bundle.json")
    assert not upload.foreign and not upload.transactions
    assert len(upload.items) == 759
    assert upload.items[3].where == f"{tmp_path / 'bundle.json'}, Bundle entry 4"


def test_a_synthea_folder_is_read_as_transaction_bundles_kept_whole(tmp_path: Path) -> None:
    upload = read_upload(synthea_folder(tmp_path / "fhir"))
    assert upload.foreign
    assert [Path(t.where).name for t in upload.transactions] == ["Ann_p1.json"]
    assert upload.transactions[0].bundle == transaction(patient_resources("p1"))
    (hospital,) = upload.items  # the batch's entry, with its conditional create
    assert hospital.if_none_exist == f"identifier={SYNTHEA}|hospital-p1"
    assert hospital.where == f"{tmp_path / 'fhir' / 'hospitalInformation_p1.json'}, Bundle entry 1"


# --- transaction Bundles as they are ----------------------------------------------------------


def test_a_transaction_bundle_is_sent_as_it_is_after_the_hospital_batch(tmp_path: Path) -> None:
    plan = ForeignPlan(read_upload(synthea_folder(tmp_path / "fhir")), chunk_size=50)
    sent = run(plan)
    (hospital,) = sent[0]["entry"]
    source = hospital_batch("p1")["entry"][0]
    assert hospital["request"] == source["request"]  # POST with the source's ifNoneExist
    assert hospital["resource"] == {k: v for k, v in source["resource"].items() if k != "id"}
    assert sent[1] == transaction(patient_resources("p1"))  # fullUrls, requests, urn:uuid intact
    assert plan.summary.paths == {"as-is": 6, "create-if-none-exist": 1}
    assert plan.summary.sent_whole == []
    assert not plan.idempotent  # the patient's POSTs: re-running would create them again


def test_transaction_bundles_go_after_those_their_references_need(tmp_path: Path) -> None:
    folder = synthea_folder(tmp_path / "fhir", hospital=hospital_transaction("p1"))
    plan = ForeignPlan(read_upload(folder), chunk_size=50)
    sent = run(plan)
    assert sent == [hospital_transaction("p1"), transaction(patient_resources("p1"))]
    assert plan.summary.paths == {"as-is": 7}


def test_a_transaction_is_split_only_where_no_reference_crosses() -> None:
    two = transaction(patient_resources("a") + patient_resources("b"))
    assert split_transaction(two, 6) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert split_transaction(two, 12) == [list(range(12))]
    # one patient cannot be cut: every entry refers to the Patient by urn:uuid
    assert split_transaction(two, 2) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    # a conditional reference equal to another entry's ifNoneExist ties them too
    both = hospital_transaction("a")["entry"] + transaction(patient_resources("a"))["entry"]
    assert split_transaction({"entry": both}, 1) == [list(range(7))]


def test_a_transaction_that_cannot_be_split_is_sent_whole_and_said_so(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    (folder / "p.json").write_text(json.dumps(transaction(patient_resources("a", 8))))
    plan = ForeignPlan(read_upload(folder), chunk_size=3)
    sent = run(plan)
    assert len(sent) == 1 and len(sent[0]["entry"]) == 11
    assert plan.summary.sent_whole == [f"{folder / 'p.json'}: 11 entries"]
    with pytest.raises(UploadInputError) as refused:
        ForeignPlan(read_upload(folder), chunk_size=3, max_transaction_entries=10).check()
    assert "11 entries tied together by references cannot be split, more than 10" in str(
        refused.value
    )


def test_independent_parts_of_a_big_transaction_go_in_chunks_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    big = transaction(
        patient_resources("a", 1) + patient_resources("b", 1) + patient_resources("c", 1)
    )
    (folder / "p.json").write_text(json.dumps(big))
    plan = ForeignPlan(read_upload(folder), chunk_size=8)
    sent = run(plan)
    assert [len(b["entry"]) for b in sent] == [8, 4]  # two patients, then the third
    assert [e for b in sent for e in b["entry"]] == big["entry"]
    assert plan.summary.bundles == 2 and plan.summary.total("created") == 12


def test_a_broken_transaction_bundle_is_refused_entry_by_entry() -> None:
    bundle = transaction(patient_resources("a", 1))
    bundle["entry"][2]["resource"]["subject"]["reference"] = "urn:uuid:nowhere"
    del bundle["entry"][1]["request"]
    bundle["entry"][3]["request"]["url"] = "Patient"
    bundle["entry"].append(
        {"fullUrl": bundle["entry"][0]["fullUrl"], "request": {"method": "PUT", "url": "Patient/x"}}
    )
    problems = transaction_problems(bundle, "f.json")
    assert problems == [
        "f.json, Bundle entry 2: request.method is not one of DELETE, GET, HEAD, PATCH, POST, PUT",
        "f.json, Bundle entry 4: request.url is not of the resource's type",
        "f.json, Bundle entry 5: the same fullUrl as Bundle entry 1",
        "f.json, Bundle entry 5: a PUT without a resource",
        "f.json, Bundle entry 3 (Observation) subject: a urn:uuid reference to no entry of the Bundle",
    ]


# --- create-only and --keep-ids ---------------------------------------------------------------


def test_bulk_resources_are_created_in_dependency_order_with_references_rewritten() -> None:
    upload = upload_of(bulk_order())
    assert [r.resource_type for r in upload.items] == [
        "Condition", "Encounter", "Observation", "Observation", "Observation", "Patient",
    ]  # fmt: skip
    ids = counter()
    plan = ForeignPlan(upload, chunk_size=2, new_uuid=lambda: next(ids))
    sent = run(plan)
    first, second, third = sent
    assert [e["request"] for e in first["entry"]] == [
        {"method": "POST", "url": "Patient"},
        {"method": "POST", "url": "Encounter"},
    ]
    patient, encounter = (e["resource"] for e in first["entry"])
    assert "id" not in patient  # the server assigns it
    assert first["entry"][0]["fullUrl"] == "urn:uuid:00000000-0000-4000-8000-000000000001"
    # inside a transaction: the urn:uuid of the entry
    assert encounter["subject"] == {"reference": first["entry"][0]["fullUrl"]}
    # across transactions: the id the server gave (srv-1 Patient, srv-2 Encounter)
    later = [e["resource"] for b in (second, third) for e in b["entry"]]
    assert [r["resourceType"] for r in later] == [
        "Condition",
        "Observation",
        "Observation",
        "Observation",
    ]
    assert {r["subject"]["reference"] for r in later} == {"Patient/srv-1"}
    assert {r["encounter"]["reference"] for r in later} == {"Encounter/srv-2"}
    assert plan.summary.paths == {"create": 6}
    assert plan.summary.references_rewritten == 9
    assert plan.summary.references_outside == 0
    assert not plan.idempotent


def test_keep_ids_puts_each_resource_by_its_own_id() -> None:
    resources = bulk_order()
    plan = ForeignPlan(
        upload_of(resources), chunk_size=50, keep_ids=True, base_url="http://h/fhir/"
    )
    (bundle,) = run(plan)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert bundle["entry"][0] == {
        "fullUrl": f"http://h/fhir/Patient/{patient['id']}",
        "resource": patient,
        "request": {"method": "PUT", "url": f"Patient/{patient['id']}"},
    }
    assert {e["resource"].get("subject", {}).get("reference") for e in bundle["entry"][1:]} == {
        f"Patient/{patient['id']}"
    }
    assert plan.summary.paths == {"update-by-id": 6}
    assert plan.idempotent


def test_keep_ids_refuses_resources_without_a_usable_id() -> None:
    resources = [{"resourceType": "Patient"}, {"resourceType": "Patient", "id": "a b"}]
    with pytest.raises(UploadInputError) as refused:
        ForeignPlan(upload_of(resources), chunk_size=5, keep_ids=True).check()
    assert refused.value.problems == [
        "resource 0 (Patient): no valid id to keep (--keep-ids)",
        "resource 1 (Patient): no valid id to keep (--keep-ids)",
    ]
    assert refused.value.exit_code == 3


def test_the_adapters_own_resources_keep_their_conditional_path_beside_others() -> None:
    ours = list(detect(FIXTURE).resources())[:3]  # CodeSystem, ResearchStudy, a Patient
    other = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{ours[2]['id']}"},
        "performer": [{"reference": "Practitioner/elsewhere"}],
        "hasMember": [{"reference": "Observation?identifier=urn:x|1"}],
        "contained": [{"resourceType": "Device", "id": "d"}],
        "device": {"reference": "#d"},
    }
    plan = ForeignPlan(upload_of([*ours, other]), chunk_size=10, base_url="http://h/fhir/")
    (bundle,) = run(plan)
    methods = [(e["request"]["method"], e["request"]["url"].split("?")[0]) for e in bundle["entry"]]
    assert methods == [
        ("PUT", "CodeSystem"), ("PUT", "ResearchStudy"), ("PUT", "Patient"), ("POST", "Observation"),
    ]  # fmt: skip
    assert bundle["entry"][2]["request"]["url"].startswith("Patient?identifier=")
    assert bundle["entry"][3]["resource"]["subject"] == {"reference": f"Patient/{ours[2]['id']}"}
    assert plan.summary.paths == {"conditional": 3, "create": 1}
    assert plan.summary.references_outside == 1
    assert plan.summary.references_conditional == 1


def test_a_collection_bundles_urn_uuid_references_are_followed(tmp_path: Path) -> None:
    collection = transaction(patient_resources("c", 1))
    collection["type"] = "collection"
    for entry in collection["entry"]:
        del entry["request"]
        del entry["resource"]["id"]  # resources known only by their fullUrl
    (tmp_path / "c.json").write_text(json.dumps(collection))
    ids = counter()
    plan = ForeignPlan(read_upload(tmp_path / "c.json"), chunk_size=50, new_uuid=lambda: next(ids))
    (bundle,) = run(plan)
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in bundle["entry"]}
    observation = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    assert observation["subject"]["reference"] == urls["Patient"]
    assert observation["encounter"]["reference"] == urls["Encounter"]
    assert (
        urls["Patient"] != collection["entry"][0]["fullUrl"]
    )  # a new one: no clash with the source
    assert plan.summary.references_conditional == 1  # the hospital, not in the upload


def test_urn_uuid_references_in_ndjson_point_at_the_resource_with_that_id() -> None:
    resources = patient_resources("n", 1)  # Synthea's urn:uuid references, read as NDJSON lines
    plan = ForeignPlan(upload_of(resources), chunk_size=2)
    sent = run(plan)
    assert [b["entry"][0]["resource"]["resourceType"] for b in sent] == ["Patient", "Observation"]
    assert sent[0]["entry"][1]["resource"]["subject"]["reference"] == sent[0]["entry"][0]["fullUrl"]
    assert sent[1]["entry"][0]["resource"]["subject"] == {"reference": "Patient/srv-1"}
    assert plan.summary.references_outside == 0


def test_a_conditional_reference_to_an_uploaded_resource_is_rewritten() -> None:
    hospital = hospital_transaction("h")["entry"][0]["resource"]
    patient = patient_resources("h", 0)
    plan = ForeignPlan(upload_of([patient[1], patient[0], hospital]), chunk_size=1)
    sent = run(plan)
    order = [b["entry"][0]["resource"]["resourceType"] for b in sent]
    assert order == ["Patient", "Organization", "Encounter"]
    assert sent[2]["entry"][0]["resource"]["serviceProvider"] == {"reference": "Organization/srv-2"}


def test_resources_referring_to_each_other_stay_in_one_transaction() -> None:
    a = {"resourceType": "Observation", "id": "a", "hasMember": [{"reference": "Observation/b"}]}
    b = {"resourceType": "Observation", "id": "b", "derivedFrom": [{"reference": "Observation/a"}]}
    c = {"resourceType": "Observation", "id": "c"}
    plan = ForeignPlan(upload_of([c, a, b]), chunk_size=1)
    sent = run(plan)
    assert [len(b["entry"]) for b in sent] == [1, 2]
    pair = sent[1]["entry"]
    assert pair[0]["resource"]["hasMember"] == [{"reference": pair[1]["fullUrl"]}]
    assert pair[1]["resource"]["derivedFrom"] == [{"reference": pair[0]["fullUrl"]}]
    with pytest.raises(UploadInputError, match="2 resources refer to each other in a cycle"):
        ForeignPlan(upload_of([c, a, b]), chunk_size=1, max_transaction_entries=1).check()


def test_a_missing_location_that_later_transactions_need_is_a_problem() -> None:
    plan = ForeignPlan(upload_of(bulk_order()), chunk_size=2)
    plan.check()
    step: Step = next(plan.steps())
    response = answer(step.bundle)
    del response["entry"][0]["response"]["location"]
    assert plan.done(bundle_result(response, step.bundle)) == [
        "entry 0 (Patient): no location, and resources still to send refer to it"
    ]


def test_the_same_type_and_id_twice_is_refused_naming_both_places() -> None:
    with pytest.raises(UploadInputError) as refused:
        ForeignPlan(upload_of([{"resourceType": "Patient", "id": "x"}] * 2), chunk_size=5).check()
    assert refused.value.problems == ["resource 1: the same type and id as resource 0"]


def test_bad_bundle_entries_are_all_named_and_nothing_is_read(tmp_path: Path) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/x"}},
            {"resource": {"id": "no-type"}},
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            "text",
        ],
    }
    (tmp_path / "b.json").write_text(json.dumps(batch))
    with pytest.raises(UploadInputError) as refused:
        read_upload(tmp_path / "b.json")
    where = tmp_path / "b.json"
    assert refused.value.problems == [
        f"{where}, Bundle entry 1: a DELETE entry without a resource cannot be uploaded",
        f"{where}, Bundle entry 2: not a FHIR resource (no resourceType)",
        f"{where}, Bundle entry 4: not a Bundle entry (an object)",
    ]


def test_a_bad_ndjson_line_names_file_and_line(tmp_path: Path) -> None:
    folder = ndjson_folder(tmp_path / "bulk")
    with (folder / "Observation.ndjson").open("a") as handle:
        handle.write('{"resourceType": "Observation", \n')
    with pytest.raises(FhirFileError, match=r"Observation.ndjson, line 4: not JSON"):
        read_upload(folder)


def test_a_searchsets_outcome_is_counted_not_uploaded(tmp_path: Path) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "1"}, "search": {"mode": "match"}},
            {"resource": outcome, "search": {"mode": "outcome"}},
        ],
    }
    (tmp_path / "s.json").write_text(json.dumps(searchset))
    upload = read_upload(tmp_path / "s.json")
    assert [i.resource_type for i in upload.items] == ["Patient"]
    assert upload.outcomes_skipped == 1


# --- the pure graph work ----------------------------------------------------------------------


def test_dependency_order_puts_targets_first_cycles_together_ties_by_input_order() -> None:
    edges = {0: [3], 1: [], 2: [1, 4], 4: [2], 3: []}
    assert dependency_order(5, edges) == [[1], [2, 4], [3], [0]]
    assert dependency_order(3, {}) == [[0], [1], [2]]


def test_dependency_order_of_a_long_chain_needs_no_recursion() -> None:
    n = 50_000
    order = dependency_order(n, {i: [i + 1] for i in range(n - 1)})
    assert order == [[i] for i in reversed(range(n))]


def test_pack_never_cuts_a_group() -> None:
    assert pack([[0], [1, 2], [3, 4, 5, 6], [7]], 3) == [[0, 1, 2], [3, 4, 5, 6], [7]]
    assert pack([], 3) == []


def test_checking_twice_counts_once() -> None:
    plan = ForeignPlan(upload_of(bulk_order()), chunk_size=50)
    plan.check()
    plan.check()
    (bundle,) = run(plan)
    assert len(bundle["entry"]) == 6
    assert plan.summary.references_rewritten == 9


def test_an_upload_of_nothing_sends_nothing() -> None:
    plan = ForeignPlan(Upload(), chunk_size=5)
    plan.check()
    assert list(plan.steps()) == []


def test_a_synthea_folder_of_ndjson_keeps_the_source_ids_out_of_the_request(tmp_path: Path) -> None:
    plan = ForeignPlan(read_upload(ndjson_folder(tmp_path / "bulk")), chunk_size=50)
    (bundle,) = run(plan)
    assert all("id" not in e["resource"] for e in bundle["entry"])
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])
    assert plan.summary.references_rewritten == 9
    assert SYNTHEA in json.dumps(bundle)  # identifiers are kept as they are
