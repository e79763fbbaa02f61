"""Benchmark: SDTM <-> FHIR conversion speed and peak memory, beside what parsing, validating and
flattening the same NDJSON costs. Run by hand (results go to docs/performance.md):

    python bench/bench_convert.py --subjects 1000            # ~200,000 records, ~2 minutes
    python bench/bench_convert.py --subjects 50 --sample 200 # a quick look

Every measured step runs in a fresh Python process and reports its own wall time and peak resident
memory (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which includes the interpreter and its imports;
the import-only baseline is printed too). Steps:

- to-fhir:   SDTM CSV folder -> read and check (adapter.tables) -> mappings.trial_to_fhir -> NDJSON
- to-sdtm:   NDJSON folder -> adapter.fhir_files.read_resources -> TrialAssembler -> CSV folder
- orjson:    orjson.loads of every NDJSON line, nothing else (the floor for reading)
- read:      adapter.fhir_files.read_resources alone (orjson + the precision guard)
- validate:  fhir.resources R4B model_validate of a SAMPLE of resources, extrapolated to all
- normalize: pandas.json_normalize of every resource (one frame per resource type)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ndjson_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ndjson"))


# --- the steps (each runs in its own process) ----------------------------------------------------------


def step_baseline(src: Path, out: Path, sample: int) -> dict[str, Any]:
    import orjson  # noqa: F401

    import adapter.fhir_files
    import adapter.tables  # noqa: F401
    import mappings.trial  # noqa: F401

    return {"count": 0, "seconds": 0.0, "cpu_seconds": 0.0, "phases": {}}


def step_to_fhir(src: Path, out: Path, sample: int) -> dict[str, Any]:
    from adapter.fhir_files import write_ndjson
    from adapter.tables import read_trial
    from mappings.trial import trial_to_fhir

    gc.disable()  # as `trialfhir convert` does (adapter.cli.convert_cmd.gc_paused)
    start, cpu0 = time.perf_counter(), time.process_time()
    trial = read_trial(src)
    cpu1 = time.process_time()
    counts = write_ndjson(trial_to_fhir(trial), out)
    done, cpu2 = time.perf_counter(), time.process_time()
    return {
        "count": sum(counts.values()),
        "rows": sum(len(t.rows) for t in trial.values()),
        "seconds": done - start,
        "cpu_seconds": cpu2 - cpu0,
        "phases": {
            "read+check CSV": cpu1 - cpu0,
            "map+write NDJSON": cpu2 - cpu1,
        },
        "by_type": counts,
    }


def step_to_sdtm(src: Path, out: Path, sample: int) -> dict[str, Any]:
    from adapter.fhir_files import read_resources
    from adapter.tables import write_trial
    from mappings.trial import TrialAssembler

    gc.disable()  # as `trialfhir convert` does (adapter.cli.convert_cmd.gc_paused)
    start, cpu0 = time.perf_counter(), time.process_time()
    assembler = TrialAssembler()
    add = assembler.add
    count = 0
    for res in read_resources(src):
        add(res)
        count += 1
    cpu1 = time.process_time()
    trial = assembler.tables()
    cpu2 = time.process_time()
    write_trial(trial, out)
    done, cpu3 = time.perf_counter(), time.process_time()
    return {
        "count": count,
        "rows": sum(len(t.rows) for t in trial.values()),
        "seconds": done - start,
        "cpu_seconds": cpu3 - cpu0,
        "phases": {
            "read NDJSON + feed the readers": cpu1 - cpu0,
            "tables (sort, columns)": cpu2 - cpu1,
            "write CSV": cpu3 - cpu2,
        },
    }


def step_orjson(src: Path, out: Path, sample: int) -> dict[str, Any]:
    import orjson

    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    for file in _ndjson_files(src):
        with open(file, "rb") as handle:
            for line in handle:
                orjson.loads(line)
                count += 1
    return {
        "count": count,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "phases": {},
    }


def step_read(src: Path, out: Path, sample: int) -> dict[str, Any]:
    from adapter.fhir_files import read_resources

    start, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in read_resources(src))
    return {
        "count": count,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "phases": {},
    }


def step_validate(src: Path, out: Path, sample: int) -> dict[str, Any]:
    import random

    from adapter.fhir_files import read_resources
    from adapter.validation import validate_resource

    everything = list(read_resources(src))
    random.Random(7).shuffle(everything)
    chosen = everything[:sample]
    warm: dict[str, dict[str, Any]] = {}
    for r in everything:
        warm.setdefault(r["resourceType"], r)
    for r in warm.values():  # build each model class once, outside the timing
        validate_resource(r)
    start, cpu = time.perf_counter(), time.process_time()
    invalid = sum(1 for r in chosen if validate_resource(r))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    per, cpu_per = seconds / max(len(chosen), 1), cpu / max(len(chosen), 1)
    return {
        "count": len(everything),
        "seconds": per * len(everything),
        "cpu_seconds": cpu_per * len(everything),
        "phases": {f"validated sample of {len(chosen)}": seconds},
        "sampled": len(chosen),
        "invalid_in_sample": invalid,
    }


def step_normalize(src: Path, out: Path, sample: int) -> dict[str, Any]:
    import orjson
    import pandas as pd

    start, cpu = time.perf_counter(), time.process_time()
    count = columns = 0
    for file in _ndjson_files(src):
        with open(file, "rb") as handle:
            records = [orjson.loads(line) for line in handle]
        frame = pd.json_normalize(records)
        count += len(frame)
        columns += frame.shape[1]
        del records, frame
    return {
        "count": count,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "phases": {},
        "columns": columns,
    }


STEPS: dict[str, Callable[[Path, Path, int], dict[str, Any]]] = {
    "baseline": step_baseline,
    "to-fhir": step_to_fhir,
    "to-sdtm": step_to_sdtm,
    "orjson": step_orjson,
    "read": step_read,
    "validate": step_validate,
    "normalize": step_normalize,
}


def run_step(name: str, src: Path, out: Path, sample: int) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its JSON report (with peak_mb) back."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--step",
            name,
            "--src",
            str(src),
            "--out",
            str(out),
            "--sample",
            str(sample),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


# --- the driver ----------------------------------------------------------------------------------------


def prepare(subjects: int, seed: int, folder: Path) -> int:
    """Generate the scaled cohort into `folder` in a child process (Linux carries a process's peak
    RSS across fork and exec, so the driver itself must stay small for the children's peaks to be
    theirs); returns the number of records."""
    code = (
        "import sys; from pathlib import Path\n"
        "from adapter.testing.cohort import generate_scaled, write_csv_folder\n"
        "tables = generate_scaled(int(sys.argv[1]), int(sys.argv[2]))\n"
        "write_csv_folder(tables, Path(sys.argv[3]))\n"
        "print(sum(len(rows) for rows in tables.values()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(subjects), str(seed), str(folder)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument(
        "--sample", type=int, default=2000, help="resources validated (extrapolated)"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:
        report = STEPS[args.step](args.src, args.out, args.sample)
        report["peak_mb"] = _peak_mb()
        print(json.dumps(report))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-convert-"))
    sdtm, fhir, back = work / "sdtm", work / "fhir", work / "back"
    print(
        f"generating {args.subjects} subjects (seed {args.seed}) into {work} ...", file=sys.stderr
    )
    records = prepare(args.subjects, args.seed, sdtm)
    results: dict[str, dict[str, Any]] = {}
    for name, src, out in (
        ("baseline", sdtm, work / "unused"),
        ("to-fhir", sdtm, fhir),
        ("to-sdtm", fhir, back),
        ("orjson", fhir, work / "unused"),
        ("read", fhir, work / "unused"),
        ("validate", fhir, work / "unused"),
        ("normalize", fhir, work / "unused"),
    ):
        print(f"  {name} ...", file=sys.stderr)
        results[name] = run_step(name, src, out, args.sample)

    identical = all(
        (back / p.name).read_bytes() == p.read_bytes() for p in sorted(sdtm.glob("*.csv"))
    )
    resources = results["to-fhir"]["count"]
    ours_read = results["to-sdtm"]["cpu_seconds"]

    def rate(step: str) -> float:
        return float(results[step]["count"] / results[step]["cpu_seconds"])

    rows = [
        ("SDTM -> FHIR (read+check CSV, map, write NDJSON)", "to-fhir"),
        ("FHIR -> SDTM (read NDJSON, assemble, write CSV)", "to-sdtm"),
        ("(a) orjson.loads of each line only", "orjson"),
        ("(a') read_resources only (orjson + the precision guard)", "read"),
        (f"(b) R4B validation (sample {results['validate']['sampled']}, extrapolated)", "validate"),
        ("(c) pandas.json_normalize (per type)", "normalize"),
    ]
    lines = [
        f"{args.subjects} subjects, {records:,} SDTM records -> {resources:,} FHIR resources; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; round trip byte-identical: "
        f"{'yes' if identical else 'NO'}",
        "",
        "| step | resources | wall s | CPU s | resources/CPU-s | CPU time vs FHIR -> SDTM | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, step in rows:
        r = results[step]
        lines.append(
            f"| {label} | {r['count']:,} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
            f"{rate(step):,.0f} | {r['cpu_seconds'] / ours_read:.2f}x | {r['peak_mb']:.0f} |"
        )
    lines.append(
        f"| (interpreter + imports only) | | | | | | {results['baseline']['peak_mb']:.0f} |"
    )
    lines.append("")
    lines.append("Phases (CPU seconds):")
    for step in ("to-fhir", "to-sdtm"):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in results[step]["phases"].items())
        lines.append(f"- {step}: {phases}")
    lines.append(f"- by type: {results['to-fhir']['by_type']}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
