"""Time spent in Python's garbage collector during one `ml-assets run`, measured in-process
with gc.callbacks, in a home prepared as for case (b).

    .venv/bin/python -m benchmarks.gc_share --rows 10000
    .venv/bin/python -m benchmarks.gc_share --rows 1000000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cases import prepare_home
from benchmarks.data import write_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gc_share", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ml_assets_gc_"))
    home = prepare_home(work / "home", write_table(args.rows, work))
    os.environ.update(home.env)
    os.chdir(home.work)

    totals = {"collections": 0, "seconds": 0.0, "full": 0, "full_seconds": 0.0}
    started = [0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        totals["collections"] += 1
        totals["seconds"] += took
        if info["generation"] == 2:
            totals["full"] += 1
            totals["full_seconds"] += took

    gc.callbacks.append(timer)
    began = time.perf_counter()
    from ml_assets.cli import main as cli

    try:
        cli(["run"])
    except SystemExit:
        pass
    wall = time.perf_counter() - began
    print(f"{args.rows:,} rows: ml-assets run {wall:.2f} s in this process; garbage collector "
          f"{totals['seconds']:.2f} s in {totals['collections']} collections, of which "
          f"{totals['full']} full ones {totals['full_seconds']:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
