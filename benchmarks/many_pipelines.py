"""A code location of many pipelines: what loading it and its sensors' ticks cost.

    .venv/bin/python -m benchmarks.many_pipelines                 # 100 pipelines x 100 versions
    .venv/bin/python -m benchmarks.many_pipelines --pipelines 20 --versions 20 --repeat 3

Generates N pipeline files (classification and regression alternately) into a pipelines
folder, then measures, in fresh processes side by side (median of --repeat):

- `import dagster`; `import ml_assets.definitions` with one pipeline and with N; the same
  plus resolving every job and the asset graph (`defs.get_repository_def()`, what
  `dagster dev` and the daemon's code server do when they load the code location); and
  `dg list defs` when the `dg` command is installed.
- every sensor's tick with N pipelines x V registered versions and nothing new: each
  pipeline's new_data_sensor, drift_sensor and run-failure sensor, evaluated as the tests do
  (build_sensor_context + evaluate_tick), median and worst over all pipelines.

Targets (printed, not asserted): loading N pipelines within 2 s of `import dagster` plus
one pipeline, i.e. t(N) - t(1) <= 2 s; every sensor tick <= 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
DG = Path(PYTHON).parent / "dg"
LOAD_TARGET_SECONDS = 2.0
TICK_TARGET_SECONDS = 0.2

IMPORT = ("import time, warnings; warnings.filterwarnings('ignore'); t = time.perf_counter(); "
          "import {module}; {then}print('SECONDS', time.perf_counter() - t)")
RESOLVE = "{module}.defs.get_repository_def(); "


def write_pipelines(folder: Path, count: int) -> None:
    """N pipeline files of distinct names, half classifiers and half regressors."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        task, target = (("classification", "churned") if i % 2 == 0 else ("regression", "spend"))
        (folder / f"model_{i:03d}.yaml").write_text(
            f"name: model_{i:03d}\ntarget: {target}\ntask: {task}\nid_columns: [customer_id]\n"
        )


def _environ(work: Path, pipelines: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "DAGSTER_"))}
    env.update({"ML_ASSETS_HOME": str(work / "home"), "ML_ASSETS_PIPELINES": str(pipelines),
                "DAGSTER_HOME": str(work / "dagster_home"), "DAGSTER_DISABLE_TELEMETRY": "1"})
    return env


def _seconds(command: list[str], env: dict, cwd: Path) -> float:
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return float(out.stdout.split("SECONDS")[1].split()[0])


