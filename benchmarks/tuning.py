"""`python -m benchmarks.tuning`: does the garbage-collector tuning (`ml_assets/heap.py`) and
the recent-frame handoff (the IO managers' `storage.RecentFrame`) still pay for themselves?

    python -m benchmarks.tuning                              10k and 1M rows, 3 repetitions
    python -m benchmarks.tuning --sizes 10000,1000000 --repeat 5,3
    python -m benchmarks.tuning --split-heap     a fifth variant: heap tuning only in the CLI

Times `ml-assets run` (case (b) of benchmarks/run.py) on the same table in four variants,
interleaved: (1) as is, (2) heap tuning off, (3) recent-frame cache off, (4) both off, each
launched through benchmarks/tuning_launch.py, which patches the package in the process before
calling `ml_assets.cli.main`. It runs a frozen `git archive` of ml_assets (HEAD unless
`--snapshot REV`) with OMP_NUM_THREADS=1 unless told otherwise. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import cases, proc
from benchmarks.data import write_table
from benchmarks.run import RESULTS, _code, _log, _machine

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "tuning_launch.py"
DEFAULT_SIZES = (10_000, 1_000_000)

# (name, label, launcher flags); the first is the reference the ratios are taken against.
VARIANTS = (
    ("as_is", "(1) as is", ()),
    ("no_heap", "(2) heap tuning off", ("--no-heap",)),
    ("no_cache", "(3) recent-frame cache off", ("--no-cache",)),
    ("neither", "(4) both off", ("--no-heap", "--no-cache")),
)
# With --split-heap: the heap tuning of the command line (imports, exit) without what the IO
# managers do during the run, to tell the two apart.
CLI_ONLY = ("heap_cli_only", "(5) heap tuning only in CLI", ("--heap-cli-only",))
LABELS = {name: label for name, label, _ in (*VARIANTS, CLI_ONLY)}


def _check_patches(check: dict, flags: tuple[str, ...]) -> None:
    """A variant whose patch did not take would be timed as (1): refuse it."""
    if "--no-heap" in flags and check["frozen_objects_at_exit"]:
        raise cases.CaseFailed(f"heap tuning was meant to be off but objects were frozen: {check}")
    if "--no-heap" not in flags and not check["frozen_objects_at_exit"]:
        raise cases.CaseFailed(f"heap tuning was meant to be on but nothing was frozen: {check}")
    if "--no-cache" in flags and not check["io_manager_uses_stand_in"]:
        raise cases.CaseFailed(f"the IO managers did not use the cache stand-in: {check}")


def case_variant(table: Path, work: Path, flags: tuple[str, ...]) -> dict:
    """One `ml-assets run` of `table` in a fresh home, launched with `flags`."""
    home = cases.prepare_home(work, table)
    m = proc.run_measured([cases.PYTHON, str(LAUNCHER), *flags, "run"], env=home.env,
                          cwd=home.work, log_dir=home.logs, name="tuning_run")
    cases._check(m, f"ml-assets run {' '.join(flags)}".strip())
    if "=> registered" not in m.stdout:
        raise cases.CaseFailed(f"ml-assets run {' '.join(flags)} did not register a model:\n"
                               f"{m.stdout[-2000:]}")
    check = cases._json_line(m.stderr, "TUNING_CHECK")
    _check_patches(check, flags)
    return {**cases._figures(m), "check": check, **cases._run_breakdown(home, m)}


def _asset_name(step_key: str) -> str:
    """`<pipeline slug>__raw_data` -> `raw_data`: benchmarks/home.py gives the asset's name,
    an older copy of it gave Dagster's step key, which carries the pipeline's prefix."""
    return step_key.rsplit("__", 1)[-1]


def _median_steps(runs: list[dict]) -> dict[str, float]:
    """Each step's median over the repetitions (steps vary independently of the total)."""
    by_step: dict[str, list[float]] = {}
    for run in runs:
        for key, seconds in run.get("steps", {}).items():
            by_step.setdefault(_asset_name(key), []).append(seconds or 0.0)
    out = {step: statistics.median(values) for step, values in by_step.items()}
    for part in ("between_steps", "outside_run"):
        out[part] = statistics.median(r.get(part, 0.0) for r in runs)
    return out


def summarize_size(measured: dict[str, list[dict]]) -> dict:
    """Per variant: the median repetition's own figures, its ratios to (1) (of the medians,
    and the median of the ratios within each repetition), and each step's median."""
    reference_name = next(iter(measured))
    entry = {name: cases.median_of(runs) for name, runs in measured.items()}
    reference = entry[reference_name]
    for name, runs in measured.items():
        chosen = entry[name]
        chosen["median_steps"] = _median_steps(runs)
        chosen["parquet_reads"] = chosen["check"]["parquet_reads"]
        chosen["x_wall"] = chosen["wall"] / reference["wall"]
        chosen["x_cpu"] = chosen["cpu"] / reference["cpu"]
        chosen["x_peak"] = chosen["max_rss"] / reference["max_rss"]
        chosen["paired_x_wall"] = statistics.median(
            r["wall"] / ref["wall"] for r, ref in zip(runs, measured[reference_name], strict=True))
    return entry


def _steps_table(rows: int, entry: dict) -> list[str]:
    names = list(entry)
    steps = list(dict.fromkeys(s for n in names for s in entry[n]["median_steps"]))
    width = max(len(s) for s in [*steps, "outside the run (start-up, exit)"]) + 2
    lines = [f"\n{rows:,} rows: seconds per step, median over the repetitions (as Dagster "
             "recorded them)",
             f"{'step':<{width}}" + "".join(f"{LABELS[n].split()[0]:>9}" for n in names)]
    shown = {"between_steps": "between steps", "outside_run": "outside the run (start-up, exit)"}
    for step in steps:
        cells = "".join(f"{entry[n]['median_steps'].get(step, float('nan')):>9.2f}"
                        for n in names)
        lines.append(f"{shown.get(step, step):<{width}}{cells}")
    return lines


