"""Upload speed against the project's HAPI server under several server settings (run by hand).

    python bench/bench_hapi_tuning.py --port 18093 --subjects 40 --configs before,tuned

For each configuration in `--configs` (see CONFIGS) it starts the local HAPI server
(`adapter.testing.hapi.start_server`, built if needed) on `--port` with that configuration's Spring
arguments and JVM options, warms it up (one small push, then `$expunge`), and measures on the
scaled cohort (`generate_scaled(--subjects)`, STUDYID DALAKAS1993SC):

- **single writes**: the resources others refer to are loaded untimed, then `--single-sample`
  resources nothing refers to are written one conditional PUT each (`FhirClient.update(resource,
  condition=identifier)`), as in bench_transfer.py;
- **transactions**: `transfer.push` with each size of `--chunks`, each on an emptied server;
- **re-push**: the same push again (every entry unchanged: the conditional match of each entry);
- **$import** (with `--bulk-import`): the same resources as NDJSON files, one per type, served by a
  throwaway HTTP server on 127.0.0.1, loaded with HAPI's Bulk Data `$import` (batch2 job; ids kept,
  no conditional match), from the kick-off to the job's end, then counted on the server.

It stops the server after each configuration. THE SERVER IS WIPED between runs: it is the one this
script starts, on loopback. Prints a Markdown table; `--json FILE` also writes every number.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import (
    CPU_SECONDS,
    UploadRun,
    machine,
    references,
    reset,
    scaled_resources,
    timed,
)

from adapter.client import FhirClient, business_condition
from adapter.testing.hapi import expunge_everything, start_server
from adapter.transfer import push

JSON = dict[str, Any]

OLD_JAVA = ("-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
C2_JAVA = ("-Xmx2g", "-XX:+UseParallelGC")

BEFORE = {
    "trialfhir.storage.mass-ingestion": "false",
    "trialfhir.storage.match-url-cache": "false",
    "trialfhir.storage.referential-integrity-on-write": "true",
    "trialfhir.storage.index-storage-optimized": "false",
    "trialfhir.storage.search-param-identity-table": "true",
    "trialfhir.storage.meta-source": "SOURCE_URI_AND_REQUEST_ID",
    "trialfhir.hibernate.batch-size": "20",
    "trialfhir.hibernate.order-inserts": "false",
}
"""The server's settings before this tuning (HAPI's defaults for all of them)."""


@dataclass(frozen=True)
class Config:
    """A server configuration: Spring properties over BEFORE, and JVM options."""

    name: str
    properties: dict[str, str]
    java: tuple[str, ...] = OLD_JAVA

    def args(self) -> list[str]:
        return [f"--{key}={value}" for key, value in (BEFORE | self.properties).items()]


MASS = {"trialfhir.storage.mass-ingestion": "true", "trialfhir.storage.match-url-cache": "true"}
WRITES = {
    "trialfhir.storage.search-param-identity-table": "false",
    "trialfhir.storage.meta-source": "NONE",
    "trialfhir.storage.index-storage-optimized": "true",
    "trialfhir.hibernate.batch-size": "100",
    "trialfhir.hibernate.order-inserts": "true",
}
H2_FILE = "jdbc:h2:file:" + str(Path(tempfile.gettempdir()) / "bench-hapi-tuning-h2" / "db")
"""H2 on disk, as the HAPI starter ships it (the folder is removed before the server starts)."""
NO_INTEGRITY = {"trialfhir.storage.referential-integrity-on-write": "false"}

CONFIGS = {
    c.name: c
    for c in (
        Config("before", {}),
        Config("c2", {}, C2_JAVA),
        Config("mass", MASS),
        Config("mass-c2", MASS, C2_JAVA),
        Config("writes-c2", MASS | WRITES, C2_JAVA),
        Config("writes", MASS | WRITES),
        Config("nointegrity-c2", MASS | WRITES | NO_INTEGRITY, C2_JAVA),
        Config("mass-h2file", MASS | {"trialfhir.h2.url": H2_FILE}),
        Config("defaults", {}, ()),  # whatever the module and the harness default to now
    )
}


@dataclass
class Result:
    config: str
    resources: int
    single_rate: float = 0.0
    single_sample: int = 0
    transactions: dict[int, float] = field(default_factory=dict)  # chunk -> resources/s
    transaction_seconds: dict[int, float] = field(default_factory=dict)
    client_cpu: dict[int, float] = field(default_factory=dict)
    repush_rate: float = 0.0
    server_cpu_ms: dict[str, float] = field(default_factory=dict)  # phase -> ms per resource
    import_rate: float | None = None
    import_error: str | None = None
    startup_seconds: float = 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def counts_on_server(base_url: str, types: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    with httpx.Client(timeout=600) as http:
        for resource_type in sorted(types):
            answer = http.get(
                f"{base_url}/{resource_type}",
                params={"_summary": "count"},
                headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"},
            )
            answer.raise_for_status()
            found[resource_type] = int(answer.json()["total"])
    return found


SERVER_CPU: list[float] = []
"""The server's CPU seconds of each timed single-write run."""


