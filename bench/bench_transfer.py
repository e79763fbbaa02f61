"""Upload and pull benchmarks against a live HAPI FHIR server (run by hand; never part of the test run).

    python bench/bench_transfer.py --base-url http://127.0.0.1:8080/fhir --subjects 750

The cohort is the reconstructed one scaled to `--subjects` subjects (`adapter.testing.cohort.generate_scaled`,
STUDYID DALAKAS1993SC, so it never clashes with the fixture's DALAKAS1993). The server is emptied
(`$expunge` everything) before each upload run. THE SERVER IS WIPED: point this at a throwaway HAPI.

Upload: `transfer.push` (conditional-update transactions) with 50, 200 and 500 entries per transaction,
each with every `--push-concurrency` (transactions in flight, dependency waves; default 1), against
one conditional PUT per resource (`FhirClient.update(resource, condition=identifier)`, the same
request the transaction entries make). Single writes are sampled (`--single-sample` resources drawn at
random among those nothing refers to, after the referenced ones were loaded untimed) and extrapolated.

Pull, on the data of the last upload run: the adapter's concurrent pull (`pull_study_async`) against
(1) serial paging through `FhirClient` (the same queries, one after another, pages in order) and
(2) a bare concurrent fetch (the same queries, plain `httpx.AsyncClient` + `asyncio.gather` under the
same concurrency bound, `orjson.loads` of each page and nothing else). Each is repeated `--repeats`
times, interleaved (who goes first rotates each round); the median is reported. `--profile` adds a cProfile of one adapter pull.

`--server-pid FILE` (the HAPI's pid file, e.g. /tmp/x/hapi.pid of `adapter.testing.hapi start`) adds
the server's CPU time per upload, from /proc (Linux), as milliseconds per written resource.
`--skip-pull` measures the uploads only.

Prints a Markdown summary; `--json FILE` also writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from adapter.client import AsyncFhirClient, FhirClient, business_condition, token
from adapter.fhir_files import dumps
from adapter.tables import read_trial
from adapter.testing.cohort import SCALED_STUDYID, generate_scaled, write_csv_folder
from adapter.testing.hapi import expunge_everything
from adapter.transfer import pull_study_async, push
from mappings.identity import SID_STUDY
from mappings.trial import trial_to_fhir

JSON = dict[str, Any]
T = TypeVar("T")

# The adapter's pull, as transfer.pull_study_async runs it by default.
EVENT_TYPES = ("Observation", "MedicationAdministration", "Procedure", "DiagnosticReport")
PATIENT_TYPES = ("Condition", "Specimen")
PAGE_SIZE = 500
PATIENTS_PER_QUERY = 20


@dataclass
class UploadRun:
    """One upload measurement."""

    method: str
    resources: int
    seconds: float
    requests: int
    extrapolated_seconds: float | None = None
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


@dataclass
class PullRun:
    """The repeated measurements of one pull method."""

    method: str
    resources: int = 0
    requests: int = 0
    seconds: list[float] = field(default_factory=list)
    client_cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.resources / self.median


# --- the cohort ------------------------------------------------------------------------------------


def scaled_resources(subjects: int, seed: int) -> list[JSON]:
    """Every resource of the scaled cohort, as plain JSON (decimals as JSON numbers), reference order.

    Plain JSON because the client's request serialiser takes no `Decimal` (see docs/performance.md);
    the conversion is done here, outside every timed section.
    """
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as folder:
        write_csv_folder(generate_scaled(subjects, seed), folder)
        trial = read_trial(folder)
    return [orjson.loads(dumps(resource)) for resource in trial_to_fhir(trial)]


def references(resource: Any) -> Iterator[str]:
    """Every `reference` string anywhere inside a resource."""
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(resource, list):
        for item in resource:
            yield from references(item)


SERVER_PID: list[int] = []
"""The HAPI server's pid (`--server-pid`), when given."""
SERVER_CPU_SECONDS: list[float | None] = []
"""The server's CPU time of each `timed` call (None without `--server-pid`)."""


