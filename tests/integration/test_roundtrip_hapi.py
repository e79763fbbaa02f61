"""The reconstructed Dalakas 1993 cohort through a live HAPI FHIR JPA server and back, cell by cell.

SDTM folder -> `transfer.push` (conditional transactions) -> HAPI -> `transfer.pull_study` by the study's
business identifier -> `fhir_to_trial` -> the same tables as `read_trial` gives: same domains, columns,
rows and text (`74.50` stays `74.50`, so HAPI keeps the decimal as written and the client parses it
exactly). Pushing a second time creates nothing and changes no count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.client import FhirClient, UploadSummary
from adapter.fhir_files import read_resources
from adapter.sources import detect
from adapter.tables import read_trial
from adapter.transfer import PullResult, pull_study, push
from mappings.sdtm import Table, Trial
from mappings.trial import TrialAssembler, trial_to_fhir

pytestmark = pytest.mark.hapi

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
STUDYID = "DALAKAS1993"
TRAILING_ZERO = re.compile(r"^-?[0-9]+\.[0-9]*0$")

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def written() -> Trial:
    return read_trial(FIXTURE)


@pytest.fixture(scope="module")
def emitted(written: Trial) -> list[JSON]:
    return list(trial_to_fhir(written))


@pytest.fixture(scope="module")
def client(hapi_base_url: str, hapi_clean: None) -> Iterator[FhirClient]:
    with FhirClient(hapi_base_url) as fhir:
        yield fhir


@pytest.fixture(scope="module")
def first_push(client: FhirClient) -> UploadSummary:
    return push(client, detect(FIXTURE).resources())


@pytest.fixture(scope="module")
def counts_after_first_push(
    client: FhirClient, first_push: UploadSummary, emitted: list[JSON]
) -> dict[str, int]:
    return server_counts(client, {r["resourceType"] for r in emitted})


@pytest.fixture(scope="module")
def pulled(
    hapi_base_url: str,
    first_push: UploadSummary,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[PullResult, Path]:
    out = tmp_path_factory.mktemp("pulled")
    return pull_study(hapi_base_url, STUDYID, out=out), out


@pytest.fixture(scope="module")
def assembled(pulled: tuple[PullResult, Path]) -> TrialAssembler:
    assembler = TrialAssembler()
    for resource in pulled[0].resources:
        assembler.add(resource)
    return assembler


@pytest.fixture(scope="module")
def back(assembled: TrialAssembler) -> Trial:
    return assembled.tables()


def server_counts(client: FhirClient, resource_types: set[str]) -> dict[str, int]:
    """How many resources of each type the server holds (`_summary=count`)."""
    return {rt: client.search(rt).total() for rt in sorted(resource_types)}


def type_counts(resources: list[JSON]) -> dict[str, int]:
    return dict(sorted(Counter(r["resourceType"] for r in resources).items()))


def table_differences(expected: Table, found: Table) -> list[str]:
    """Every difference between two tables, as readable lines (empty when identical)."""
    problems: list[str] = []
    if found.columns != expected.columns:
        problems.append(f"columns: written {expected.columns}, read back {found.columns}")
    if len(found.rows) != len(expected.rows):
        problems.append(f"rows: written {len(expected.rows)}, read back {len(found.rows)}")
    for number, (want, got) in enumerate(zip(expected.rows, found.rows, strict=False), start=1):
        if got.keys() != want.keys():
            problems.append(f"row {number}: variables {sorted(want)} vs {sorted(got)}")
        for column in expected.columns:
            if want.get(column) != got.get(column):
                problems.append(
                    f"row {number} {column}: written {want.get(column)!r}, "
                    f"read back {got.get(column)!r}"
                )
    return problems


# --- the first push -----------------------------------------------------------------------------


def test_first_push_creates_every_resource_of_the_cohort(
    first_push: UploadSummary, emitted: list[JSON]
) -> None:
    assert first_push.failed == []
    created = {rt: counts.get("created", 0) for rt, counts in first_push.as_dict().items()}
    assert created == type_counts(emitted)


def test_server_holds_exactly_what_was_pushed(
    counts_after_first_push: dict[str, int], emitted: list[JSON]
) -> None:
    assert counts_after_first_push == type_counts(emitted)


def test_resources_keep_their_client_assigned_ids(client: FhirClient, emitted: list[JSON]) -> None:
    # One of each type, read by the id the mapping gave it: conditional PUTs must not re-id them.
    firsts: dict[str, JSON] = {}
    for resource in emitted:
        firsts.setdefault(resource["resourceType"], resource)
    for resource_type, resource in firsts.items():
        stored = client.read(resource_type, resource["id"])
        assert stored["id"] == resource["id"]
        assert stored.get("identifier") == resource.get("identifier")


# --- the pull, back to SDTM ---------------------------------------------------------------------


def test_pull_finds_every_resource_of_the_study(
    pulled: tuple[PullResult, Path], emitted: list[JSON]
) -> None:
    result, _ = pulled
    expected = type_counts([r for r in emitted if r["resourceType"] != "CodeSystem"])
    assert result.counts == expected
    ids = [(r["resourceType"], r["id"]) for r in result.resources]
    assert len(ids) == len(set(ids)), "a resource came back twice"
    assert result.left_out == {}


def test_every_pulled_resource_is_taken_by_a_mapping_family(assembled: TrialAssembler) -> None:
    assert dict(assembled.unrecognised) == {}


def test_same_domains_come_back(written: Trial, back: Trial) -> None:
    assert sorted(back) == sorted(written)


@pytest.mark.parametrize("domain", sorted(p.stem.upper() for p in FIXTURE.glob("*.csv")))
def test_every_table_comes_back_cell_by_cell(domain: str, written: Trial, back: Trial) -> None:
    assert domain in back, f"{domain} did not come back"
    problems = table_differences(written[domain], back[domain])
    assert problems == [], f"{domain}: {len(problems)} differences, first: {problems[:10]}"


def test_decimals_with_trailing_zeros_keep_their_text(written: Trial, back: Trial) -> None:
    """The cells that a float would print differently (`74.50`, `1.0`) come back as written."""
    checked = 0
    for domain, table in written.items():
        found = back.get(domain)
        assert found is not None
        for want, got in zip(table.rows, found.rows, strict=True):
            for column, text in want.items():
                if TRAILING_ZERO.match(text):
                    checked += 1
                    assert got[column] == text, (
                        f"{domain}.{column}: {text!r} came back {got[column]!r}"
                    )
    assert checked > 0, "the cohort has no decimal with a trailing zero: this test checks nothing"


def test_the_pulled_folder_reads_back_to_the_same_tables(
    pulled: tuple[PullResult, Path], written: Trial
) -> None:
    _, out = pulled
    assembler = TrialAssembler()
    for resource in read_resources(out):
        assembler.add(resource)
    from_files = assembler.tables()
    problems = {
        domain: table_differences(table, from_files[domain])[:5]
        for domain, table in written.items()
        if domain not in from_files or table_differences(table, from_files[domain])
    }
    assert problems == {}


# --- the second push ----------------------------------------------------------------------------


def test_second_push_creates_nothing_and_changes_no_count(
    client: FhirClient,
    first_push: UploadSummary,
    counts_after_first_push: dict[str, int],
    pulled: tuple[PullResult, Path],
    emitted: list[JSON],
) -> None:
    second = push(client, detect(FIXTURE).resources())
    assert second.failed == []
    assert second.total("created") == 0, second.as_dict()
    assert second.total("unchanged") == len(emitted), second.as_dict()
    assert server_counts(client, set(counts_after_first_push)) == counts_after_first_push
