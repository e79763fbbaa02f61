"""Benchmark: the whole `trialfhir convert` process, one worker, against the orjson parse floor of
the same NDJSON, in one run (issue 13's single-worker goal). Run by hand (results go to
docs/performance.md):

    python bench/bench_single.py --subjects 1000 --repeats 3
    python bench/bench_single.py --subjects 50 --repeats 1   # a quick look

It generates the scaled cohort (`adapter.testing.cohort.generate_scaled`) as CSV, then repeats, in
rounds: (1) `python -m adapter.cli convert SDTM --out FHIR` (as a user runs it: the NDJSON, and the
transaction Bundle where the checkout's default or `--bundle yes` writes it), (2) `convert FHIR --to sdtm --out BACK`, (3) the floor: a fresh process that runs
`orjson.loads` on every line of the NDJSON files, nothing else. Every step is a fresh process timed
from outside (wall clock, and the child's user+system CPU from `os.wait4`), interpreter start and
imports included. The ratio floor / step is computed per round (the load of a shared machine
cancels in part) and its median reported; the round trip must give back the CSV files byte for byte.

`--phases` also times each phase of SDTM -> FHIR alone in one process of the checkout (`gc` paused
as `convert` does; CPU seconds): imports, reading and checking the CSVs, mapping (the resources made
and dropped), mapping + writing the NDJSON, the output manifest of what was written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOOR = (
    "import glob, sys, orjson\n"
    "n = 0\n"
    "for f in sorted(glob.glob(sys.argv[1] + '/*.ndjson')):\n"
    "    with open(f, 'rb') as h:\n"
    "        for line in h:\n"
    "            orjson.loads(line); n += 1\n"
    "print(n)\n"
)


def timed(args: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS MB) of one child process; exits on failure."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode() if child.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


PHASES = (
    "import gc, sys, time, shutil\n"
    "from pathlib import Path\n"
    "gc.disable(); clock = time.process_time; start = clock()\n"
    "from adapter.tables import read_trial\n"
    "from mappings.trial import trial_to_fhir\n"
    "from adapter.fhir_files import write_ndjson\n"
    "from adapter.cli._common import _finish\n"
    "out = Path(sys.argv[2]); shutil.rmtree(out, ignore_errors=True)\n"
    "marks = [('imports', clock() - start)]; start = clock()\n"
    "trial = read_trial(sys.argv[1]); marks.append(('read + check CSVs', clock() - start))\n"
    "start = clock()\n"
    "for _ in trial_to_fhir(trial): pass\n"
    "marks.append(('map (resources dropped)', clock() - start)); start = clock()\n"
    "write_ndjson(trial_to_fhir(trial), out); marks.append(('map + write NDJSON', clock() - start))\n"
    "start = clock(); _finish(out, 'bench'); marks.append(('manifest', clock() - start))\n"
    "shutil.rmtree(out, ignore_errors=True)\n"
    "print('\\n'.join(f'{name}\\t{seconds:.2f}' for name, seconds in marks))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="convert --workers N (default 1: one worker, the measure of issue 13; 0: leave the "
        "option out, for a checkout older than --workers)",
    )
    parser.add_argument(
        "--bundle",
        choices=["yes", "no"],
        default=None,
        help="pass convert --bundle (yes) or --no-bundle (no); default: neither (the checkout's "
        "default: no Bundle since 30 Nov 2026, the Bundle before)",
    )
    parser.add_argument(
        "--phases", action="store_true", help="also time each SDTM -> FHIR phase alone"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--code", type=Path, default=None, help="the checkout to run (default: this one)"
    )
    args = parser.parse_args()
    global ROOT
    ROOT = (args.code or ROOT).resolve()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-single-"))
    sdtm, fhir, back = work / "sdtm", work / "fhir", work / "back"
    code = (
        "import sys; from pathlib import Path\n"
        "from adapter.testing.cohort import generate_scaled, write_csv_folder\n"
        "write_csv_folder(generate_scaled(int(sys.argv[1]), int(sys.argv[2])), Path(sys.argv[3]))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(args.subjects), str(args.seed), str(sdtm)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
    )
    cli = [sys.executable, "-m", "adapter.cli", "convert"]
    extra = ["--workers", str(args.workers)] if args.workers else []
    to_fhir = {"yes": ["--bundle"], "no": ["--no-bundle"], None: []}[args.bundle]
    runs: dict[str, list[tuple[float, float, int]]] = {"to-fhir": [], "to-sdtm": [], "floor": []}
    for round_ in range(args.repeats):
        for path in (fhir, back):
            shutil.rmtree(path, ignore_errors=True)
        print(f"round {round_ + 1} (load {os.getloadavg()[0]:.1f}) ...", file=sys.stderr)
        runs["to-fhir"].append(timed([*cli, str(sdtm), "--out", str(fhir), *extra, *to_fhir]))
        runs["floor"].append(timed([sys.executable, "-c", FLOOR, str(fhir)]))
        runs["to-sdtm"].append(timed([*cli, str(fhir), "--to", "sdtm", "--out", str(back), *extra]))
    identical = all(
        (back / p.name).read_bytes() == p.read_bytes() for p in sorted(sdtm.glob("*.csv"))
    )
    resources = sum(1 for f in fhir.glob("*.ndjson") for _ in f.open("rb"))
    print(
        f"{args.subjects} subjects, {resources:,} resources, {args.repeats} rounds, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; round trip byte-identical: "
        f"{'yes' if identical else 'NO'}\n"
    )
    print(
        "| step | wall s (rounds) | CPU s (rounds) | floor / step, wall (median) | floor / step, CPU (median) | peak RSS MB |"
    )
    print("|---|---|---|---:|---:|---:|")
    for step in ("to-fhir", "to-sdtm", "floor"):
        walls = [r[0] for r in runs[step]]
        cpus = [r[1] for r in runs[step]]
        ratio_wall = statistics.median(
            f[0] / r[0] for f, r in zip(runs["floor"], runs[step], strict=True)
        )
        ratio_cpu = statistics.median(
            f[1] / r[1] for f, r in zip(runs["floor"], runs[step], strict=True)
        )
        print(
            f"| {step} | {', '.join(f'{w:.2f}' for w in walls)} | {', '.join(f'{c:.2f}' for c in cpus)} "
            f"| {ratio_wall:.2f}x | {ratio_cpu:.2f}x | {max(r[2] for r in runs[step])} |"
        )
    if args.phases:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", PHASES, str(sdtm), str(work / "phases")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        print("\n| SDTM -> FHIR phase, alone | CPU s |\n|---|---:|")
        for line in done.stdout.splitlines():
            name, seconds = line.split("\t")
            print(f"| {name} | {seconds} |")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
