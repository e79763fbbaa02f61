"""Output folders and option hygiene, through the command line: every command writes only into an empty
or new folder, or (with --force) over an earlier output whose manifest accounts for everything in it;
it never touches the source or a file it did not write (exit 11, the files named); input with nothing to
convert exits 12 and writes nothing; server URLs and SMART keys are checked when the options are parsed
(exit 2, one line) and credentials in a URL are never echoed; formula-like CSV cells are kept and
counted in a note.

Each refusal asserts the exit code, the message (folder or file, and why) and that the output folder
and the source are byte for byte as they were, with nothing left beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from adapter.cli import _common as common
from adapter.cli import main
from adapter.cli._common import (
    EXIT_NOTHING_CONVERTED,
    EXIT_OUTPUT_REFUSED,
    EXIT_USAGE,
    MANIFEST,
)

ROOT = Path(__file__).resolve().parents[1]
DALAKAS = ROOT / "adapter" / "studies" / "dalakas1993"
SMALL = Path(__file__).parent / "data" / "sdtm_small"
BASE = "http://fhir.test/fhir"
OLD_RUN_MARKER = ".trialfhir-run"  # what `run` left before manifests: not trusted


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: files by content, links by target, folders as "<dir>"."""
    if not os.path.lexists(folder):
        return {}
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[name] = "<dir>"
        else:
            found[name] = path.read_bytes()
    return found


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