def upload_singles(
    base_url: str,
    client: FhirClient,
    canonical: list[JSON],
    data: list[JSON],
    sample_size: int,
    seed: int,
    server_pid: int,
) -> UploadRun:
    """As bench_transfer.upload_singles, and the server's CPU time of the timed part."""
    referenced = {ref for resource in data for ref in references(resource)}
    targets = [r for r in data if f"{r['resourceType']}/{r['id']}" in referenced]
    leaves = [r for r in data if f"{r['resourceType']}/{r['id']}" not in referenced]
    reset(base_url, client, canonical)
    push(client, targets, chunk_size=50)  # untimed: what the sampled writes refer to
    sample = random.Random(seed).sample(leaves, min(sample_size, len(leaves)))

    def write_each() -> None:
        for resource in sample:
            client.update(resource, condition=business_condition(resource))

    before = cpu_seconds(server_pid)
    _, seconds = timed(write_each)
    SERVER_CPU.append(cpu_seconds(server_pid) - before)
    return UploadRun(
        "one conditional PUT per resource", len(sample), seconds, len(sample), None, CPU_SECONDS[-1]
    )


@contextmanager
def file_server(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (a free port) while the block runs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {".ndjson": "application/fhir+ndjson"}  # noqa: RUF012

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def bulk_import(base_url: str, resources: list[JSON], timeout: float) -> float:
    """Load `resources` with `$import` (one NDJSON file per type, types in reference order);
    return the seconds from the kick-off to the job's end."""
    order: list[str] = []
    by_type: dict[str, list[bytes]] = {}
    for resource in resources:
        resource_type = resource["resourceType"]
        if resource_type not in by_type:
            order.append(resource_type)
            by_type[resource_type] = []
        by_type[resource_type].append(orjson.dumps(resource))
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        for resource_type, lines in by_type.items():
            (Path(folder) / f"{resource_type}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        with file_server(Path(folder)) as files:
            parameters = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
                    {"name": "inputSource", "valueUri": files},
                    {
                        "name": "storageDetail",
                        "part": [{"name": "type", "valueCode": "https"}],
                    },
                    *(
                        {
                            "name": "input",
                            "part": [
                                {"name": "type", "valueCode": resource_type},
                                {"name": "url", "valueUri": f"{files}/{resource_type}.ndjson"},
                            ],
                        }
                        for resource_type in order
                    ),
                ],
            }
            headers = {
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
                "Prefer": "respond-async",
            }
            started = time.perf_counter()
            with httpx.Client(timeout=600) as http:
                kick = http.post(f"{base_url}/$import", json=parameters, headers=headers)
                if kick.status_code != 202:
                    raise SystemExit(
                        f"$import kick-off: HTTP {kick.status_code}: {kick.text[:800]}"
                    )
                status_url = kick.headers["Content-Location"]
                while True:
                    if time.perf_counter() - started > timeout:
                        raise SystemExit(f"$import did not finish within {timeout:.0f} s")
                    status = http.get(status_url, headers={"Accept": "application/fhir+json"})
                    if status.status_code == 200:
                        break
                    if status.status_code != 202:
                        raise SystemExit(
                            f"$import status: HTTP {status.status_code}: {status.text[:800]}"
                        )
                    time.sleep(0.5)
            return time.perf_counter() - started


