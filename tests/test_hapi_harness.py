"""The HAPI harness without a HAPI server: cache keys, build and start failures, the pytest plugin's
skip-or-fail rule. Maven and the server are replaced by small scripts; java itself must exist
(the harness checks its version first)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapter.testing import hapi, on_ci

needs_java = pytest.mark.skipif(
    shutil.which("java") is None and not on_ci(),
    reason="java is not installed (on CI, where it must be, the test runs and fails instead)",
)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRIALFHIR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hapi-server"


def copy_as_extracted(jar: Path, destination: Path, log_path: Path) -> None:
    """Stands in for unpacking the Spring Boot jar (the fake builds make no real jar)."""
    destination.mkdir(parents=True)
    shutil.copy2(jar, destination / jar.name)


def test_module_hash_follows_the_sources(tmp_path: Path) -> None:
    copy = tmp_path / "module"
    shutil.copytree(hapi.module_dir(), copy, ignore=shutil.ignore_patterns("target"))
    original = hapi.module_hash(copy)
    assert original == hapi.module_hash(hapi.module_dir())
    (copy / "target").mkdir(exist_ok=True)
    (copy / "target" / "junk.jar").write_bytes(b"build output is not part of the key")
    assert hapi.module_hash(copy) == original
    properties = copy / "src" / "main" / "resources" / "application.properties"
    properties.write_text(properties.read_text() + "\n# changed\n")
    assert hapi.module_hash(copy) != original


def test_cache_dir_honours_trialfhir_cache_dir(cache: Path) -> None:
    assert hapi.cache_dir() == cache


@needs_java
def test_build_runs_maven_once_then_reuses_the_cached_jar(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    fake_mvn = write_script(
        tmp_path / "mvn",
        f"""\
        echo run >> {calls}
        mkdir -p target && echo jar > target/{hapi.JAR_NAME}
        """,
    )
    monkeypatch.setenv("TRIALFHIR_MVN", str(fake_mvn))
    monkeypatch.setattr(hapi, "_extract", copy_as_extracted)
    first = hapi.build_server()
    second = hapi.build_server()
    assert first == second == cache / hapi.module_hash() / "app" / hapi.JAR_NAME
    assert first.read_text() == "jar\n"
    assert calls.read_text().splitlines() == ["run"]
    assert hapi.built_jar() == first


@needs_java
def test_failed_build_says_so_with_the_tail_of_the_maven_log(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mvn = write_script(tmp_path / "mvn", "echo 'BUILD FAILURE: artifact not found'\nexit 1\n")
    monkeypatch.setenv("TRIALFHIR_MVN", str(fake_mvn))
    with pytest.raises(hapi.HapiBuildError, match="artifact not found"):
        hapi.build_server()
    assert hapi.built_jar() is None


@needs_java
def test_a_jar_that_cannot_be_unpacked_is_a_build_error(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mvn = write_script(
        tmp_path / "mvn", f"mkdir -p target && echo not-a-jar > target/{hapi.JAR_NAME}\n"
    )
    monkeypatch.setenv("TRIALFHIR_MVN", str(fake_mvn))
    with pytest.raises(hapi.HapiBuildError, match="unpacking"):
        hapi.build_server()
    assert hapi.built_jar() is None


@needs_java
def test_missing_maven_is_a_tool_missing_error(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = shutil.which("java")
    assert java is not None
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("TRIALFHIR_MVN", raising=False)
    with pytest.raises(hapi.HapiToolMissing, match="mvn not found"):
        hapi.build_server()


def test_missing_java_is_a_tool_missing_error(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(hapi.HapiToolMissing, match="java not found"):
        hapi.start_server(jar=tmp_path / "any.jar")


@needs_java
def test_a_server_that_dies_is_reported_with_its_log(cache: Path, tmp_path: Path) -> None:
    not_a_jar = tmp_path / "broken.jar"
    not_a_jar.write_text("not a jar")
    log = tmp_path / "server.log"
    with pytest.raises(hapi.HapiStartError, match="exited with code") as raised:
        hapi.start_server(jar=not_a_jar, log_path=log, startup_timeout=60)
    assert log.read_text().strip() != ""
    assert log.read_text().strip().splitlines()[-1] in str(raised.value)


@needs_java
def test_a_taken_port_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(hapi.HapiStartError, match=f"port {port}"):
            hapi.start_server(port, jar=tmp_path / "unused.jar")


def test_a_port_with_only_time_wait_connections_is_free() -> None:
    # A server that just stopped leaves its side of closed connections in TIME_WAIT on its port;
    # Tomcat (like every Java server socket on Linux) binds with SO_REUSEADDR, so it can bind again
    # at once, and the harness must not refuse the port either.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.recv(1)
        client.close()
        assert not hapi._port_is_free(port)  # still listening
    assert hapi._port_is_free(port)


def test_server_arguments_reach_the_jvm_command_line(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    write_script(
        java_home / "bin" / "java",
        """\
        if [ "$1" = "-version" ]; then echo 'openjdk version "17.0.15"' >&2; exit 0; fi
        echo "ARGS: $*"
        exit 3
        """,
    )
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    log = tmp_path / "server.log"
    with pytest.raises(hapi.HapiStartError, match="exited with code 3"):
        hapi.start_server(
            jar=tmp_path / "any.jar",
            log_path=log,
            startup_timeout=60,
            java_options=["-Xmx2g"],
            server_args=["--trialfhir.storage.mass-ingestion=false"],
        )
    args = log.read_text().split("ARGS: ", 1)[1].split()
    assert args[0] == "-Xmx2g"
    assert args[-1] == "--trialfhir.storage.mass-ingestion=false"
    assert "--server.address=127.0.0.1" in args


PLUGIN_TEST = """\
def test_needs_hapi(hapi_base_url):
    assert hapi_base_url
"""


def run_plugin_test(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_plugin_probe.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TRIALFHIR_HAPI_URL"] = "http://127.0.0.1:9/fhir"  # discard port: nothing answers
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plugin_skips_without_a_server_off_ci(tmp_path: Path) -> None:
    result = run_plugin_test(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "HAPI FHIR server unavailable" in result.stdout


def test_the_test_tooling_and_the_command_line_import_without_pytest() -> None:
    """`trialfhir hapi` and the generator run in an installation without the dev dependencies."""
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None  # any import of pytest now fails\n"
        "import adapter.testing, adapter.testing.hapi, adapter.testing.cohort, adapter.cli\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_plugin_fails_without_a_server_on_ci(tmp_path: Path) -> None:
    result = run_plugin_test(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "HAPI FHIR server unavailable" in result.stdout


# --- trialfhir hapi (CLI) ------------------------------------------------------------------------


@needs_java
def test_cli_build_prints_the_jar_path(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from adapter.cli.hapi_cmd import hapi as hapi_group

    fake_mvn = write_script(
        tmp_path / "mvn", f"mkdir -p target && echo jar > target/{hapi.JAR_NAME}\n"
    )
    monkeypatch.setenv("TRIALFHIR_MVN", str(fake_mvn))
    monkeypatch.setattr(hapi, "_extract", copy_as_extracted)
    result = CliRunner().invoke(hapi_group, ["build"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(cache / hapi.module_hash() / "app" / hapi.JAR_NAME)
    assert "building" in result.stderr


def test_cli_serve_without_java_exits_7_and_says_why(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from adapter.cli.hapi_cmd import hapi as hapi_group

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    result = CliRunner().invoke(hapi_group, ["serve", "--port", "18999"])
    assert result.exit_code == 7
    assert "java not found" in result.stderr