def one_line_error(result: Result, code: int) -> str:
    """The refusal is one line on stderr, with the code of its class and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    """A copy of the bundled cohort (SDTM CSVs + study.json): the source every command can read."""
    folder = tmp_path / "trial"
    shutil.copytree(DALAKAS, folder)
    return folder


@pytest.fixture
def fhir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "fhir-in"
    assert invoke("convert", SMALL, "--out", folder).exit_code == 0
    return folder


# --- every command that writes a folder ------------------------------------------------------------------

Command = Callable[[Path, Path, Path], list[str | Path]]
COMMANDS: dict[str, Command] = {
    # name: (sdtm source, fhir source, out) -> arguments
    "run": lambda sdtm, fhir, out: ["run", "--source", sdtm, "--out", out],
    "convert --to fhir": lambda sdtm, fhir, out: ["convert", sdtm, "--out", out],
    "convert --to sdtm": lambda sdtm, fhir, out: ["convert", fhir, "--to", "sdtm", "--out", out],
    "analyze": lambda sdtm, fhir, out: ["analyze", sdtm, "--out", out],
    "pull": lambda sdtm, fhir, out: ["pull", "--server", BASE, "--study", "X", "--out", out],
}
WITH_SOURCE = [name for name in COMMANDS if name != "pull"]


def source_of(name: str, trial: Path, fhir_folder: Path) -> Path:
    return fhir_folder if name == "convert --to sdtm" else trial


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_folder_with_a_file_trialfhir_did_not_write_is_refused_and_left_alone(
    name: str,
    force: bool,
    trial: Path,
    fhir_folder: Path,
    tmp_path: Path,
    httpx_mock: HTTPXMock,
) -> None:
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "thesis.docx").write_bytes(b"precious")
    (out / "notes" / "n.txt").write_text("mine", encoding="utf-8")
    before, source_before = snapshot(out), snapshot(trial)
    args = COMMANDS[name](trial, fhir_folder, out) + (["--force"] if force else [])

    line = one_line_error(invoke(*args), EXIT_OUTPUT_REFUSED)

    assert f"--out {out}" in line
    assert "thesis.docx" in line and "notes/ (1 entry)" in line
    assert "did not write" in line
    assert snapshot(out) == before
    assert snapshot(trial) == source_before
    assert siblings(out) == sorted(["out", "trial", "fhir-in"])
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("relation", ["is", "inside", "contains"])
@pytest.mark.parametrize("name", WITH_SOURCE)
def test_an_output_folder_that_is_inside_or_contains_the_source_is_refused(
    name: str, relation: str, force: bool, trial: Path, fhir_folder: Path, tmp_path: Path
) -> None:
    source = source_of(name, trial, fhir_folder)
    if relation == "contains":  # the source moved into a folder that is the output
        holder = tmp_path / "holder"
        holder.mkdir()
        source = Path(shutil.move(source, holder / "mytrial"))
        out = holder
    else:
        out = source if relation == "is" else source / "out"
    sdtm, fhir = (trial, source) if name == "convert --to sdtm" else (source, fhir_folder)
    before = snapshot(source)
    args = COMMANDS[name](sdtm, fhir, out) + (["--force"] if force else [])

    line = one_line_error(invoke(*args), EXIT_OUTPUT_REFUSED)

    assert {
        "is": "is the source",
        "inside": "is inside the source",
        "contains": "contains the source",
    }[relation] in line
    assert snapshot(source) == before


def test_run_into_a_folder_with_the_old_run_marker_keeps_the_other_files_and_the_source(
    trial: Path, tmp_path: Path
) -> None:
    """Issue 8, item 1: the marker of an earlier run skipped every check, so `--out R --source
    R/mytrial` deleted the source and any other file in R."""
    out = tmp_path / "R"
    out.mkdir()
    (out / OLD_RUN_MARKER).write_text("written by trialfhir run\n", encoding="utf-8")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    source = Path(shutil.move(trial, out / "mytrial"))
    before = snapshot(out)

    for extra in ([], ["--force"]):
        line = one_line_error(
            invoke("run", "--out", out, "--source", source, *extra), EXIT_OUTPUT_REFUSED
        )
        assert "contains the source" in line
        assert snapshot(out) == before

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(DALAKAS, elsewhere)
    for extra in ([], ["--force"]):
        line = one_line_error(
            invoke("run", "--out", out, "--source", elsewhere, *extra), EXIT_OUTPUT_REFUSED
        )
        assert "holds 3 entries" in line
        assert OLD_RUN_MARKER in line and "notes.txt" in line and "mytrial/ (" in line
        assert snapshot(out) == before


def test_a_refusal_names_the_first_ten_entries_and_counts_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for n in range(25):
        (out / f"file{n:02}.txt").write_text("x", encoding="utf-8")
    line = one_line_error(invoke("convert", SMALL, "--out", out, "--force"), EXIT_OUTPUT_REFUSED)
    assert "holds 25 entries" in line
    assert "file00.txt" in line and "file09.txt" in line and "file10.txt" not in line
    assert "and 15 more" in line


# --- --force: an earlier output, and nothing else ------------------------------------------------------


def earlier_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    result = invoke("convert", SMALL, "--out", out, "--bundle")  # two large files to edit
    assert result.exit_code == 0, result.output
    return out


def test_every_file_written_is_in_the_manifest_with_its_size_and_sha256(tmp_path: Path) -> None:
    import hashlib

    out = earlier_output(tmp_path)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["written_by"] == "trialfhir convert"
    listed = {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]}
    on_disk = {
        str(p.relative_to(out)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in out.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    assert listed == on_disk
    assert "Patient.ndjson" in listed


def test_without_force_an_earlier_output_is_refused_and_kept(tmp_path: Path) -> None:
    out = earlier_output(tmp_path)
    before = snapshot(out)
    line = one_line_error(invoke("convert", SMALL, "--out", out), EXIT_OUTPUT_REFUSED)
    assert "earlier output of `trialfhir convert`" in line and "--force" in line
    assert snapshot(out) == before


def test_force_replaces_an_earlier_output_of_another_kind(tmp_path: Path) -> None:
    fhir = earlier_output(tmp_path)
    sdtm = tmp_path / "sdtm"
    assert invoke("convert", fhir, "--to", "sdtm", "--out", sdtm).exit_code == 0
    result = invoke("convert", SMALL, "--out", sdtm, "--force")
    assert result.exit_code == 0, result.output
    assert (sdtm / "Patient.ndjson").is_file() and not (sdtm / "dm.csv").exists()
    assert siblings(sdtm) == ["out", "sdtm"]


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda out: (out / "added.txt").write_text("mine"), "added.txt"),
        (lambda out: (out / "sub").mkdir(), "sub/"),
        (lambda out: (out / "Patient.ndjson").write_bytes(b"{}\n"), "Patient.ndjson (changed"),
        (  # same size, other bytes: the sha256 tells
            lambda out: (out / "bundle.json").write_bytes(
                (out / "bundle.json").read_bytes().replace(b"DALAKAS", b"DALAKAZ", 1)
            ),
            "bundle.json (changed",
        ),
        (lambda out: (out / "link").symlink_to(out / "bundle.json"), "link (not a regular file)"),
        (lambda out: (out / MANIFEST).write_text("{not json"), "Patient.ndjson"),
        (
            lambda out: (out / MANIFEST).write_text(
                (out / MANIFEST).read_text().replace('"bundle.json"', '"../bundle.json"')
            ),
            "Patient.ndjson",
        ),
    ],
    ids=[
        "file added",
        "folder added",
        "file changed",
        "same size",
        "link",
        "manifest broken",
        "manifest path leaves",
    ],
)
def test_force_refuses_an_earlier_output_changed_since(
    edit: Callable[[Path], object], named: str, tmp_path: Path
) -> None:
    out = earlier_output(tmp_path)
    edit(out)
    before = snapshot(out)
    line = one_line_error(invoke("convert", SMALL, "--out", out, "--force"), EXIT_OUTPUT_REFUSED)
    assert named in line
    assert snapshot(out) == before
    assert siblings(out) == ["out"]


def test_a_file_of_the_earlier_output_deleted_since_does_not_block(tmp_path: Path) -> None:
    out = earlier_output(tmp_path)
    (out / "Patient.ndjson").unlink()
    result = invoke("convert", SMALL, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "Patient.ndjson").is_file()


def test_a_file_added_while_the_command_runs_blocks_the_replacement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import adapter.fhir_files as fhir_files

    out = earlier_output(tmp_path)
    real = fhir_files.write_ndjson

    def meanwhile(resources, folder, **options):  # type: ignore[no-untyped-def]
        (out / "added-meanwhile.txt").write_text("mine", encoding="utf-8")
        return real(resources, folder, **options)

    monkeypatch.setattr(fhir_files, "write_ndjson", meanwhile)
    before_edit = snapshot(out)
    line = one_line_error(
        invoke("convert", SMALL, "--out", out, "--force", "--workers", "1"), EXIT_OUTPUT_REFUSED
    )
    assert "added-meanwhile.txt" in line
    assert snapshot(out) == {**before_edit, "added-meanwhile.txt": b"mine"}
    assert siblings(out) == ["out"]


def test_removing_an_earlier_output_removes_only_what_its_manifest_lists(tmp_path: Path) -> None:
    out = earlier_output(tmp_path)
    (out / "extra").mkdir()
    (out / "extra" / "mine.txt").write_text("mine", encoding="utf-8")
    assert common._remove_written(out) == 2
    assert snapshot(out) == {"extra": "<dir>", "extra/mine.txt": b"mine"}


# --- symbolic links, permissions, parents --------------------------------------------------------------


def test_a_symlinked_output_folder_is_written_through_and_leaves_no_old_link(
    tmp_path: Path,
) -> None:
    real = earlier_output(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    result = invoke("convert", SMALL, "--to", "fhir", "--out", link, "--force")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / MANIFEST).is_file() and (real / "Patient.ndjson").is_file()
    assert siblings(real) == ["link", "out"]


def test_a_new_folder_through_a_symlink_to_an_empty_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    result = invoke("convert", SMALL, "--out", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (real / "Patient.ndjson").is_file()
    assert siblings(real) == ["link", "real"]


def test_a_dangling_symlink_is_refused_in_one_line(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere")
    line = one_line_error(invoke("convert", SMALL, "--out", link), EXIT_OUTPUT_REFUSED)
    assert "symbolic link" in line and "nowhere" in line and "does not exist" in line
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    assert siblings(link) == ["out"]


def test_a_looping_symlink_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    line = one_line_error(invoke("convert", SMALL, "--out", tmp_path / "a"), EXIT_OUTPUT_REFUSED)
    assert "loops" in line


def test_output_folders_are_0700_whatever_the_umask(trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    old = os.umask(0)
    try:
        result = invoke("run", "--source", trial, "--out", out)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {"fhir", "sdtm", "report", "figures", "datasets"} <= {p.name for p in folders}
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_an_output_folder_that_exists_as_a_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"mine")
    line = one_line_error(invoke("convert", SMALL, "--out", out, "--force"), EXIT_OUTPUT_REFUSED)
    assert "not a folder" in line
    assert out.read_bytes() == b"mine"


def test_an_output_folder_under_a_file_is_refused(tmp_path: Path) -> None:
    """A parent that is a file cannot hold a folder, for root as for anyone."""
    (tmp_path / "file.txt").write_bytes(b"mine")
    out = tmp_path / "file.txt" / "out"
    line = one_line_error(invoke("convert", SMALL, "--out", out), EXIT_OUTPUT_REFUSED)
    assert "parent folder" in line and "file.txt" in line and "not a folder" in line
    assert (tmp_path / "file.txt").read_bytes() == b"mine"


def test_an_output_folder_whose_parent_is_missing_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "out"
    line = one_line_error(invoke("convert", SMALL, "--out", out), EXIT_OUTPUT_REFUSED)
    assert "does not exist" in line
    assert siblings(tmp_path / "x") == []


def test_a_read_only_parent_is_refused_before_anything_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Root writes anywhere whatever the mode bits, so the permission check is made to answer no."""
    parent = tmp_path / "ro"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: False if Path(p) == parent else real_access(p, m)
    )
    line = one_line_error(invoke("convert", SMALL, "--out", parent / "out"), EXIT_OUTPUT_REFUSED)
    assert "read-only" in line and str(parent) in line
    assert list(parent.iterdir()) == []