def run_config(config: Config, args: argparse.Namespace, resources: list[JSON]) -> Result:
    canonical = [r for r in resources if not r.get("identifier")]
    data = [r for r in resources if r.get("identifier")]
    warmup = scaled_resources(3, args.seed + 1)
    warm_data = [r for r in warmup if r.get("identifier")]
    result = Result(config.name, len(data))
    log = Path(tempfile.gettempdir()) / f"bench-hapi-tuning-{config.name}.log"
    print(f"[{config.name}] starting: {' '.join(config.java)} {config.args()}", file=sys.stderr)
    shutil.rmtree(Path(H2_FILE.removeprefix("jdbc:h2:file:")).parent, ignore_errors=True)
    with start_server(
        args.port,
        java_options=config.java or None,
        log_path=args.log or log,
        server_args=config.args(),
    ) as server:
        base_url = server.base_url
        result.startup_seconds = server.startup_seconds
        with FhirClient(base_url, timeout=900) as client:
            reset(base_url, client, canonical)
            push(client, warm_data, chunk_size=50)  # warm-up (JIT, caches), untimed
            single = upload_singles(
                base_url, client, canonical, data, args.single_sample, args.seed, server.pid
            )
            result.server_cpu_ms["single"] = SERVER_CPU[-1] * 1000 / single.resources
            result.single_rate, result.single_sample = single.rate, single.resources
            print(f"[{config.name}] singles: {single.rate:.0f}/s", file=sys.stderr)
            for chunk in args.chunk_sizes:
                reset(base_url, client, canonical)
                before = cpu_seconds(server.pid)
                summary, seconds = timed(
                    partial(push, client, data, chunk_size=chunk, concurrency=1)
                )
                result.server_cpu_ms[f"tx{chunk}"] = (
                    (cpu_seconds(server.pid) - before) * 1000 / len(data)
                )
                if summary.failed:
                    raise SystemExit(f"[{config.name}] chunk {chunk}: {len(summary.failed)} failed")
                result.transactions[chunk] = len(data) / seconds
                result.transaction_seconds[chunk] = seconds
                result.client_cpu[chunk] = CPU_SECONDS[-1]
                print(
                    f"[{config.name}] transactions of {chunk}: {len(data) / seconds:.0f}/s "
                    f"({seconds:.0f} s)",
                    file=sys.stderr,
                )
            chunk = args.chunk_sizes[-1]
            before = cpu_seconds(server.pid)
            summary, seconds = timed(lambda: push(client, data, chunk_size=chunk, concurrency=1))
            result.server_cpu_ms["re-push"] = (cpu_seconds(server.pid) - before) * 1000 / len(data)
            unchanged = summary.total("unchanged")
            if unchanged != len(data):
                raise SystemExit(
                    f"[{config.name}] re-push: {unchanged} of {len(data)} unchanged: "
                    f"{summary.as_dict()}"
                )
            result.repush_rate = len(data) / seconds
            print(f"[{config.name}] re-push: {result.repush_rate:.0f}/s", file=sys.stderr)
            integrity = (BEFORE | config.properties)[
                "trialfhir.storage.referential-integrity-on-write"
            ]
            # $import loads its files in parallel: with referential integrity on, a resource can
            # arrive before what it refers to and the job fails (seen: DiagnosticReport before
            # its Observations).
            if args.bulk_import and integrity == "false":
                expunge_everything(base_url, timeout=3600)
                before = cpu_seconds(server.pid)
                try:
                    seconds = bulk_import(base_url, resources, args.import_timeout)
                except SystemExit as failed:  # e.g. referential integrity: files load in parallel
                    result.import_error = str(failed)[:300]
                    print(f"[{config.name}] $import failed: {failed}", file=sys.stderr)
                    return result
                want: dict[str, int] = {}
                for resource in resources:
                    want[resource["resourceType"]] = want.get(resource["resourceType"], 0) + 1
                found = counts_on_server(base_url, set(want))
                if found != want:
                    raise SystemExit(f"[{config.name}] $import stored {found}, expected {want}")
                result.import_rate = len(resources) / seconds
                result.server_cpu_ms["import"] = (
                    (cpu_seconds(server.pid) - before) * 1000 / len(resources)
                )
                print(f"[{config.name}] $import: {result.import_rate:.0f}/s", file=sys.stderr)
    return result


def report(results: list[Result], header: str) -> str:
    chunks = sorted({c for r in results for c in r.transactions})
    head = ["config", "single PUT/s"]
    head += [f"tx of {c}/s (x single)" for c in chunks]
    head += ["re-push/s", "$import/s", "server CPU ms/resource: single, tx, re-push, import"]
    lines = [header, "", "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in results:
        cells = [r.config, f"{r.single_rate:.0f}"]
        cells += [
            f"{r.transactions[c]:.0f} ({r.transactions[c] / r.single_rate:.1f}x)"
            if c in r.transactions
            else "-"
            for c in chunks
        ]
        cells += [
            f"{r.repush_rate:.0f}",
            f"{r.import_rate:.0f}" if r.import_rate else ("failed" if r.import_error else "-"),
            ", ".join(f"{ms:.1f}" for ms in r.server_cpu_ms.values()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18093)
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--chunks", default="50", help="transaction sizes, comma-separated")
    parser.add_argument("--single-sample", type=int, default=500)
    parser.add_argument("--configs", default="before,defaults", help=",".join(CONFIGS))
    parser.add_argument("--bulk-import", action="store_true", help="also measure $import")
    parser.add_argument("--import-timeout", type=float, default=1800)
    parser.add_argument("--log", type=Path, help="server log (default: one per config in /tmp)")
    parser.add_argument("--json", type=Path, help="write every number here too")
    args = parser.parse_args(argv)
    args.chunk_sizes = [int(c) for c in args.chunks.split(",")]
    unknown = [name for name in args.configs.split(",") if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    resources, _ = timed(lambda: scaled_resources(args.subjects, args.seed))
    results = []
    for name in args.configs.split(","):
        results.append(run_config(CONFIGS[name], args, resources))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    header = (
        f"Machine: {machine()}. Cohort: {args.subjects} subjects, {len(resources)} resources "
        f"(seed {args.seed}); single writes sampled: {args.single_sample}."
    )
    print(report(results, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
