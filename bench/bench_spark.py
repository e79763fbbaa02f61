"""One machine against Spark: the local engine, `--engine spark` and the SQL-on-FHIR views on Pathling,
in the same run, on a generated cohort.

    python bench/bench_spark.py --subjects 1000 [--master local[2]] [--skip-pathling] [--clinical]

`--clinical` adds the invented LB, AE and MH tables (`generate_scaled(..., clinical=True)`, about 17
rows per subject); without it the cohort is the one docs/performance.md measured.

Each engine runs in a fresh process of its own, which measures:
- start-up: imports (local), or the Spark session (Spark; Pathling: the session with its jars and the
  PathlingContext);
- first pass and warm pass: SDTM -> FHIR then FHIR -> SDTM (local, Spark), or every view and SQL step
  over the cohort's NDJSON, collected to the driver (Pathling), run twice in the same process;
- peak memory: the largest sum of resident memory of the process and all its children (the JVM and
  Spark's Python workers), sampled every 0.2 s.
Every output is checked against the local engine's bytes (Spark) before its time is reported. Results:
docs/performance.md ("One machine or Spark").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class PeakMemory:
    """The peak RSS (MB) of this process and its descendants, sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for proc in [self._me, *self._me.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
            except psutil.Error:
                pass
            self.peak = max(self.peak, total / 1e6)
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _local(src: Path, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    from adapter.cli.convert_cmd import _fhir_to_sdtm, _sdtm_to_fhir, gc_paused
    from adapter.sources import detect

    started = time.perf_counter() - t0
    passes = []
    for n in (1, 2):
        fhir, sdtm = work / f"local-fhir-{n}", work / f"local-sdtm-{n}"
        fhir.mkdir()
        sdtm.mkdir()
        t = time.perf_counter()
        with gc_paused():
            _sdtm_to_fhir(src, detect(src, want="sdtm"), fhir, validate=False)
            mid = time.perf_counter()
            _fhir_to_sdtm(fhir, detect(fhir, want="fhir"), sdtm, validate=False)
        passes.append({"to_fhir": mid - t, "to_sdtm": time.perf_counter() - mid})
    return {"startup": started, "passes": passes}


def _spark(src: Path, work: Path, master: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    from adapter.engines.spark import fhir_to_sdtm, sdtm_to_fhir, spark_session
    from adapter.tables import read_trial, write_trial

    spark = spark_session(master)
    spark.sparkContext.parallelize([0], 1).count()  # the first job starts the Python workers
    started = time.perf_counter() - t0
    passes = []
    for n in (1, 2):
        fhir, sdtm = work / f"spark-fhir-{n}", work / f"spark-sdtm-{n}"
        t = time.perf_counter()
        sdtm_to_fhir(spark, read_trial(src), fhir)
        mid = time.perf_counter()
        write_trial(fhir_to_sdtm(spark, fhir).trial, sdtm)
        passes.append({"to_fhir": mid - t, "to_sdtm": time.perf_counter() - mid})
    spark.stop()
    return {"startup": started, "passes": passes}


def _pathling(fhir: Path, master: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    from adapter.views.pathling import pathling_session, run_views

    spark = pathling_session(master)
    spark.sparkContext.parallelize([0], 1).count()
    started = time.perf_counter() - t0
    passes = []
    rows = 0
    for _ in (1, 2):
        t = time.perf_counter()
        results = run_views(spark, fhir)
        passes.append({"views": time.perf_counter() - t})
        rows = sum(len(r["rows"]) for r in results.values())
    spark.stop()
    return {"startup": started, "passes": passes, "rows": rows}


def child(engine: str, src: Path, work: Path, master: str) -> None:
    """Run one engine in this process and print its measures as JSON."""
    memory = PeakMemory()
    if engine == "local":
        result = _local(src, work)
    elif engine == "spark":
        result = _spark(src, work, master)
    else:
        result = _pathling(src, master)
    result["peak_mb"] = memory.stop()
    print(json.dumps(result))


def run_child(engine: str, src: Path, work: Path, master: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(src), str(work), "--master", master],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    if names != sorted(p.name for p in b.iterdir() if not p.name.startswith(".")):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--skip-pathling", action="store_true")
    parser.add_argument("--clinical", action="store_true", help="add LB, AE and MH tables")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "SRC", "WORK"))
    args = parser.parse_args()
    if args.child:
        engine, src, work = args.child
        child(engine, Path(src), Path(work), args.master)
        return 0
    sys.path.insert(0, str(ROOT))
    from adapter.testing.cohort import generate_scaled, write_csv_folder

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        src = work / "sdtm"
        tables = generate_scaled(args.subjects, args.seed, clinical=args.clinical)
        write_csv_folder(tables, src)
        records = sum(len(rows) for rows in tables.values())
        print(f"cohort: {args.subjects} subjects, {records} SDTM records", flush=True)
        results = {"local": run_child("local", src, work, args.master)}
        print("local", json.dumps(results["local"]), flush=True)
        results["spark"] = run_child("spark", src, work, args.master)
        print("spark", json.dumps(results["spark"]), flush=True)
        for n in (1, 2):
            assert same_files(work / f"local-fhir-{n}", work / f"spark-fhir-{n}"), "FHIR differs"
            assert same_files(work / f"local-sdtm-{n}", work / f"spark-sdtm-{n}"), "SDTM differs"
        resources = sum(1 for _ in (work / "local-fhir-1" / "bundle.json").open()) - 2
        print(f"spark output = local output, byte for byte ({resources} resources)", flush=True)
        if not args.skip_pathling:
            results["pathling"] = run_child("pathling", work / "local-fhir-1", work, args.master)
            print("pathling", json.dumps(results["pathling"]), flush=True)
    print(f"load average after the run: {os.getloadavg()}")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
