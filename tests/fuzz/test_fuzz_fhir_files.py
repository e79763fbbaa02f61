"""Fuzz: FHIR files (NDJSON, Bundles of every layout, nested Bundles) made from the FHIR conversion of a
valid trial, changed (JSON edits of every type swap, duplicates, drops, reordering, byte edits), read
with `read_resources` and assembled into tables (`TrialAssembler`).

Properties (see fhir_cases.py): reading ends in resources or `FhirFileError`; assembling ends in tables
or a documented error; invalid R4 is refused or leaves no trace; content kept gives the same tables; a
conflicting duplicate is bad input; the tables write as CSV that reads back with the same cells.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from adapter.cli._common import EXIT_BAD_INPUT, exit_code_for
from adapter.fhir_files import FhirFileError, read_resources
from adapter.fhir_json import dumps
from adapter.tables import TableError, read_table, write_trial
from mappings.sdtm import DOMAINS, Trial
from mappings.trial import TrialAssembler, fhir_to_trial

from .fhir_cases import (
    Change,
    DuplicateResource,
    EditResource,
    Expect,
    ResourceChanges,
    makes_invalid,
    no_wrong_rows,
    resource_changes,
    serialise,
)
from .mutations import (
    DALAKAS,
    SMALL,
    ByteEdit,
    JsonEdit,
    LineEdit,
    Raw,
    Recipe,
    byte_edits,
    cells,
    deep_array,
    deep_object,
    documented,
    fuzz_settings,
    json_edits,
    known,
    line_edits,
    parse,
    run_guarded,
    to_json,
    undocumented,
    valid_resources,
    valid_trial,
)

SOURCES = {"sdtm_small": SMALL, "dalakas1993": DALAKAS}
SOURCE_NAMES = st.sampled_from(["sdtm_small", "sdtm_small", "sdtm_small", "dalakas1993"])


def assert_tables_hold(
    resources: list[Any], original: Trial, expect: Expect, scratch: Path
) -> None:
    """Assemble `resources` and check what comes out against what the changes promised."""
    assembler = TrialAssembler()

    def assemble() -> Trial:
        for resource in resources:
            assembler.add(resource)
        return assembler.tables()

    trial, error = run_guarded(assemble)
    event(f"assembled: {type(error).__name__ if error else 'tables'}")
    if error is not None:
        assert documented(error), undocumented(error)
        if expect.conflicting_duplicate:
            assert exit_code_for(error) == EXIT_BAD_INPUT, "a conflicting duplicate is bad input"
        return
    assert not expect.conflicting_duplicate, (
        "two resources with the same type and id but different content were accepted"
    )
    if expect.invalid:
        reference: Trial | None = original
        if expect.baseline is not None:  # valid edits too: their rows are the reference
            baseline = expect.baseline
            reference, _ = run_guarded(  # through JSON text: a `Raw` value becomes what it says
                lambda: fhir_to_trial(parse(to_json(d).encode()) for d in baseline)
            )
        if reference is not None:
            wrong = no_wrong_rows(reference, trial, assembler, expect.rows_may_go)
            assert wrong is None, wrong
    elif expect.content_kept and not expect.rows_may_go:
        assert {c: sorted(r) for c, (_, r) in cells(trial).items()} == {
            c: sorted(r) for c, (_, r) in cells(original).items()
        }, "the same resources (reordered, or an identical copy) gave other tables"
    written = scratch / "sdtm"
    try:
        write_trial(trial, written)
    except TableError as exc:
        # valid R4 holds strings up to 1 MB; a cell longer than the one CSV cell limit is refused,
        # every such cell named, before any file is written (docs/files.md): a documented error
        assert all("the limit for CSV cells" in problem.reason for problem in exc.problems), exc
        assert not written.exists() or not any(written.iterdir()), "a refused write left files"
        return
    for code, table in trial.items():
        assert code in DOMAINS, f"FHIR became a table of a domain that does not exist: {code!r:.40}"
        again, _ = read_table(written / f"{code.lower()}.csv", code)
        assert again is not None and cells({code: again}) == cells({code: table}), (
            f"{code}: the CSV written from FHIR does not read back with the same cells"
        )


# --- NDJSON ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NdjsonCase(Recipe):
    changes: ResourceChanges
    text_edits: tuple[ByteEdit | LineEdit, ...]


@st.composite
def ndjson_cases(draw: st.DrawFn) -> NdjsonCase:
    source = draw(SOURCE_NAMES)
    lines = valid_resources(SOURCES[source])
    changes = draw(resource_changes(source, lines))
    size = sum(len(line) + 1 for line in lines)
    text = st.one_of(line_edits(), byte_edits(size))
    return NdjsonCase(changes, tuple(draw(st.lists(text, max_size=1))))


def _ndjson(*changes: Change) -> dict[str, NdjsonCase]:
    return {"case": NdjsonCase(ResourceChanges("sdtm_small", changes), ())}


QUANTITY = ("valueQuantity", "value")  # of resource 27 of sdtm_small, a VS Observation


@fuzz_settings(120)
@known(  # each a case of issue 8, in sdtm_small's resources (1 ResearchStudy, 2 Patient, 4 ResearchSubject)
    _ndjson(EditResource(0, JsonEdit(("caseSensitive",), "replace", "deep", deep_array(2000)))),
    _ndjson(EditResource(0, JsonEdit(("caseSensitive",), "replace", "deep", deep_object(100_000)))),
    _ndjson(EditResource(1, JsonEdit(("arm",), "wrap"))),
    _ndjson(EditResource(27, JsonEdit(("identifier",), "unwrap"))),
    _ndjson(EditResource(4, JsonEdit(("_actualArm",), "replace", "null", None))),
    _ndjson(DuplicateResource(8)),
    _ndjson(DuplicateResource(27, JsonEdit(QUANTITY, "replace", "1.5", 1.5))),
    _ndjson(EditResource(27, JsonEdit(QUANTITY, "replace", "NaN", Raw("NaN")))),
    _ndjson(EditResource(27, JsonEdit(QUANTITY, "replace", "Infinity", Raw("Infinity")))),
    _ndjson(EditResource(27, JsonEdit(QUANTITY, "replace", "number as string", "74.50"))),
    _ndjson(
        EditResource(27, JsonEdit(("effectiveDateTime",), "replace", "year 0000", "0000-01-01"))
    ),
    _ndjson(EditResource(2, JsonEdit(("birthDate",), "replace", "NUL", "a\x00b"))),
    _ndjson(EditResource(27, JsonEdit(("code", "text"), "replace", "long string", "x" * 140_000))),
    _ndjson(EditResource(27, JsonEdit(("code", "text"), "replace", "lone surrogate", "\ud800"))),
)
@given(case=ndjson_cases())
def test_mutated_ndjson_reads_and_assembles_or_is_refused(case: NdjsonCase) -> None:
    source = SOURCES[case.changes.source]
    documents, expect = case.changes.apply(valid_resources(source))
    data = serialise(documents)
    for edit in case.text_edits:
        data = edit.apply(data)
        if isinstance(edit, ByteEdit) or edit.op == "remove":
            expect.content_kept = False
            expect.rows_may_go = True
        elif edit.op == "duplicate":
            expect.conflicting_duplicate = False  # an identical line: content kept
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fhir"
        folder.mkdir()
        (folder / "resources.ndjson").write_bytes(data)
        resources, error = run_guarded(lambda: list(read_resources(folder)))
        event(f"read: {type(error).__name__ if error else 'resources'}")
        if error is not None:
            assert isinstance(error, FhirFileError), undocumented(error)
            return
        assert_tables_hold(resources, valid_trial(source), expect, Path(tmp))


# --- Bundles -------------------------------------------------------------------------------------------------

CONTAINERS = ("transaction-streamed", "collection", "searchset", "nested-1", "nested-3")


def _request(document: Any) -> dict[str, str]:
    resource_type = document.get("resourceType") if isinstance(document, dict) else None
    rid = document.get("id") if isinstance(document, dict) else None
    return {"method": "PUT", "url": f"{resource_type}/{rid}"}


def _bundle(kind: str, entries: list[Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _nested(documents: list[Any], depth: int) -> dict[str, Any]:
    """A collection Bundle whose entries are collection Bundles, `depth` levels down, the resources in
    the innermost ones (two halves at each level)."""
    if depth == 0:
        return _bundle("collection", [{"resource": d} for d in documents])
    half = len(documents) // 2
    inner = [_nested(part, depth - 1) for part in (documents[:half], documents[half:])]
    return _bundle("collection", [{"resource": b} for b in inner])


def container(kind: str, documents: list[Any]) -> dict[str, Any]:
    if kind == "collection":
        return _bundle(
            "collection",
            [{"fullUrl": f"urn:x:{i}", "resource": d} for i, d in enumerate(documents)],
        )
    if kind == "searchset":
        entries: list[Any] = [{"resource": d, "search": {"mode": "match"}} for d in documents]
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational"}],
        }
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
        return _bundle("searchset", entries)
    if kind.startswith("nested-"):
        return _nested(documents, int(kind.removeprefix("nested-")))
    return _bundle("transaction", [{"resource": d, "request": _request(d)} for d in documents])


def bundle_bytes(kind: str, document: dict[str, Any]) -> bytes:
    """The Bundle as a file: `transaction-streamed` in `write_bundle`'s layout (one entry per line),
    the others on one line."""
    if kind != "transaction-streamed" or not isinstance(document.get("entry"), list):
        return to_json(document).encode() + b"\n"
    head = b'{"resourceType":"Bundle","type":"transaction","entry":[\n'
    return head + b",\n".join(to_json(e).encode() for e in document["entry"]) + b"\n]}\n"


@dataclass(frozen=True)
class BundleCase(Recipe):
    container: str
    changes: ResourceChanges | None
    bundle_edit: JsonEdit | None
    byte_edit: ByteEdit | None


@st.composite
def bundle_cases(draw: st.DrawFn) -> BundleCase:
    source = draw(SOURCE_NAMES)
    lines = valid_resources(SOURCES[source])
    kind = draw(st.sampled_from(CONTAINERS))
    changes = draw(st.one_of(st.none(), resource_changes(source, lines)))
    if changes is None:
        changes = ResourceChanges(source, ())
    bundle_edit = None
    if draw(st.booleans()):  # the Bundle's own structure (the resources' insides: `changes`)
        documents, _ = changes.apply(lines)
        bundle_edit = draw(json_edits(container(kind, documents), into_resources=False))
    byte_edit = draw(st.one_of(st.none(), st.none(), byte_edits(sum(map(len, lines)))))
    return BundleCase(kind, changes, bundle_edit, byte_edit)


@fuzz_settings(100)
@known(  # issue 8: nested collection Bundles dropped
    {"case": BundleCase("nested-1", ResourceChanges("sdtm_small", ()), None, None)},
    {"case": BundleCase("nested-3", ResourceChanges("sdtm_small", ()), None, None)},
)
@given(case=bundle_cases())
def test_a_mutated_bundle_reads_every_resource_and_assembles_or_is_refused(
    case: BundleCase,
) -> None:
    assert case.changes is not None
    source = SOURCES[case.changes.source]
    documents, expect = case.changes.apply(valid_resources(source))
    bundle = container(case.container, documents)
    if case.bundle_edit is not None:
        if makes_invalid(bundle, case.bundle_edit):
            expect.invalid = True
        else:
            expect.content_kept = False
            expect.rows_may_go = True
        bundle = case.bundle_edit.apply(bundle)
    data = (
        bundle_bytes(case.container, bundle)
        if isinstance(bundle, dict)
        else to_json(bundle).encode()
    )
    if case.byte_edit is not None:
        data = case.byte_edit.apply(data)
        expect.content_kept = False
        expect.rows_may_go = True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_bytes(data)
        resources, error = run_guarded(lambda: list(read_resources(path)))
        event(f"read: {type(error).__name__ if error else 'resources'}")
        if error is not None:
            assert isinstance(error, FhirFileError), undocumented(error)
            return
        if expect.content_kept and not expect.invalid and not expect.conflicting_duplicate:
            # no edit made: plain values, so the codec's own writer compares them (fast)
            flat = Counter(dumps(d) for d in documents)
            read = Counter(dumps(r) for r in resources)
            assert read == flat, (
                f"the {case.container} Bundle gave {sum(read.values())} resources for "
                f"{sum(flat.values())} (types read: {sorted({r.get('resourceType') for r in resources})[:6]})"
            )
        assert_tables_hold(resources, valid_trial(source), expect, Path(tmp))