def _wall(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started


def measure_loading(work: Path, count: int, repeat: int) -> dict:
    one, many = work / "one", work / "many"
    write_pipelines(one, 1)
    write_pipelines(many, count)
    (work / "dagster_home").mkdir(exist_ok=True)
    (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cases = {
        "import dagster": ([PYTHON, "-c", IMPORT.format(module="dagster", then="")], one),
        "import ml_assets.definitions, 1 pipeline":
            ([PYTHON, "-c", IMPORT.format(module="ml_assets.definitions", then="")], one),
        f"import ml_assets.definitions, {count} pipelines":
            ([PYTHON, "-c", IMPORT.format(module="ml_assets.definitions", then="")], many),
        "... + resolve jobs and graph, 1 pipeline":
            ([PYTHON, "-c", IMPORT.format(module="ml_assets.definitions",
                                          then=RESOLVE.format(module="ml_assets.definitions"))], one),
        f"... + resolve jobs and graph, {count} pipelines":
            ([PYTHON, "-c", IMPORT.format(module="ml_assets.definitions",
                                          then=RESOLVE.format(module="ml_assets.definitions"))], many),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):  # interleaved, so a slow moment of the machine hits every case
        for name, (command, folder) in cases.items():
            samples[name].append(_seconds(command, _environ(work, folder), work))
    if DG.exists():
        for folder, label in ((one, "1 pipeline"), (many, f"{count} pipelines")):
            name = f"dg list defs (process wall), {label}"
            samples[name] = [_wall([str(DG), "list", "defs", "--json"], _environ(work, folder),
                                   Path(__file__).resolve().parents[1]) for _ in range(repeat)]
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


def measure_ticks(work: Path, count: int, versions: int, ticks: int) -> dict:
    """In this process: N pipelines x V versions registered, nothing new; every sensor ticked."""
    folder = work / "many"
    environ = _environ(work, folder)
    os.environ.update(environ)
    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    from ml_assets.definitions import build_definitions
    from ml_assets.environment import load_environment
    from ml_assets.monitoring.notifications import Notifier
    from ml_assets.pipelines import load_catalog
    from ml_assets.storage import VersionedStore

    env = load_environment()
    catalog = load_catalog(env)
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    for p in catalog.pipelines:
        p.env.landing_dir.mkdir(parents=True, exist_ok=True)
        settled = time.time() - 3600  # files written an hour ago: nothing is still landing
        for v in range(versions):
            path = p.env.landing_dir / f"part_{v:04d}.csv"
            path.write_text(
                f"customer_id,tenure,{p.settings.target}\n{v},{v % 72},1\n{v + 1},{v % 13},0\n")
            os.utime(path, (settled, settled))
        store = VersionedStore(env.store_root, p.name)
        keys = [r.key for r in store.scan_landing(p.env.landing_dir, p.settings.landing_glob).new]
        store.mark_claimed(keys)
        instance.add_dynamic_partitions(p.names.partitions, keys)
    setup_seconds = time.perf_counter() - started
    defs = build_definitions(env, catalog)

    def tick(name: str) -> float:
        sensor = defs.get_sensor_def(name)
        context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                          definitions=defs, resources={"notifier": Notifier()})
        t0 = time.perf_counter()
        result = sensor.evaluate_tick(context)
        elapsed = time.perf_counter() - t0
        if result.run_requests:
            raise RuntimeError(f"{name} asked for runs in a steady state: {result.run_requests}")
        return elapsed

    kinds = {"new_data_sensor": "new_data_sensor", "drift_sensor": "drift_sensor",
             "run_failure_notifier": "run_failure_notifier"}
    out: dict = {"setup_seconds": round(setup_seconds, 1)}
    for label, attribute in kinds.items():
        per_pipeline = []
        for p in catalog.pipelines:
            name = getattr(p.names, attribute)
            samples = [tick(name) for _ in range(ticks)]
            per_pipeline.append(statistics.median(samples))
        out[label] = {"median": round(statistics.median(per_pipeline), 4),
                      "worst": round(max(per_pipeline), 4),
                      "all pipelines, one tick each": round(sum(per_pipeline), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many_pipelines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="processes per load case")
    parser.add_argument("--ticks", type=int, default=3, help="ticks per sensor")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ml_assets_many_"))
    try:
        loading = measure_loading(work, args.pipelines, args.repeat)
        ticks = measure_ticks(work, args.pipelines, args.versions, args.ticks)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    n = args.pipelines
    print(f"loading the code location (median of {args.repeat} fresh processes, seconds)")
    for name, seconds in loading.items():
        print(f"  {name:<58} {seconds:7.3f}")
    extra = loading[f"import ml_assets.definitions, {n} pipelines"] - loading["import ml_assets.definitions, 1 pipeline"]
    extra_resolved = (loading[f"... + resolve jobs and graph, {n} pipelines"]
                      - loading["... + resolve jobs and graph, 1 pipeline"])
    print(f"\nsensor ticks, {n} pipelines x {args.versions} versions, nothing new "
          f"(seconds; median of {args.ticks} ticks per sensor)")
    for label, figures in ticks.items():
        if isinstance(figures, dict):
            print(f"  {label:<24} median {figures['median']:.4f}  worst {figures['worst']:.4f}  "
                  f"all {n} pipelines {figures['all pipelines, one tick each']:.3f}")
    worst_tick = max(f["worst"] for f in ticks.values() if isinstance(f, dict))
    print("\ntargets (shown, not asserted)")
    rows = [
        (f"import, {n} pipelines - 1 pipeline", extra, LOAD_TARGET_SECONDS),
        (f"import + resolve, {n} pipelines - 1 pipeline", extra_resolved, LOAD_TARGET_SECONDS),
        ("worst sensor tick", worst_tick, TICK_TARGET_SECONDS),
    ]
    if f"dg list defs (process wall), {n} pipelines" in loading:
        rows.append((f"dg list defs, {n} pipelines - 1 pipeline",
                     loading[f"dg list defs (process wall), {n} pipelines"]
                     - loading["dg list defs (process wall), 1 pipeline"], LOAD_TARGET_SECONDS))
    for name, value, target in rows:
        print(f"  {name:<48} {value:7.3f}  <= {target:.1f}  {'yes' if value <= target else 'NO'}")
    print("\nJSON " + json.dumps({"loading": loading, "ticks": ticks, "pipelines": n,
                                   "versions": args.versions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
