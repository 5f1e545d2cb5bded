"""What choosing the model costs `ml-assets run`, side by side in one run.

    python -m benchmarks.search_cost                        # 10k rows, 3 repetitions
    python -m benchmarks.search_cost --sizes 10000,1000000 --snapshot HEAD   # 1M once

For each table size, alternately in fresh homes:
- fixed:  `model: {estimator: hist_gradient_boosting}`, one model and no search (what every
  version trained before the search existed);
- search: the default candidates and budget;
- tight:  (largest size only) the default candidates with `model.search.budget_seconds` set to
  TIGHT_BUDGET and max_rows to every training row, so the budget, not the sample, ends the search.

Printed: the wall time of `ml-assets run`, the model step's search seconds (from the version's
model_search.json) against its budget, and the ratios the targets are read from:
search / fixed at the smallest size (target <= 2), search / (budget + fixed) at the largest
(target <= 1.1), and each search's seconds / its budget (target <= 1.1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import cases, proc
from benchmarks.data import PIPELINE_YAML, write_table
from benchmarks.run import _code

TIGHT_BUDGET = 20
VARIANTS = {
    "fixed": "model: {estimator: hist_gradient_boosting}\n",
    "search": "",
    "tight": f"model: {{search: {{budget_seconds: {TIGHT_BUDGET}, max_rows: 10000000}}}}\n",
}


def run_variant(table: Path, work: Path, variant: str) -> dict:
    home = cases.prepare_home(work, table)
    (home.work / "ml_assets.yaml").write_text(PIPELINE_YAML + VARIANTS[variant])
    m = proc.run_measured([str(cases.BIN / "ml-assets"), "run"], env=home.env, cwd=home.work,
                          log_dir=home.logs, name=f"run_{variant}")
    if not m.ok or "=> registered" not in m.stdout:
        raise SystemExit(f"ml-assets run ({variant}) failed:\n{m.tail(30)}")
    [search_file] = home.ml_home.glob("store/*/versions/*/model_search.json")
    searched = json.loads(search_file.read_text())
    return {"wall": m.wall, "search_seconds": searched["seconds"],
            "budget": searched["budget_seconds"] if searched["searched"] else None,
            "stopped_by_budget": searched["stopped_by_budget"],
            "chosen": searched["chosen"]["candidate"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--snapshot", metavar="REV", default=None,
                        help="run a frozen copy of ml_assets at git revision REV")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="search_cost_"))
    code = _code(args.snapshot, work)
    print(f"code: {code.get('snapshot_commit') or code['commit']}", file=sys.stderr)
    results: dict[int, dict[str, list[dict]]] = {}
    for size in sizes:
        table = write_table(size, work / "tables")
        variants = ["fixed", "search"] + (["tight"] if size == max(sizes) else [])
        results[size] = {v: [] for v in variants}
        # The largest size of several runs once: minutes a run, and the budget ratios need one.
        repeats = 1 if size == max(sizes) and len(sizes) > 1 else args.repeat
        for i in range(repeats):
            for variant in variants:
                print(f"{size} rows, {variant}, {i + 1}/{repeats}", file=sys.stderr, flush=True)
                results[size][variant].append(run_variant(table, work / f"{variant}_{size}_{i}", variant))
    print(f"{'rows':>9} {'variant':<7} {'ml-assets run s':>16} {'search s':>9} {'budget s':>9} "
          f"{'search/budget':>14}  chosen")
    for size, by_variant in results.items():
        for variant, runs in by_variant.items():
            wall = statistics.median(r["wall"] for r in runs)
            search_s = statistics.median(r["search_seconds"] for r in runs)
            budget = runs[0]["budget"]
            ratio = f"{search_s / budget:.2f}" if budget else "-"
            print(f"{size:>9} {variant:<7} {wall:>16.2f} {search_s:>9.2f} {budget or 0:>9.0f} "
                  f"{ratio:>14}  {', '.join(sorted({r['chosen'] for r in runs}))}")
    small, large = min(results), max(results)
    fixed = statistics.median(r["wall"] for r in results[small]["fixed"])
    searched = statistics.median(r["wall"] for r in results[small]["search"])
    print(f"\n{small} rows: ml-assets run with the search / without: {searched / fixed:.2f} (target <= 2)")
    fixed = statistics.median(r["wall"] for r in results[large]["fixed"])
    for variant in ("search", "tight"):
        if variant in results[large]:
            runs = results[large][variant]
            wall = statistics.median(r["wall"] for r in runs)
            budget = runs[0]["budget"]
            print(f"{large} rows, {variant}: run / (budget + run without search) = "
                  f"{wall / (budget + fixed):.2f} (target <= 1.1); search / budget = "
                  f"{max(r['search_seconds'] for r in runs) / budget:.2f} (target <= 1.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
