"""Benchmark: `trialfhir convert --workers N`, wall time and peak memory at three sizes, both ways.
Run by hand (results go to docs/performance.md, "Workers and memory"):

    python bench/bench_workers.py --subjects 250           # 250, 1,000 and 4,000 subjects
    python bench/bench_workers.py --dm-rows 500000         # a DM alone, twice as big again

Each conversion is the whole `python -m adapter.cli convert` process (`--no-bundle`: the NDJSON alone;
`--bundle` adds a copy of every resource) on `--workers 1` and `--workers 2`, one after the other
(repeated `--repeats` times, the best wall time kept). The CPU seconds (the process and its
workers) of two workers over one worker are the overhead of the split (on a shared machine the
steadier figure: the speed-up on two idle cores is at most 2 over that ratio). Peak memory is the
largest sum of the resident memory of the process and its children (the workers), sampled every
0.05 s, both as RSS (pages a forked worker shares with its parent counted in each) and as PSS
(shared pages divided among their sharers: the memory the conversion takes), and the largest
single process (the parent or one worker) in the same samples. The outputs of the two worker
counts are compared byte for byte.
The machine's load average (`os.getloadavg`) is printed before and after each size: on a shared
machine the wall times are only comparable within a run at a similar load.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class PeakTree:
    """The largest sum of RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.peak = 0
        self.largest = 0
        self.pss = 0
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            pss = 0
            try:
                for process in [self._process, *self._process.children(recursive=True)]:
                    try:
                        rss = process.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    pss += _pss(process.pid) or rss
                    self.largest = max(self.largest, rss)
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self.pss = max(self.pss, pss)
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1e6


def _pss(pid: int) -> int:
    """The proportional set size of a process (shared pages divided among their sharers: a forked
    worker's pages it still shares with its parent are not counted twice), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


CODE = ROOT
"""The tree whose `adapter` is run (`--code`: e.g. a `git archive` of the base commit)."""

ONE_AT_A_TIME = False
"""`--one-at-a-time`: the workers' pool has one process, so the plan for N workers runs one part
after another: its CPU seconds are the split's work, without two processes competing for the cores."""

_ONE_PROCESS_POOL = """
import multiprocessing, sys
_context = multiprocessing.get_context
class _OneProcess:
    def __init__(self, context): self._context = context
    def Pool(self, processes=None, *args, **kwargs): return self._context.Pool(1, *args, **kwargs)
    def __getattr__(self, name): return getattr(self._context, name)
multiprocessing.get_context = lambda method=None: _OneProcess(_context(method))
sys.argv = ["trialfhir", *sys.argv[1:]]
from adapter.cli import main
main()
"""


def convert(src: Path, out: Path, workers: int, *options: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    runner = ["-c", _ONE_PROCESS_POOL] if ONE_AT_A_TIME else ["-m", "adapter.cli"]
    command = [sys.executable, *runner, "convert", str(src), "--out", str(out)]
    command += ["--force", "--workers", str(workers), *options]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = PeakTree(process.pid)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    tree = peak.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"convert failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return {
        "seconds": seconds,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "tree_mb": tree,
        "largest_mb": peak.largest / 1e6,
        "pss_mb": peak.pss / 1e6,
        "summary": stdout.decode().strip(),
    }


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    if names != sorted(p.name for p in b.iterdir() if not p.name.startswith(".")):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def size_mb(folder: Path, suffix: str) -> float:
    return sum(p.stat().st_size for p in folder.glob(f"*{suffix}")) / 1e6


