"""`python -m benchmarks.run` (`make bench`): all cases side by side, printed and as JSON.

    python -m benchmarks.run                     10k, 100k and 1M rows (about 10-15 minutes)
    python -m benchmarks.run --sizes 10000,100000
    python -m benchmarks.run --quick             10k rows only, fewer repetitions and ticks

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from benchmarks import cases, proc
from benchmarks.data import write_table
from benchmarks.report import render, summarize

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = os.getloadavg()
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "node": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gb": round(memory, 1),
        "python": platform.python_version(),
        "versions": {d: version(d) for d in ("dagster", "mlflow", "great_expectations",
                                             "scikit-learn", "pandas", "pyarrow")},
        "load_start": [round(x, 2) for x in load],
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _code(snapshot: str | None, work: Path) -> dict:
    """Which ml_assets code the cases run; with a snapshot, a frozen `git archive` of it."""
    code = {"commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes_in_ml_assets": bool(_git("status", "--porcelain", "ml_assets"))}
    if snapshot:
        target = work / "code"
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", snapshot, "ml_assets"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        proc.CODE_PATH = str(target)
        code.update(snapshot=snapshot, snapshot_commit=_git("rev-parse", snapshot))
    # Compiled once, untimed: a user's processes import ml_assets from the bytecode cache its
    # first import wrote, so no case should pay for compiling it (the installed libraries
    # were compiled by pip). proc.base_env lets the cases use that cache.
    package = Path(proc.CODE_PATH or ROOT) / "ml_assets"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True,
                   env=proc.base_env())
    code["bytecode"] = "compiled before timing"
    return code


def _raw_table_bytes(path: Path) -> int:
    """The raw table's in-memory size as read_table gives it (in a process of its own, with
    the same code as the cases)."""
    code = ("import sys; from ml_assets.core.tables import read_table; "
            "print(int(read_table(sys.argv[1]).memory_usage(deep=True).sum()))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=proc.base_env(),
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated row counts (default 10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 10k rows, one repetition, 5 sensor ticks")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions at the smallest and the largest size, where the "
                        "targets are read (default 3; sizes between run once)")
    parser.add_argument("--ticks", type=int, default=None, help="sensor ticks (default 20)")
    parser.add_argument("--files", type=int, default=1000,
                        help="versions and landing files for the sensor tick (default 1000)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="JSON output")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where tables and homes go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--snapshot", metavar="REV", nargs="?", const="HEAD", default=None,
                        help="run a frozen copy of ml_assets at git revision REV (default HEAD) "
                        "instead of the working tree, e.g. while others are editing it")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="OMP_NUM_THREADS=N for every case (default: unset, all cores)")
    args = parser.parse_args(argv)
    if args.sizes:
        try:
            args.sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
        except ValueError:
            parser.error(f"--sizes: expected comma-separated whole numbers, got {args.sizes!r}")
    else:
        args.sizes = (10_000,) if args.quick else DEFAULT_SIZES
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.ticks = args.ticks or (5 if args.quick else 20)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ml_assets_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"machine": _machine(), "options": {
        "sizes": list(args.sizes), "repeat": args.repeat, "ticks": args.ticks,
        "files": args.files, "quick": args.quick, "threads": args.threads}, "sizes": {}}
    proc.THREADS = args.threads
    results["code"] = _code(args.snapshot, work)
    _log(f"working folder {work}; code {results['code']}")
    try:
        _log("imports: dagster vs ml_assets.definitions")
        results["imports"] = cases.case_imports(work / "imports", repeats=5 if not args.quick else 3)
        _log(f"sensor tick: {args.files} versions, {args.ticks} ticks")
        results["sensor"] = cases.case_sensor(work / "sensor", args.files, args.ticks)

        smallest, largest = min(args.sizes), max(args.sizes)
        for rows in sorted(args.sizes):
            t0 = time.perf_counter()
            table = write_table(rows, work / "tables")
            entry: dict = {"csv_bytes": table.stat().st_size,
                           "generate_seconds": round(time.perf_counter() - t0, 2)}
            entry["raw_table_bytes"] = _raw_table_bytes(table)
            # The targets are read at the smallest and the largest size: the median of several
            # interleaved repetitions there (one run of 1M rows varies by a second or more).
            reps = args.repeat if rows in (smallest, largest) else 1
            measured: dict[str, list] = {"a": [], "m": [], "b": [], "c": []}
            for rep in range(reps):
                # Interleaved, so a slow moment of the machine does not hit one case only.
                _log(f"{rows:,} rows, repetition {rep + 1}/{reps}: (a) bare script")
                measured["a"].append(cases.case_bare(table, work / f"a_{rows}_{rep}"))
                _log(f"{rows:,} rows, repetition {rep + 1}/{reps}: (a+) bare script + MLflow")
                measured["m"].append(cases.case_bare_mlflow(table, work / f"m_{rows}_{rep}"))
                _log(f"{rows:,} rows, repetition {rep + 1}/{reps}: (b) ml-assets run")
                b, home = cases.case_cli(table, work / f"b_{rows}_{rep}")
                measured["b"].append(b)
                if rows == smallest and rep == 0:
                    _log("no-op ml-assets run")
                    results["noop"] = cases.case_noop(home, repeats=3)
                _log(f"{rows:,} rows, repetition {rep + 1}/{reps}: (c) dagster asset materialize")
                measured["c"].append(cases.case_launched(table, work / f"c_{rows}_{rep}"))
                if rows == smallest:
                    # The executor choice: the same run, multiprocess (forkserver, preloaded).
                    _log(f"{rows:,} rows, repetition {rep + 1}/{reps}: (d) (c) multiprocess")
                    measured.setdefault("d", []).append(cases.case_launched(
                        table, work / f"d_{rows}_{rep}", cases.MULTIPROCESS_CONFIG))
                for name in measured:
                    _log(f"  {name}: {measured[name][-1]['wall']:.2f} s wall")
                if not args.keep:
                    for name in measured:
                        shutil.rmtree(work / f"{name}_{rows}_{rep}", ignore_errors=True)
            for name, runs in measured.items():
                entry[name] = cases.median_of(runs)
            results["sizes"][str(rows)] = entry
    except cases.CaseFailed as exc:
        _log(f"FAILED: {exc}")
        results["error"] = str(exc)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    load_end = os.getloadavg()
    results["machine"]["load_end"] = [round(x, 2) for x in load_end]
    results["machine"]["busy"] = (
        max(results["machine"]["load_start"][0], load_end[0], load_end[1]) > (os.cpu_count() or 1)
    )
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    if results["sizes"]:
        results["summary"] = summarize(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if "summary" in results:
        table = render(results)
        args.out.with_suffix(".txt").write_text(table + "\n")
        print(table)
    print(f"\n{results['seconds_total']:.0f} s in all; results written to {args.out} "
          f"(and the table to {args.out.with_suffix('.txt').name})")
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
