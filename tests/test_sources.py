"""adapter/sources.py: one place decides what an input is, and every command reads it through there;
analyze and run take the server options of push and pull."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from adapter.cli import main
from adapter.cli._common import EXIT_USAGE, MANIFEST
from adapter.client import BasicAuth, BearerAuth
from adapter.fhir_files import FhirFileError, write_bundle, write_ndjson
from adapter.sources import detect, fhir_data_files, kind_of, on_server
from adapter.tables import read_trial
from mappings.trial import trial_to_fhir

SMALL = Path(__file__).parent / "data" / "sdtm_small"
DALAKAS = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def bundle_folder(tmp_path: Path) -> Path:
    """A folder of one Bundle with, beside it, a study definition and an output manifest (neither is
    FHIR data)."""
    folder = tmp_path / "bundles"
    folder.mkdir()
    write_bundle(trial_to_fhir(read_trial(SMALL)), folder / "trial.json")
    shutil.copy(DALAKAS / "study.json", folder / "study.json")
    (folder / MANIFEST).write_text(json.dumps({"format": "trialfhir-manifest/1"}), encoding="utf-8")
    return folder


def test_an_sdtm_folder_is_sdtm_and_its_files_are_its_tables() -> None:
    source = detect(SMALL)
    assert source.kind == "sdtm" and source.label == f"SDTM folder {SMALL}"
    assert {p.suffix for p in source.files()} <= {".csv", ".xpt"}
    assert source.trial() == read_trial(SMALL)


def test_the_study_definition_and_the_manifest_are_never_read_as_fhir(bundle_folder: Path) -> None:
    source = detect(bundle_folder)
    assert source.kind == "fhir" and kind_of(bundle_folder) == "fhir"
    assert [p.name for p in source.files()] == ["trial.json"]
    assert source.trial() == read_trial(SMALL)
    again = source.resources()
    assert list(again) == list(again)  # read again from the files, not a one-shot iterator


def test_a_bulk_export_folder_reads_its_ndjson_not_its_error_folder(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(trial_to_fhir(read_trial(SMALL)), folder)
    (folder / "error").mkdir()
    (folder / "error" / "OperationOutcome.ndjson").write_text("not json\n", encoding="utf-8")
    (folder / "manifest.json").write_text('{"output": []}', encoding="utf-8")
    assert all(p.suffix == ".ndjson" and p.parent == folder for p in fhir_data_files(folder))
    assert detect(folder).trial() == read_trial(SMALL)


def test_a_folder_of_neither_is_none_and_a_missing_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert kind_of(tmp_path) is None
    with pytest.raises(FhirFileError, match="no such file or folder"):
        detect(tmp_path / "missing")


def test_want_reads_the_input_as_told(bundle_folder: Path) -> None:
    source = detect(bundle_folder, want="sdtm")
    assert source.kind == "sdtm"
    with pytest.raises(Exception, match="no domain files"):
        source.trial()


def test_a_server_source_pulls_with_the_options_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapter.transfer as transfer

    asked: list[tuple[str, str, dict[str, Any]]] = []

    def pulled(server: str, study: str, **kw: Any) -> transfer.PullResult:
        asked.append((server, study, kw["client_options"]))
        return transfer.PullResult(study={}, resources=list(trial_to_fhir(read_trial(SMALL))))

    monkeypatch.setattr(transfer, "pull_study", pulled)
    source = on_server("https://u:p@h/fhir", "S1", {"timeout": 5.0}, "https://***@h/fhir")
    assert source.label == "https://***@h/fhir (study S1)"
    assert source.trial() == read_trial(SMALL)
    assert asked == [("https://u:p@h/fhir", "S1", {"timeout": 5.0})]


def test_push_of_a_bundle_folder_with_its_study_json_sends_only_the_bundle(
    bundle_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapter.transfer as transfer
    from adapter.client import FhirClient
    from adapter.uploads import ForeignSummary

    sent: list[dict[str, Any]] = []

    def upload(client: Any, resources: Any, **kw: Any) -> ForeignSummary:
        sent.extend(item.resource for item in resources.items)  # FHIR files come as one Upload
        return ForeignSummary()

    monkeypatch.setattr(FhirClient, "capabilities", lambda self: {})
    monkeypatch.setattr(transfer, "push", upload)
    result = invoke("push", bundle_folder, "--server", "http://fhir.test/fhir")
    assert result.exit_code == 0, result.output
    assert f"from FHIR folder {bundle_folder}" in result.output
    made = list(trial_to_fhir(read_trial(SMALL)))
    assert [(r["resourceType"], r["id"]) for r in sent] == [
        (r["resourceType"], r["id"]) for r in made
    ]


@pytest.mark.parametrize(
    "options, auth",
    [(["--basic", "ann:pw"], BasicAuth), (["--token", "t0k"], BearerAuth)],
)
def test_analyze_server_takes_the_auth_options_of_push(
    options: list[str], auth: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapter.transfer as transfer

    seen: list[dict[str, Any]] = []

    def pulled(server: str, study: str, **kw: Any) -> transfer.PullResult:
        seen.append(kw["client_options"])
        return transfer.PullResult(study={}, resources=list(trial_to_fhir(read_trial(DALAKAS))))

    monkeypatch.setattr(transfer, "pull_study", pulled)
    result = invoke(
        "analyze", "--server", "http://fhir.test/fhir", "--study", "DALAKAS1993",
        "--out", tmp_path / "o", "--max-pages", "7", "--deadline", "9", *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert isinstance(seen[0]["auth"], auth)
    assert seen[0]["max_pages"] == 7 and seen[0]["deadline"] == 9.0


@pytest.mark.parametrize("command", ["analyze", "run"])
def test_analyze_and_run_refuse_a_ca_bundle_without_a_certificate(
    command: str, tmp_path: Path
) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("not a certificate", encoding="utf-8")
    args: list[str | Path] = [
        command,
        "--server",
        "https://fhir.test/fhir",
        "--out",
        tmp_path / "o",
    ]
    if command == "analyze":
        args += ["--study", "DALAKAS1993"]
    result = invoke(*args, "--ca-bundle", pem)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "--ca-bundle" in result.output
    assert not (tmp_path / "o").exists()


def test_run_refuses_two_ways_to_authenticate_before_anything_is_written(tmp_path: Path) -> None:
    result = invoke(
        "run", "--server", "http://fhir.test/fhir", "--out", tmp_path / "o",
        "--token", "t", "--basic", "a:b",
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "choose one way to authenticate" in result.output
    assert not (tmp_path / "o").exists()


def gzipped(folder: Path) -> Path:
    """`folder`'s NDJSON files gzipped in place (`X.ndjson` -> `X.ndjson.gz`)."""
    import gzip

    for path in folder.glob("*.ndjson"):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    return folder