def measure(label: str, sdtm: Path, work: Path, repeats: int, bundle: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    option = "--bundle" if bundle else "--no-bundle"
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    fhir = {w: work / f"fhir-{w}" for w in (1, 2)}
    back = {w: work / f"sdtm-{w}" for w in (1, 2)}
    for direction in ("to FHIR", "to SDTM"):
        best: dict[int, dict[str, Any]] = {}
        for _ in range(repeats):
            for w in (1, 2):
                if direction == "to FHIR":
                    result = convert(sdtm, fhir[w], w, option)
                else:
                    result = convert(fhir[1], back[w], w, "--to", "sdtm")
                if w not in best or result["seconds"] < best[w]["seconds"]:
                    best[w] = {
                        **result,
                        "tree_mb": max(result["tree_mb"], best.get(w, result)["tree_mb"]),
                    }
        outputs = fhir if direction == "to FHIR" else back
        same = same_files(outputs[1], outputs[2])
        for w in (1, 2):
            row = {
                "size": label,
                "direction": direction,
                "workers": w,
                **best[w],
                "speedup": best[1]["seconds"] / best[w]["seconds"],
                "cpu_ratio": best[w]["cpu"] / best[1]["cpu"],
                "same_bytes": same,
                "input_mb": size_mb(sdtm, ".csv")
                if direction == "to FHIR"
                else size_mb(fhir[1], ".ndjson"),
            }
            rows.append(row)
            print(
                f"{label:>24} {direction:8} w={w} {row['seconds']:7.2f} s  cpu {row['cpu']:7.2f} s "
                f"(x{row['cpu_ratio']:.2f} of 1 worker)  "
                f"x{row['speedup']:.2f}  pss {row['pss_mb']:6.0f} MB  tree {row['tree_mb']:7.0f} MB  largest {row['largest_mb']:6.0f} MB  "
                f"input {row['input_mb']:7.1f} MB  same={same}  load {load:.1f}->{os.getloadavg()[0]:.1f}",
                flush=True,
            )
    if back[1].exists():
        print(f"{label:>24} round trip byte for byte: {same_files(sdtm, back[1])}", flush=True)
    return rows


def dm_alone(base: Path, rows: int, out: Path) -> Path:
    """A DM of `rows` rows: the base cohort's DM rows repeated with new USUBJIDs (and TS, TA)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ts.csv", "ta.csv"):
        shutil.copy(base / name, out / name)
    with open(base / "dm.csv", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        template = list(reader)
    column = header.index("USUBJID")
    study = header.index("STUDYID")
    subject = header.index("SUBJID") if "SUBJID" in header else None
    with open(out / "dm.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for n in range(rows):
            cells = list(template[n % len(template)])
            cells[column] = f"{cells[study]}-{n:08d}"  # written in SDTM's sort order
            if subject is not None:
                cells[subject] = f"{n:08d}"
            writer.writerow(cells)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=250, help="the 1x size (then 4x, 16x)")
    parser.add_argument("--sizes", default="1,4,16", help="multiples of --subjects")
    parser.add_argument(
        "--dm-rows",
        type=int,
        default=0,
        help="instead: a DM alone of this many rows, and a quarter of it",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bundle", action="store_true", help="also write bundle.json")
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--code", type=Path, default=ROOT, help="run the adapter of this tree")
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="a pool of one process runs the N-worker plan: the CPU seconds of the split alone",
    )
    args = parser.parse_args()
    global CODE, ONE_AT_A_TIME
    CODE, ONE_AT_A_TIME = args.code.resolve(), args.one_at_a_time
    sys.path.insert(0, str(ROOT))
    from adapter.testing.cohort import generate_scaled, write_csv_folder

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-workers-"))
    print(f"cores {os.cpu_count()}, load {os.getloadavg()}, work {work}", flush=True)
    try:
        if args.dm_rows:
            base = work / "base"
            write_csv_folder(generate_scaled(50, args.seed), base)
            for rows in (args.dm_rows // 4, args.dm_rows):
                sdtm = dm_alone(base, rows, work / f"dm-{rows}")
                measure(
                    f"DM alone, {rows:,} rows",
                    sdtm,
                    work / f"dm-{rows}-out",
                    args.repeats,
                    args.bundle,
                )
                shutil.rmtree(work / f"dm-{rows}-out", ignore_errors=True)
            return 0
        for multiple in (int(m) for m in args.sizes.split(",")):
            n = args.subjects * multiple
            sdtm = work / f"sdtm-{n}"
            if not sdtm.exists():
                write_csv_folder(generate_scaled(n, args.seed), sdtm)
            measure(
                f"{multiple}x: {n:,} subjects", sdtm, work / f"out-{n}", args.repeats, args.bundle
            )
            shutil.rmtree(work / f"out-{n}", ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