def test_a_parent_that_refuses_the_staging_folder_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the OS says when the parent cannot be written (as root: simulated at mkdtemp)."""

    def refused(**kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    line = one_line_error(invoke("convert", SMALL, "--out", tmp_path / "out"), EXIT_OUTPUT_REFUSED)
    assert "cannot write in" in line and "Permission denied" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (see the tests above)")
def test_a_read_only_parent_for_real(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        line = one_line_error(invoke("convert", SMALL, "--out", parent / "o"), EXIT_OUTPUT_REFUSED)
    finally:
        parent.chmod(0o700)
    assert "read-only" in line


def test_a_full_disk_while_writing_is_exit_11_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, fhir_folder: Path, tmp_path: Path
) -> None:
    import errno

    import adapter.tables as tables

    def full(table: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(tables, "_write_table", full)
    out = tmp_path / "sdtm"
    line = one_line_error(
        invoke("convert", fhir_folder, "--to", "sdtm", "--out", out, "--workers", "1"),
        EXIT_OUTPUT_REFUSED,
    )  # the one-worker writer; with workers: tests/test_workers.py
    assert "No space left on device" in line and ".csv" in line
    assert not out.exists() and siblings(out) == ["fhir-in"]


# --- nothing came out -----------------------------------------------------------------------------------


def write_lines(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "files, said",
    [
        ({"Patient.ndjson": []}, "1 file read (Patient.ndjson), no FHIR resources found"),
        (
            {"b.json": ['{"resourceType":"Bundle","type":"collection","entry":[]}']},
            "1 file read (b.json), no FHIR resources found",
        ),
    ],
    ids=["empty ndjson", "empty bundle"],
)
def test_fhir_with_nothing_to_convert_exits_12_and_writes_nothing(
    files: dict[str, list[str]], said: str, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    for name, lines in files.items():
        write_lines(src / name, *lines)
    out = tmp_path / "out"
    line = one_line_error(
        invoke("convert", src, "--to", "sdtm", "--out", out), EXIT_NOTHING_CONVERTED
    )
    assert f"{src}: nothing to convert" in line and said in line
    assert not out.exists() and siblings(out) == ["in"]


def test_fhir_of_others_with_nothing_to_map_exits_12_with_the_report_alone(tmp_path: Path) -> None:
    """Resources not written by the adapter go the profile-free way: nothing mapped is exit 12, and
    DIR holds the mapping report alone (docs/foreign-fhir.md), which says why per resource."""
    src = write_lines(tmp_path / "in" / "Basic.ndjson", *['{"resourceType":"Basic","id":"a"}'] * 2)
    out = tmp_path / "out"
    result = invoke("convert", src.parent, "--to", "sdtm", "--out", out)
    assert result.exit_code == EXIT_NOTHING_CONVERTED
    assert f"{src.parent}: nothing mapped" in result.output
    assert "Basic: 1 skipped: no SDTM domain" in result.output
    assert "Basic: 1 skipped: duplicate" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".trialfhir-manifest.json",
        "mapping-report.json",
        "mapping-report.md",
    ]


def test_sdtm_tables_without_rows_exit_12_and_write_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in"
    header = (SMALL / "dm.csv").read_text(encoding="utf-8").splitlines()[0]
    write_lines(src / "dm.csv", header)
    out = tmp_path / "out"
    out.mkdir()
    line = one_line_error(invoke("convert", src, "--out", out), EXIT_NOTHING_CONVERTED)
    assert "nothing to convert: 1 table read (dm.csv), all without rows" in line
    assert snapshot(out) == {} and siblings(out) == ["in", "out"]


# --- server URLs: checked when parsed, credentials never echoed ----------------------------------------

BAD_SERVERS = {
    "localhost:8080/fhir": "no scheme",
    "http://": "no host",
    "http://[::1": "not a URL",
    "ftp://x": "only http and https",
    "http://h:99999/fhir": "not a URL",
    "http://ho st/fhir": "space",
}
SERVER_COMMANDS: dict[str, Callable[[str, Path], list[str | Path]]] = {
    "push": lambda url, tmp: ["push", SMALL, "--server", url],
    "pull": lambda url, tmp: ["pull", "--server", url, "--study", "X", "--out", tmp / "o"],
    "run": lambda url, tmp: ["run", "--server", url, "--out", tmp / "o"],
    "analyze": lambda url, tmp: ["analyze", "--server", url, "--study", "X", "--out", tmp / "o"],
    "search": lambda url, tmp: [
        "search",
        "Observation?code=x",
        "--server",
        url,
        "--out",
        tmp / "o.csv",
    ],
    "pull-patient": lambda url, tmp: [
        "pull",
        "--server",
        url,
        "--patient",
        "p1",
        "--out",
        tmp / "o",
    ],
}


@pytest.mark.parametrize("command", list(SERVER_COMMANDS))
@pytest.mark.parametrize("url", list(BAD_SERVERS))
def test_a_broken_server_url_is_a_usage_error_in_one_line(
    url: str, command: str, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    line = one_line_error(invoke(*SERVER_COMMANDS[command](url, tmp_path)), EXIT_USAGE)
    assert line.startswith("Error: --server ")
    assert BAD_SERVERS[url] in line
    assert "e.g. http://localhost:8080/fhir" in line
    assert httpx_mock.get_requests() == []
    assert list(tmp_path.iterdir()) == []


def test_a_broken_server_url_with_a_password_does_not_echo_it(tmp_path: Path) -> None:
    line = one_line_error(
        invoke("push", SMALL, "--server", "http://ann:s3cret@ho st/fhir"), EXIT_USAGE
    )
    assert "s3cret" not in line and "ann" not in line
    assert "***@" in line


def test_credentials_in_the_server_url_never_reach_stdout_or_stderr(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        json={"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "status": "active"},
        is_reusable=True,
    )
    url = "http://ann:s3cret@fhir.test/fhir"
    runs: list[list[str | Path]] = [
        ["push", SMALL, "--server", url],
        ["run", "--server", url, "--out", tmp_path / "o"],
    ]
    for args in runs:
        result = invoke(*args)
        assert result.exit_code == 9, result.output
        assert "s3cret" not in result.stdout and "s3cret" not in result.stderr
        assert "ann:" not in result.output


def test_run_echoes_the_server_without_its_credentials(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        json={"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "status": "active"}
    )
    result = invoke("run", "--server", "https://ann:s3cret@fhir.test/fhir", "--out", tmp_path / "o")
    assert "pushing to https://***@fhir.test/fhir" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text, shown",
    [
        ("http://u:p@host/fhir", "http://***@host/fhir"),
        (
            "see https://tok@h:8443/x and http://a:b@c/",
            "see https://***@h:8443/x and http://***@c/",
        ),
        ("http://u:p@ss@host/fhir", "http://***@host/fhir"),
        ("https://h/fhir?access_token=abc&_count=5", "https://h/fhir?access_token=***&_count=5"),
        ("http://localhost:8080/fhir", "http://localhost:8080/fhir"),
        ("GET Patient?identifier=a@b", "GET Patient?identifier=a@b"),
        ("at h/x?token=a:b:c&_count=5: refused", "at h/x?token=***&_count=5: refused"),
    ],
)
def test_without_credentials(text: str, shown: str) -> None:
    assert common.without_credentials(text) == shown


# --- SMART keys: checked when parsed ---------------------------------------------------------------------


def pem_private(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def smart_keys() -> dict[str, tuple[str, Callable[[], bytes], str]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def public() -> bytes:
        key = ec.generate_private_key(ec.SECP384R1()).public_key()
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def encrypted() -> bytes:
        return ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )

    return {
        # case: (--smart-alg, key bytes, what the line says)
        "garbage": ("RS384", lambda: b"not a key at all\n", "not a PEM private key"),
        "empty": ("RS384", lambda: b"", "not a PEM private key"),
        "public key": ("ES384", public, "public key"),
        "encrypted": ("ES384", encrypted, "encrypted"),
        "EC key for RS384": (
            "RS384",
            lambda: pem_private(ec.generate_private_key(ec.SECP384R1())),
            "RS384 needs an RSA private key",
        ),
        "RSA key for ES384": (
            "ES384",
            lambda: pem_private(rsa.generate_private_key(65537, 2048)),
            "ES384 needs an EC P-384 private key",
        ),
        "P-256 key for ES384": (
            "ES384",
            lambda: pem_private(ec.generate_private_key(ec.SECP256R1())),
            "secp256r1: ES384 needs the P-384 curve",
        ),
        "short RSA key": (
            "RS384",
            lambda: pem_private(rsa.generate_private_key(65537, 1024)),
            "1024 bits is too short",
        ),
    }


@pytest.mark.parametrize("case", list(smart_keys()))
@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_smart_key_that_cannot_sign_is_a_usage_error_in_one_line(
    case: str, command: str, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    algorithm, key, said = smart_keys()[case]
    pem = tmp_path / "key.pem"
    pem.write_bytes(key())
    where: list[str | Path] = (
        ["push", SMALL] if command == "push" else ["pull", "--study", "X", "--out", tmp_path / "o"]
    )
    args = [*where, "--server", BASE, "--smart-client-id", "c", "--smart-key", pem]
    line = one_line_error(invoke(*args, "--smart-alg", algorithm), EXIT_USAGE)
    assert line.startswith(f"Error: --smart-key {pem}: ")
    assert said in line
    assert httpx_mock.get_requests() == []
    assert not (tmp_path / "o").exists()


def test_a_good_smart_key_passes_the_check(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    assert (
        common.smart_key_problem(pem_private(rsa.generate_private_key(65537, 2048)), "RS384")
        is None
    )
    assert (
        common.smart_key_problem(pem_private(ec.generate_private_key(ec.SECP384R1())), "ES384")
        is None
    )


# --- cells a spreadsheet may read as formulas ------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, flagged",
    [
        ("=1+1", True),
        ("+33 1 23", True),
        ("@SUM(A1)", True),
        ("-x", True),
        ("--", True),
        ("-1", False),
        ("-0.5", False),
        ("-", False),
        ("", False),
        ("a=b", False),
        ("PREDNISONE", False),
    ],
)
def test_is_formula_like(cell: str, flagged: bool) -> None:
    assert common.is_formula_like(cell) is flagged


def with_formula_cells(tmp_path: Path) -> Path:
    """The bundled cohort with four formula-like treatment names and one negative number."""
    import csv
    import io

    folder = tmp_path / "trial"
    shutil.copytree(DALAKAS, folder)
    path = folder / "cm.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    column = rows[0].index("CMTRT")
    for row, text in zip(rows[1:], ["=HYPERLINK(1)", "+A1", "@X", "-x", "-5"], strict=False):
        row[column] = text
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return folder


def test_formula_like_cells_are_kept_and_counted_by_file_never_shown(tmp_path: Path) -> None:
    trial = with_formula_cells(tmp_path)
    fhir, back = tmp_path / "fhir", tmp_path / "back"
    to_fhir = invoke("convert", trial, "--out", fhir)
    assert to_fhir.exit_code == 0, to_fhir.output
    assert "note:" not in to_fhir.output  # no CSV written

    result = invoke("convert", fhir, "--to", "sdtm", "--out", back)

    assert result.exit_code == 0, result.output
    assert (back / "cm.csv").read_bytes() == (trial / "cm.csv").read_bytes()
    notes = [line for line in result.stderr.splitlines() if "spreadsheet" in line]
    assert notes == [
        "note: 4 cells start with =, +, @ or - (not a number) and are kept as written; "
        f"a spreadsheet may run them as formulas (docs/files.md): {back / 'cm.csv'} 4"
    ]
    assert "HYPERLINK" not in result.output and "+A1" not in result.output


def test_run_counts_formula_like_cells_in_what_it_writes(tmp_path: Path) -> None:
    trial = with_formula_cells(tmp_path)
    out = tmp_path / "run"
    result = invoke("run", "--source", trial, "--out", out)
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.stderr.splitlines() if "spreadsheet" in line]
    assert f"{out / 'sdtm' / 'cm.csv'} 4" in note
    assert "HYPERLINK" not in result.output


def test_a_clean_output_has_no_formula_note(tmp_path: Path, fhir_folder: Path) -> None:
    result = invoke("convert", fhir_folder, "--to", "sdtm", "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    assert "spreadsheet" not in result.output


CELL_TEXT = st.text(alphabet='a1-=+@,"\n\r .', max_size=5)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(CELL_TEXT, min_size=1, max_size=3), min_size=1, max_size=4),
    line_end=st.sampled_from(["\n", "\r\n"]),
    chunk=st.integers(min_value=1, max_value=8),
)
def test_the_byte_scan_counts_what_the_csv_parse_finds(
    rows: list[list[str]],
    line_end: str,
    chunk: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever the cells and wherever the read chunks cut them, the count is the parse's count."""
    import csv
    import io

    text = io.StringIO()
    csv.writer(text, lineterminator=line_end).writerows(rows)
    path = tmp_path / "t.csv"
    path.write_bytes(text.getvalue().encode())
    parsed = csv.reader(io.StringIO(text.getvalue(), newline=""))
    expected = sum(1 for row in parsed for cell in row if common.is_formula_like(cell))
    monkeypatch.setattr(common, "_CHUNK", chunk)
    assert common.formula_like_cells(path) == expected


