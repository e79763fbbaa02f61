"""Benchmark: this checkout against another (e.g. the base of a change), in interleaved rounds.

On a shared or virtual machine the speed of one process drifts by 20-30 % from one minute to the
next, so two benchmark runs made one after the other compare the minutes as much as the code. This
script alternates: each round runs the orjson floor, then both checkouts both ways (who goes first
alternates), then the floor again, every step a fresh process timed from outside (wall clock; user +
system CPU and peak RSS from `os.wait4`, the parent process only: with `--workers 2` the workers'
memory is not in that figure, see bench_workers.py). Run by hand (results go to docs/performance.md):

    python bench/bench_single.py --subjects 1000 --repeats 1 --workdir /tmp/bs   # makes the data
    git archive BASE | (mkdir /tmp/base && tar -x -C /tmp/base)
    python bench/bench_interleaved.py --data /tmp/bs --base /tmp/base --workers 1 --rounds 3
    python bench/bench_interleaved.py --data /tmp/bs --base /tmp/base --workers 2 --rounds 3

`--data` is a folder with `sdtm/` (the CSV tables) and `fhir/` (their NDJSON). Each checkout runs
its own default for `bundle.json` unless `--bundle yes|no` is given. The round trip must give the
CSV files back byte for byte (checked every round, for both checkouts).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = (
    "import sys, orjson, pathlib\n"
    "for p in sorted(pathlib.Path(sys.argv[1]).glob('*.ndjson')):\n"
    "    with open(p, 'rb') as h:\n"
    "        for line in h:\n"
    "            orjson.loads(line)\n"
)


def timed(command: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one fresh process."""
    env = dict(os.environ, PYTHONPATH=str(cwd))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package: compiled once, then cached
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    assert child.stderr is not None
    error = child.stderr.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed ({status}):\n{error[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def same_tables(expected: Path, got: Path) -> bool:
    names = sorted(p.name for p in expected.glob("*.csv"))
    if names != sorted(p.name for p in got.glob("*.csv")):
        return False
    return all(filecmp.cmp(expected / n, got / n, shallow=False) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bundle", choices=("yes", "no"))
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    codes = {"this": here, "base": args.base.resolve()}
    sdtm, fhir = args.data / "sdtm", args.data / "fhir"
    bundle = {"yes": ["--bundle"], "no": ["--no-bundle"], None: []}[args.bundle]
    results: dict[str, list[tuple[float, float, float]]] = {}
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-interleaved-") as work:
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} (load {os.getloadavg()[0]:.1f})", flush=True)
            results.setdefault("floor", []).append(
                timed([python, "-c", FLOOR, str(fhir)], Path(work))
            )
            order = list(codes) if round_number % 2 == 0 else list(reversed(codes))
            for name in order:
                out_fhir, out_sdtm = Path(work) / f"{name}-fhir", Path(work) / f"{name}-sdtm"
                shutil.rmtree(out_fhir, ignore_errors=True)
                shutil.rmtree(out_sdtm, ignore_errors=True)
                workers = ["--workers", args.workers]
                to_fhir = [
                    python,
                    "-m",
                    "adapter.cli",
                    "convert",
                    str(sdtm),
                    "--out",
                    str(out_fhir),
                ]
                to_sdtm = [python, "-m", "adapter.cli", "convert", str(fhir), "--to", "sdtm"]
                results.setdefault(f"{name}: to FHIR", []).append(
                    timed([*to_fhir, *workers, *bundle], codes[name])
                )
                results.setdefault(f"{name}: to SDTM", []).append(
                    timed([*to_sdtm, "--out", str(out_sdtm), *workers], codes[name])
                )
                if not same_tables(sdtm, out_sdtm):
                    raise SystemExit(f"{name}: the round trip did not give the CSV files back")
            results["floor"].append(timed([python, "-c", FLOOR, str(fhir)], Path(work)))
    print(f"load at the end {os.getloadavg()[0]:.1f}; round trip byte for byte: yes")
    floor_wall = statistics.median(r[0] for r in results["floor"])
    floor_cpu = statistics.median(r[1] for r in results["floor"])
    print(
        "| step | wall s (rounds) | CPU s (rounds) | floor / step, wall | floor / step, CPU | peak RSS MB |"
    )
    print("|---|---|---|---:|---:|---:|")
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(
            f"| {name} | {', '.join(f'{r[0]:.2f}' for r in runs)} | "
            f"{', '.join(f'{r[1]:.2f}' for r in runs)} | {floor_wall / wall:.2f}x | "
            f"{floor_cpu / cpu:.2f}x | {max(r[2] for r in runs):.0f} |"
        )


if __name__ == "__main__":
    main()
