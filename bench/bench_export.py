"""Bulk Data $export against the current pull, on the same data, in the same run (by hand; never part
of the test run).

    python bench/bench_export.py --base-url http://127.0.0.1:8080/fhir --subjects 220

Loads the scaled reconstructed cohort (`generate_scaled`, STUDYID DALAKAS1993SC, about 230
resources per subject: 220 subjects give 50,000+) with `transfer.push` onto an emptied server (THE
SERVER IS WIPED: point this at a throwaway HAPI), then measures, interleaved and rotating who goes
first, `--repeats` times each:

- **export**: `BulkExport(...).run(ExportRequest())` from kick-off to every file downloaded, checked
  and on disk (system level, every type; polling every second at most, `--max-poll-interval 1`);
- **pull**: the current `trialfhir pull` path, `transfer.pull_study_async` (8 requests in flight,
  `_count=500`), which pages through the same study's resources into memory.

Prints a Markdown table (median seconds, resources/s) and the ratio export / pull; `--json FILE`
also writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_transfer import machine, reset, scaled_resources

from adapter.client import AsyncFhirClient, BulkExport, ExportRequest, FhirClient, token
from adapter.testing.cohort import SCALED_STUDYID
from adapter.transfer import pull_study_async, push
from mappings.identity import SID_STUDY


@dataclass
class Run:
    method: str
    resources: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.resources / self.median


PHASES: list[tuple[float, float]] = []
"""(seconds from kick-off to the manifest, seconds downloading) of each export."""


def export_once(base_url: str, concurrency: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        with FhirClient(base_url) as client:
            runner = BulkExport(
                client, Path(folder) / "job", concurrency=concurrency, max_poll_interval=1.0
            )
            started = time.perf_counter()
            job = runner.start(ExportRequest())
            manifest = runner.wait(job)
            waited = time.perf_counter()
            result = runner.download(job, manifest)
            PHASES.append((waited - started, time.perf_counter() - waited))
        return sum(result.counts.values())


def pull_once(base_url: str, study: str, concurrency: int) -> int:
    async def main() -> int:
        async with AsyncFhirClient(base_url) as client:
            result = await pull_study_async(client, study, concurrency=concurrency)
        return len(result.resources)

    return asyncio.run(main())


def measure(run: Run, action: object) -> None:
    assert callable(action)
    cpu, started = time.process_time(), time.perf_counter()
    run.resources = action()
    run.seconds.append(time.perf_counter() - started)
    run.cpu.append(time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="FHIR base of a throwaway HAPI (wiped!)")
    parser.add_argument("--subjects", type=int, default=220)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="pull requests in flight")
    parser.add_argument("--download-concurrency", type=int, default=4)
    parser.add_argument("--skip-upload", action="store_true", help="the data is already loaded")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    study = token(SID_STUDY, SCALED_STUDYID)

    upload_seconds = None
    if not args.skip_upload:
        resources = scaled_resources(args.subjects, args.seed)
        canonical = [r for r in resources if not r.get("identifier")]
        data = [r for r in resources if r.get("identifier")]
        print(f"uploading {len(resources)} resources", file=sys.stderr)
        with FhirClient(args.base_url) as client:
            reset(args.base_url, client, canonical)
            started = time.perf_counter()
            push(client, data, chunk_size=50)
            upload_seconds = time.perf_counter() - started
    export = Run("Bulk Data $export + download (BulkExport)")
    pull = Run("pull (transfer.pull_study_async)")
    for round_number in range(args.repeats):
        order = [(export, lambda: export_once(args.base_url, args.download_concurrency))]
        order.append((pull, lambda: pull_once(args.base_url, study, args.concurrency)))
        if round_number % 2:
            order.reverse()
        for run, action in order:
            measure(run, action)
            print(f"{run.method}: {run.seconds[-1]:.2f} s", file=sys.stderr)

    lines = [
        f"{machine()}; {args.subjects} subjects, seed {args.seed}"
        + (f"; upload {upload_seconds:.0f} s" if upload_seconds else ""),
        "",
        "| method | resources | median s | runs (s) | client CPU s | resources/s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for run in (export, pull):
        runs = ", ".join(f"{s:.2f}" for s in run.seconds)
        lines.append(
            f"| {run.method} | {run.resources} | {run.median:.2f} | {runs} "
            f"| {statistics.median(run.cpu):.2f} | {run.rate:.0f} |"
        )
    phases = ", ".join(f"{w:.1f} + {d:.1f}" for w, d in PHASES)
    lines += [
        "",
        f"export phases (kick-off to manifest + downloads, s): {phases}",
        f"export / pull: {export.rate / pull.rate:.2f}x in resources/s, "
        f"{pull.median / export.median:.2f}x in time (aim: >= 1)",
    ]
    print("\n".join(lines))
    if args.json:
        document = {"runs": [asdict(export), asdict(pull)], "export_phases": PHASES}
        args.json.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