def server_cpu() -> float | None:
    """The server's CPU time so far (user + system, from /proc), or None without a pid."""
    if not SERVER_PID:
        return None
    fields = Path(f"/proc/{SERVER_PID[0]}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


CPU_SECONDS: list[float] = []
"""This process's CPU time (user + system) of each `timed` call, in order: how much of the wall time
the client side itself spent (the rest is the server and the wire)."""


def timed(action: Callable[[], T]) -> tuple[T, float]:
    cpu = time.process_time()
    server = server_cpu()
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    CPU_SECONDS.append(time.process_time() - cpu)
    after = server_cpu()
    SERVER_CPU_SECONDS.append(None if after is None or server is None else after - server)
    return result, elapsed


# --- upload ----------------------------------------------------------------------------------------


def reset(base_url: str, client: FhirClient, canonical: list[JSON]) -> None:
    """Empty the server and store the resources without a business identifier (the CodeSystem)."""
    expunge_everything(base_url, timeout=3600)
    for resource in canonical:
        client.update(resource)


def upload_transactions(
    base_url: str,
    client: FhirClient,
    canonical: list[JSON],
    data: list[JSON],
    chunk: int,
    concurrency: int = 1,
) -> UploadRun:
    reset(base_url, client, canonical)
    summary, seconds = timed(lambda: push(client, data, chunk_size=chunk, concurrency=concurrency))
    written = sum(sum(counts.values()) for counts in summary.as_dict().values())
    created = summary.total("created")
    if summary.failed or written != len(data) or created != len(data):
        raise SystemExit(
            f"transactions of {chunk}: {len(summary.failed)} failed, {written} written, "
            f"{created} created"
        )
    method = f"transactions of {chunk}" + (
        f", {concurrency} in flight" if concurrency > 1 else ", one at a time"
    )
    return UploadRun(
        method,
        len(data),
        seconds,
        summary.bundles,
        None,
        CPU_SECONDS[-1],
        SERVER_CPU_SECONDS[-1],
    )


def upload_singles(
    base_url: str,
    client: FhirClient,
    canonical: list[JSON],
    data: list[JSON],
    sample_size: int,
    seed: int,
) -> UploadRun:
    referenced = {ref for resource in data for ref in references(resource)}
    is_referenced = [f"{r['resourceType']}/{r['id']}" in referenced for r in data]
    targets = [r for r, ref in zip(data, is_referenced, strict=True) if ref]
    leaves = [r for r, ref in zip(data, is_referenced, strict=True) if not ref]
    reset(base_url, client, canonical)
    push(client, targets, chunk_size=500, concurrency=1)  # untimed: what the samples refer to
    sample = random.Random(seed).sample(leaves, min(sample_size, len(leaves)))

    def write_each() -> None:
        for resource in sample:
            client.update(resource, condition=business_condition(resource))

    _, seconds = timed(write_each)
    run = UploadRun(
        "one conditional PUT per resource",
        len(sample),
        seconds,
        len(sample),
        None,
        CPU_SECONDS[-1],
        SERVER_CPU_SECONDS[-1],
    )
    run.extrapolated_seconds = len(data) / run.rate
    return run


# --- pull ------------------------------------------------------------------------------------------


Query = tuple[str, dict[str, str]]


def pull_plan(patient_refs: list[str]) -> list[Query]:
    """The searches `pull_study_async` sends after finding the study and its subjects."""
    groups = [
        patient_refs[i : i + PATIENTS_PER_QUERY]
        for i in range(0, len(patient_refs), PATIENTS_PER_QUERY)
    ]
    return [
        (rt, {"subject": ",".join(group), "_count": str(PAGE_SIZE)})
        for group in groups
        for rt in (*PATIENT_TYPES, *EVENT_TYPES)
    ]


def serial_pull(base_url: str, study: str) -> tuple[int, int]:
    """The adapter's queries one after another through FhirClient, pages in order: (resources,
    requests)."""
    resources = requests = 0
    with FhirClient(base_url) as client:
        found = client.search("ResearchStudy", identifier=study).count(2).all()
        requests += 1
        study_ref = f"ResearchStudy/{found[0]['id']}"
        patients: set[str] = set()
        search = (
            client.search("ResearchSubject", study=study_ref)
            .include("ResearchSubject:individual")
            .count(PAGE_SIZE)
        )
        for page in search.pages():
            requests += 1
            for entry in page.entries:
                resources += 1
                if entry.resource["resourceType"] == "Patient":
                    patients.add(f"Patient/{entry.resource['id']}")
        for resource_type, params in pull_plan(sorted(patients)):
            for page in client.search(resource_type, params).pages():
                requests += 1
                resources += len(page.entries)
    return resources + 1, requests


async def bare_pull(base_url: str, study: str, concurrency: int) -> tuple[int, int]:
    """The same queries with a plain httpx.AsyncClient and asyncio.gather: (resources, requests)."""
    base = base_url.rstrip("/") + "/"
    headers = {"Accept": "application/fhir+json"}
    counted = {"resources": 0, "requests": 0}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:

        async def pages(url: str, params: dict[str, str] | None) -> list[JSON]:
            bundles: list[JSON] = []
            next_url: str | None = url
            while next_url is not None:
                response = await http.get(next_url, params=params)
                response.raise_for_status()
                bundle = orjson.loads(response.content)
                counted["requests"] += 1
                counted["resources"] += len(bundle.get("entry") or [])
                bundles.append(bundle)
                next_url = next(
                    (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"),
                    None,
                )
                params = None
            return bundles

        (first,) = await pages("ResearchStudy", {"identifier": study, "_count": "2"})
        study_ref = f"ResearchStudy/{first['entry'][0]['resource']['id']}"
        subject_pages = await pages(
            "ResearchSubject",
            {
                "study": study_ref,
                "_include": "ResearchSubject:individual",
                "_count": str(PAGE_SIZE),
            },
        )
        patients = sorted(
            f"Patient/{e['resource']['id']}"
            for bundle in subject_pages
            for e in bundle.get("entry", [])
            if e["resource"]["resourceType"] == "Patient"
        )
        gate = asyncio.Semaphore(concurrency)

        async def fetch(query: Query) -> None:
            async with gate:
                await pages(query[0], query[1])

        await asyncio.gather(*(fetch(query) for query in pull_plan(patients)))
    return counted["resources"], counted["requests"]


async def adapter_pull(base_url: str, study: str, concurrency: int) -> int:
    async with AsyncFhirClient(base_url) as client:
        result = await pull_study_async(client, study, concurrency=concurrency)
    return len(result.resources)


def profile_adapter_pull(base_url: str, study: str, concurrency: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(adapter_pull(base_url, study, concurrency))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


# --- reporting -------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


def report(uploads: list[UploadRun], pulls: list[PullRun], header: str) -> str:
    lines = [header]
    if uploads:
        lines += [
            "",
            "| upload | resources | requests | seconds | client CPU s | resources/s "
            "| server CPU ms per resource |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
    for run in uploads:
        extra = (
            f" (sampled; full run extrapolated to {run.extrapolated_seconds:.0f} s)"
            if run.extrapolated_seconds
            else ""
        )
        server = (
            f"{run.server_cpu_seconds * 1000 / run.resources:.1f}"
            if run.server_cpu_seconds is not None
            else "-"
        )
        lines.append(
            f"| {run.method}{extra} | {run.resources} | {run.requests} | {run.seconds:.1f} "
            f"| {run.client_cpu_seconds:.1f} | {run.rate:.0f} | {server} |"
        )
    single = next((r for r in uploads if r.extrapolated_seconds), None)
    if single is not None:
        for run in uploads:
            if run is not single:
                lines.append(f"\n{run.method}: {run.rate / single.rate:.1f}x single writes")
    if not pulls:
        return "\n".join(lines)
    lines += [
        "",
        "| pull | resources | requests | median s | runs (s) | client CPU s | resources/s |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for pull in pulls:
        runs = ", ".join(f"{s:.2f}" for s in pull.seconds)
        lines.append(
            f"| {pull.method} | {pull.resources} | {pull.requests or '-'} | {pull.median:.2f} | {runs} "
            f"| {statistics.median(pull.client_cpu_seconds):.2f} | {pull.rate:.0f} |"
        )
    by_name = {p.method: p for p in pulls}
    adapter = by_name.get("adapter pull_study_async")
    serial = by_name.get("serial paging (FhirClient)")
    bare = by_name.get("bare httpx + asyncio.gather")
    if adapter and serial and bare:
        lines.append("")
        lines.append(f"adapter / serial: {adapter.rate / serial.rate:.2f}x (target >= 2x)")
        lines.append(f"adapter / bare: {adapter.rate / bare.rate:.0%} (target >= 80%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="FHIR base of a throwaway HAPI (wiped!)")
    parser.add_argument("--subjects", type=int, default=750)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--chunks", default="50,200,500", help="transaction sizes, comma-separated")
    parser.add_argument("--single-sample", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8, help="pull requests in flight")
    parser.add_argument(
        "--push-concurrency",
        default="1",
        help="transactions in flight per upload run, comma-separated (each a run per chunk size)",
    )
    parser.add_argument("--server-pid", type=Path, help="the HAPI's pid file: its CPU per upload")
    parser.add_argument("--skip-pull", action="store_true", help="uploads only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-upload", action="store_true", help="pull only (data already loaded)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one adapter pull")
    parser.add_argument("--json", type=Path, help="write every number here too")
    args = parser.parse_args(argv)
    base_url: str = args.base_url
    if args.server_pid is not None:
        SERVER_PID.append(int(args.server_pid.read_text().strip()))
    study = token(SID_STUDY, SCALED_STUDYID)

    print(
        f"building the scaled cohort: {args.subjects} subjects, seed {args.seed}", file=sys.stderr
    )
    resources, build_seconds = timed(lambda: scaled_resources(args.subjects, args.seed))
    canonical = [r for r in resources if not r.get("identifier")]
    data = [r for r in resources if r.get("identifier")]
    print(f"{len(resources)} resources in {build_seconds:.0f} s", file=sys.stderr)

    uploads: list[UploadRun] = []
    with FhirClient(base_url, timeout=600) as client:
        if not args.skip_upload:
            run = upload_singles(base_url, client, canonical, data, args.single_sample, args.seed)
            print(f"singles: {run.rate:.0f}/s", file=sys.stderr)
            uploads.append(run)
            for chunk in (int(c) for c in args.chunks.split(",")):
                for concurrency in (int(c) for c in args.push_concurrency.split(",")):
                    run = upload_transactions(base_url, client, canonical, data, chunk, concurrency)
                    print(
                        f"{run.method}: {run.rate:.0f}/s in {run.seconds:.0f} s, load "
                        f"{os.getloadavg()[0]:.1f}",
                        file=sys.stderr,
                    )
                    uploads.append(run)

    if args.skip_pull:
        header = (
            f"Machine: {machine()}. Cohort: {args.subjects} subjects, {len(resources)} resources "
            f"(seed {args.seed}); load average at the end {os.getloadavg()}."
        )
        print(report(uploads, [], header))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "machine": machine(),
                        "subjects": args.subjects,
                        "resources": len(resources),
                        "uploads": [asdict(u) | {"rate": u.rate} for u in uploads],
                    },
                    indent=2,
                )
            )
        return 0

    pulls = [
        PullRun("adapter pull_study_async"),
        PullRun("serial paging (FhirClient)"),
        PullRun("bare httpx + asyncio.gather"),
    ]
    asyncio.run(adapter_pull(base_url, study, args.concurrency))  # warm-up, untimed

    def run_adapter() -> tuple[int, int]:
        return asyncio.run(adapter_pull(base_url, study, args.concurrency)), 0

    def run_serial() -> tuple[int, int]:
        return serial_pull(base_url, study)

    def run_bare() -> tuple[int, int]:
        return asyncio.run(bare_pull(base_url, study, args.concurrency))

    methods = [run_adapter, run_serial, run_bare]
    for round_number in range(args.repeats):
        # Rotate who goes first: the server's background work after a pull must not always land on
        # the same method.
        for offset in range(len(methods)):
            index = (round_number + offset) % len(methods)
            (count, requests), seconds = timed(methods[index])
            pulls[index].resources, pulls[index].requests = count, requests
            pulls[index].seconds.append(seconds)
            pulls[index].client_cpu_seconds.append(CPU_SECONDS[-1])
        print(f"pull round: {[p.seconds[-1] for p in pulls]}", file=sys.stderr)
    pulls[0].requests = pulls[2].requests

    header = (
        f"Machine: {machine()}. Cohort: {args.subjects} subjects, {len(resources)} resources "
        f"(seed {args.seed}); concurrency {args.concurrency}."
    )
    print(report(uploads, pulls, header))
    if args.profile:
        print("\nProfile of one adapter pull (cumulative):\n")
        print(profile_adapter_pull(base_url, study, args.concurrency))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "subjects": args.subjects,
                    "resources": len(resources),
                    "uploads": [asdict(u) | {"rate": u.rate} for u in uploads],
                    "pulls": [asdict(p) | {"median": p.median, "rate": p.rate} for p in pulls],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