def render(results: dict) -> str:
    machine, code = results["machine"], results["code"]
    lines = [
        f"ml-assets run, {len(results['options']['variants'])} variants interleaved; "
        f"{machine['platform']}, {machine['cpus']} CPUs, "
        f"Python {machine['python']}; commit {code.get('snapshot_commit', code['commit'])[:7]}"
        f"{' (snapshot)' if code.get('snapshot') else ' (working tree)'}; OMP_NUM_THREADS="
        f"{results['options']['threads'] or 'unset'}; load average "
        f"{machine['load_start'][0]} at start, {machine['load_end'][0]} at end",
        "",
        f"{'rows':>10}  {'variant':<28}{'wall s':>8}{'cpu s':>8}{'peak MB':>9}"
        f"{'x1 wall':>9}{'paired':>8}{'x1 cpu':>8}{'x1 peak':>9}{'pq reads':>9}  walls",
        "-" * 120,
    ]
    for size, entry in results["sizes"].items():
        rows = int(size)
        for name, r in entry.items():
            label = LABELS[name]
            walls = " ".join(f"{w:.1f}" for w in r.get("walls", [r["wall"]]))
            lines.append(
                f"{rows:>10,}  {label:<28}{r['wall']:>8.2f}{r['cpu']:>8.2f}"
                f"{r['max_rss'] / 1e6:>9.0f}{r['x_wall']:>9.3f}{r['paired_x_wall']:>8.3f}"
                f"{r['x_cpu']:>8.3f}{r['x_peak']:>9.3f}{r['parquet_reads']:>9}  {walls}")
    for size, entry in results["sizes"].items():
        lines += _steps_table(int(size), entry)
    lines += [
        "",
        "wall/cpu/peak: the repetition with the median wall time; x1: its ratio to (1) as is;",
        "paired: the median over repetitions of wall / (1)'s wall in the same repetition;",
        "pq reads: Parquet files read back from the store during the run.",
    ]
    return "\n".join(lines)


def _parse_counts(text: str, what: str, parser: argparse.ArgumentParser) -> tuple[int, ...]:
    try:
        counts = tuple(int(s.replace("_", "")) for s in text.split(","))
    except ValueError:
        parser.error(f"{what}: expected comma-separated whole numbers, got {text!r}")
    if any(c < 1 for c in counts):
        parser.error(f"{what}: every number must be at least 1, got {text!r}")
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated row counts (default 10000,1000000)")
    parser.add_argument("--repeat", default="3",
                        help="repetitions: one number for every size, or one per size "
                        "(e.g. 5,3; default 3)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="OMP_NUM_THREADS=N for every run (default 1; 0 leaves it unset)")
    parser.add_argument("--snapshot", metavar="REV", default="HEAD",
                        help="run a frozen `git archive` of ml_assets at REV (default HEAD)")
    parser.add_argument("--working-tree", action="store_true",
                        help="run the working tree's ml_assets instead of a snapshot")
    parser.add_argument("--out", type=Path, default=RESULTS / "tuning.json", help="JSON output")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where tables and homes go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the homes and their logs")
    parser.add_argument("--split-heap", action="store_true",
                        help="add variant (5): the heap tuning of the command line only "
                        "(imports, exit), none during the run")
    args = parser.parse_args(argv)
    args.sizes = _parse_counts(args.sizes, "--sizes", parser)
    repeats = _parse_counts(args.repeat, "--repeat", parser)
    if len(repeats) not in (1, len(args.sizes)):
        parser.error(f"--repeat: give one number or one per size ({len(args.sizes)}), "
                     f"got {args.repeat!r}")
    args.repeat = dict(zip(args.sizes, repeats * len(args.sizes) if len(repeats) == 1
                           else repeats, strict=True))
    return args


def measure_size(rows: int, repeats: int, work: Path, keep: bool,
                 variants: tuple = VARIANTS) -> dict:
    table = write_table(rows, work / "tables")
    measured: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for rep in range(repeats):
        # Interleaved, and the order turned by one each repetition, so neither a slow moment of
        # the machine nor a position in the sequence (a warm page cache) favours one variant.
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for name, label, flags in order:
            _log(f"{rows:,} rows, repetition {rep + 1}/{repeats}: {label}")
            folder = work / f"{name}_{rows}_{rep}"
            measured[name].append(case_variant(table, folder, flags))
            _log(f"  {measured[name][-1]['wall']:.2f} s wall")
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
    return summarize_size(measured)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ml_assets_tuning_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc.THREADS = args.threads or None
    variants = (*VARIANTS, CLI_ONLY) if args.split_heap else VARIANTS
    results: dict = {"machine": _machine(), "sizes": {}, "options": {
        "sizes": list(args.sizes), "repeat": {str(k): v for k, v in args.repeat.items()},
        "threads": proc.THREADS, "variants": [label for _, label, _ in variants]}}
    results["code"] = _code(None if args.working_tree else args.snapshot, work)
    _log(f"working folder {work}; code {results['code']}")
    try:
        for rows in args.sizes:
            results["sizes"][str(rows)] = measure_size(rows, args.repeat[rows], work, args.keep,
                                                       variants)
    except cases.CaseFailed as exc:
        _log(f"FAILED: {exc}")
        results["error"] = str(exc)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if results["sizes"]:
        table = render(results)
        args.out.with_suffix(".txt").write_text(table + "\n")
        print(table)
    print(f"\n{results['seconds_total']:.0f} s in all; results written to {args.out}")
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