def test_gzipped_ndjson_reads_as_the_plain_files(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    write_ndjson(trial_to_fhir(read_trial(SMALL)), folder)
    plain = detect(folder).trial()
    gzipped(folder)
    assert all(p.name.endswith(".ndjson.gz") for p in fhir_data_files(folder))
    assert detect(folder).trial() == plain == read_trial(SMALL)


def test_a_cut_off_gzip_file_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    write_ndjson(trial_to_fhir(read_trial(SMALL)), folder)
    gzipped(folder)
    victim = sorted(folder.iterdir())[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(FhirFileError, match="not a readable gzip file") as caught:
        detect(folder).trial()
    assert caught.value.path == str(victim)
    result = invoke("convert", folder, "--to", "sdtm", "--out", tmp_path / "sdtm")
    assert result.exit_code == 3, result.output
    assert victim.name in result.output and not (tmp_path / "sdtm").exists()


def test_run_through_a_server_composes_push_pull_and_the_way_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapter.transfer as transfer
    from adapter.client import FhirClient, UploadSummary

    stored: list[dict[str, Any]] = []
    pulled_with: list[dict[str, Any]] = []

    def push(client: Any, resources: Any, **kw: Any) -> UploadSummary:
        stored.extend(resources)
        return UploadSummary()

    def pull_study(server: str, study: str, **kw: Any) -> transfer.PullResult:
        pulled_with.append({"study": study, **kw["client_options"]})
        return transfer.PullResult(study=stored[0], resources=list(stored))

    monkeypatch.setattr(FhirClient, "capabilities", lambda self: {})
    monkeypatch.setattr(transfer, "push", push)
    monkeypatch.setattr(transfer, "pull_study", pull_study)
    out = tmp_path / "o"
    result = invoke(
        "run", "--server", "https://ann:s3cret@fhir.test/fhir", "--out", out, "--max-pages", "3"
    )
    assert result.exit_code == 0, result.output
    assert "round trip identical: 742 rows" in result.stderr
    assert "from https://***@fhir.test/fhir (study DALAKAS1993)" in result.stdout
    assert pulled_with[0]["study"] == "DALAKAS1993" and pulled_with[0]["max_pages"] == 3
    assert len(list((out / "fhir").glob("*.ndjson"))) == 10
    assert (out / "report" / "results.json").is_file()