def test_a_library_error_naming_the_url_is_reported_without_its_credentials() -> None:
    from adapter.client import FhirTransportError

    @common.reported
    def failing() -> None:
        raise FhirTransportError(
            "GET https://ann:s3cret@fhir.test/fhir/metadata?access_token=t0k: connection refused",
            method="GET",
        )

    with pytest.raises(common.CommandError) as caught:
        failing()
    assert caught.value.exit_code == 7
    assert caught.value.message == (
        "GET https://***@fhir.test/fhir/metadata?access_token=***: connection refused"
    )


def test_looking_into_a_huge_folder_is_bounded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "home"
    for n in range(5):
        (out / f"d{n}").mkdir(parents=True)
        for m in range(3):
            (out / f"d{n}" / f"f{m}").write_text("x", encoding="utf-8")
    monkeypatch.setattr(common, "WALK_LIMIT", 7)
    line = one_line_error(invoke("convert", SMALL, "--out", out), EXIT_OUTPUT_REFUSED)
    assert "stopped looking after 7 entries" in line
    assert len(list(out.rglob("*"))) == 20


def test_analyze_from_a_server_writes_its_source_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import adapter.transfer as transfer
    from adapter.tables import read_trial
    from adapter.transfer import PullResult
    from mappings.trial import trial_to_fhir

    asked: list[str] = []

    def pulled(server: str, study: str, **options: object) -> PullResult:
        asked.append(server)
        return PullResult(study={}, resources=list(trial_to_fhir(read_trial(DALAKAS))))

    monkeypatch.setattr(transfer, "pull_study", pulled)
    out = tmp_path / "out"
    url = "https://ann:s3cret@fhir.test/fhir"
    result = invoke(
        "analyze", "--server", url, "--study", "DALAKAS1993", "--out", out,
        "--definition", DALAKAS / "study.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert asked == [url]  # the client still gets the credentials
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["source"] == "https://***@fhir.test/fhir (study DALAKAS1993)"
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"s3cret" not in written and "s3cret" not in result.output


def test_a_symlink_to_the_source_is_the_source(trial: Path, tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(trial)
    before = snapshot(trial)
    line = one_line_error(invoke("convert", trial, "--out", link, "--force"), EXIT_OUTPUT_REFUSED)
    assert "is the source" in line
    assert snapshot(trial) == before and link.is_symlink()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "soon"])
