"""Where the time of one run goes: a case under pyinstrument, attributed to a few costs.

    .venv/bin/pip install pyinstrument          # not a project dependency
    .venv/bin/python -m benchmarks.profile                  # (b) ml-assets run, 100k rows
    .venv/bin/python -m benchmarks.profile --case c --rows 10000
    .venv/bin/python -m benchmarks.profile --case noop --rows 10000

Prints the cost categories (each the sum of the outermost matching frames, so a category never
counts a frame twice; categories overlap each other: imports of GX are under both "imports"
and "great_expectations") and the call tree pruned to frames of at least --min seconds.
The sampling profiler slows the profiled process a little; compare categories, not totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks import cases, proc
from benchmarks.data import write_table

# name -> predicate over (function, file path); outermost matching frame counted once.
CATEGORIES = {
    "imports (all modules)": lambda f, p: f == "_find_and_load",
    "great_expectations (import + suite + validation)": lambda f, p: "great_expectations/" in p,
    "mlflow (import + store + logging)": lambda f, p: "/mlflow/" in p,
    "  mlflow resource set-up (dagster-mlflow)": lambda f, p: f == "mlflow_run",
    "  registration: register()": lambda f, p: f == "register" and "registration.py" in p,
    "  mlflow.sklearn.log_model": lambda f, p: f == "log_model" and "/mlflow/" in p,
    "skops (import, dumps, loads)": lambda f, p: "/skops/" in p,
    "scikit-learn fit": lambda f, p: f == "fit" and p.endswith("sklearn/pipeline.py"),
    "scikit-learn predict / predict_proba": lambda f, p: (
        f in ("predict", "predict_proba") and p.endswith("sklearn/pipeline.py")),
    "evaluation: plot_predictions()": lambda f, p: (
        f == "plot_predictions" and "evaluation/plotting.py" in p),
    "matplotlib": lambda f, p: "/matplotlib/" in p,
    "parquet write / read": lambda f, p: f in ("to_parquet", "read_parquet") and "pandas" in p,
    "read_table (CSV)": lambda f, p: f == "read_table",
    "dagster storage (sqlite event log / runs)": lambda f, p: "dagster/_core/storage/" in p,
    "  of which store_event": lambda f, p: f.endswith("store_event"),
    "IO manager handle_output": lambda f, p: f.endswith("handle_output") and "ml_assets" in p,
    "IO manager load_input": lambda f, p: f.endswith("load_input") and "ml_assets" in p,
}


def _attribute(root) -> dict[str, float]:
    totals = {}
    for name, match in CATEGORIES.items():
        total, stack = 0.0, [root]
        while stack:
            frame = stack.pop()
            if match(frame.function or "", frame.file_path or ""):
                total += frame.time
            else:
                stack.extend(frame.children)
        totals[name] = total
    return totals


def _tree(frame, min_seconds: float, depth: int = 0, out: list | None = None) -> list[str]:
    """The call tree, chains of single dominant library frames folded into one line."""
    out = [] if out is None else out
    first = frame
    kids = [c for c in frame.children if c.time >= min_seconds]
    while (len(kids) == 1 and kids[0].time >= 0.9 * frame.time
           and "ml_assets" not in (kids[0].file_path or "")):
        frame = kids[0]
        kids = [c for c in frame.children if c.time >= min_seconds]
    via = "" if frame is first else f"  (via {first.function})"
    out.append(f"{'  ' * depth}{frame.time:7.2f}  {frame.function}{via}  {frame.file_path_short}")
    for child in kids:
        _tree(child, min_seconds, depth + 1, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("b", "c", "noop"), default="b")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--min", type=float, default=0.5, help="prune frames below (seconds)")
    parser.add_argument("--interval", type=float, default=0.002, help="sampling interval (s)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        import pyinstrument
        from pyinstrument.session import Session
    except ImportError:
        print("pyinstrument is needed: .venv/bin/pip install pyinstrument", file=sys.stderr)
        return 2

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ml_assets_profile_"))
    table = write_table(args.rows, work / "tables")
    home = cases.prepare_home(work / f"{args.case}_{args.rows}", table)
    if args.case == "noop":  # everything has run once: the profiled run finds nothing new
        first = proc.run_measured([str(cases.BIN / "ml-assets"), "run"], env=home.env,
                                  cwd=home.work, log_dir=home.logs, name="first_run")
        if not first.ok:
            print(first.tail(), file=sys.stderr)
            return 1
    session_file = work / f"{args.case}_{args.rows}.pyisession"
    profiler = [sys.executable, "-m", "pyinstrument", "-i", str(args.interval), "-r", "session",
                "-o", str(session_file)]
    if args.case == "c":
        key = home.helper("register")["keys"][0]
        target = [str(cases.BIN / "dagster"), *cases.MATERIALIZE, "--partition", key]
    else:
        target = ["-m", "ml_assets.cli", "run"]
    env = home.env
    # The profiled process must import pyinstrument from wherever it is installed.
    where = str(Path(pyinstrument.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (proc.CODE_PATH, where) if p)
    m = proc.run_measured([*profiler, *target], env=env, cwd=home.work, log_dir=home.logs,
                          name="profile")
    if not m.ok:
        print(m.tail(), file=sys.stderr)
        return 1
    root = Session.load(str(session_file)).root_frame()
    print(f"{args.case} at {args.rows:,} rows: {m.wall:.1f} s wall, {m.cpu:.1f} s cpu "
          f"(profiled); session saved to {session_file}\n")
    for name, seconds in _attribute(root).items():
        print(f"  {name:<52} {seconds:7.2f} s")
    print()
    print("\n".join(_tree(root, args.min)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