@pytest.mark.parametrize("option", ["--timeout", "--deadline"])
@pytest.mark.parametrize("command", list(SERVER_COMMANDS))
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_a_usage_error(
    value: str, option: str, command: str, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    args = SERVER_COMMANDS[command](BASE, tmp_path)
    line = one_line_error(invoke(*args, option, value), EXIT_USAGE)
    assert line == f"Error: {option} {value!r}: give a number of seconds above 0, e.g. 60"
    assert httpx_mock.get_requests() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_ca_bundle_without_certificates_is_a_usage_error(
    command: str, tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"garbage\n")
    where: list[str | Path] = (
        ["push", SMALL] if command == "push" else ["pull", "--study", "X", "--out", tmp_path / "o"]
    )
    line = one_line_error(
        invoke(*where, "--server", "https://fhir.test/fhir", "--ca-bundle", bundle), EXIT_USAGE
    )
    assert line.startswith(f"Error: --ca-bundle {bundle}: not a PEM file of CA certificates")
    assert httpx_mock.get_requests() == []
    assert not (tmp_path / "o").exists()


def test_run_on_a_source_without_a_study_definition_says_so_and_writes_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    line = one_line_error(invoke("run", "--source", SMALL, "--out", out), EXIT_USAGE)
    assert f"--source {SMALL}: no study.json there" in line
    assert not out.exists()


def test_run_on_a_broken_study_definition_exits_3_before_writing(
    trial: Path, tmp_path: Path
) -> None:
    (trial / "study.json").write_text('{"study": {}}', encoding="utf-8")
    out = tmp_path / "out"
    result = invoke("run", "--source", trial, "--out", out)
    assert result.exit_code == 3, result.output
    assert "study definition" in result.stderr and "Traceback" not in result.output
    assert not out.exists() and siblings(out) == ["trial"]


def test_an_sdtm_output_given_as_fhir_gets_a_hint(tmp_path: Path, fhir_folder: Path) -> None:
    sdtm = tmp_path / "sdtm"
    assert invoke("convert", fhir_folder, "--to", "sdtm", "--out", sdtm).exit_code == 0
    result = invoke("convert", sdtm, "--to", "sdtm", "--out", tmp_path / "again")
    assert result.exit_code == 3, result.output
    assert "leave out --to sdtm" in result.stderr
    assert not (tmp_path / "again").exists()


def test_an_output_folder_that_cannot_be_moved_aside_is_exit_11(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mount point cannot be renamed (EBUSY): simulated, as a test cannot mount."""
    import errno

    out = earlier_output(tmp_path)
    before = snapshot(out)
    real_rename = Path.rename

    def rename(self: Path, target: str | Path) -> Path:
        if self == out.resolve():
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    line = one_line_error(invoke("convert", SMALL, "--out", out, "--force"), EXIT_OUTPUT_REFUSED)
    assert "cannot be moved aside" in line and "busy" in line
    assert snapshot(out) == before and siblings(out) == ["out"]


def test_the_manifest_hashes_files_on_threads_in_the_listed_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several files hashed at once still give each file its own digest, in the listed order."""
    import hashlib

    from adapter.cli import _common

    monkeypatch.setattr(_common, "HASH_THREADS", 3)
    paths = []
    for index, size in enumerate((5, 3_000_000, 0, 1_500_000, 70)):
        path = tmp_path / f"f{index}"
        path.write_bytes(bytes([index + 1]) * size)
        paths.append(path)
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert _common._sha256_all(paths) == expected
    assert len(set(expected)) == len(expected)
