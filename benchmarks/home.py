"""Untimed helpers that run inside a case's home (as their own process, with its environment).

    python benchmarks/home.py init       create the Dagster instance and the MLflow store
    python benchmarks/home.py register   register the landing files as data versions and add
                                         their dynamic partitions (what new_data_sensor does)
    python benchmarks/home.py stats      the newest run's timings from the Dagster instance

Each prints one JSON line starting with HOME_RESULT.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def _setup():
    """The home's one pipeline (the cases give it one pipeline file): its environment, its
    settings and its Dagster names."""
    from ml_assets.environment import load_environment
    from ml_assets.pipelines import load_catalog

    (pipeline,) = load_catalog(load_environment()).pipelines
    return pipeline.env, pipeline.settings, pipeline.names


def init() -> dict:
    """Create the instance's sqlite storage and MLflow's (its migrations take seconds), as a
    home that has run before would have them; the timed cases then measure a steady state."""
    started = time.perf_counter()
    from dagster import DagsterInstance
    from mlflow.tracking import MlflowClient

    env, _, names = _setup()
    instance = DagsterInstance.get()
    instance.get_runs(limit=1)
    instance.get_dynamic_partitions(names.partitions)
    MlflowClient(tracking_uri=env.tracking_uri).search_experiments()
    return {"seconds": round(time.perf_counter() - started, 3)}


def register() -> dict:
    from dagster import DagsterInstance

    from ml_assets.storage import VersionedStore

    env, settings, names = _setup()
    store = VersionedStore(env.store_root, settings.name)
    scan = store.scan_landing(env.landing_dir, settings.landing_glob)
    keys = [record.key for record in scan.new]
    DagsterInstance.get().add_dynamic_partitions(names.partitions, keys)
    return {"keys": keys}


def stats() -> dict:
    """Run and step start/end times as the instance recorded them."""
    from dagster import DagsterInstance

    from ml_assets.cli.run_summary import asset_of_step

    instance = DagsterInstance.get()
    runs = instance.get_run_records(limit=1)
    if not runs:
        return {"run": None}
    record = runs[0]
    run = record.dagster_run
    stats = instance.get_run_stats(run.run_id)
    steps = [
        {
            "step": asset_of_step(s.step_key),
            "status": str(s.status.value) if s.status else None,
            "seconds": round(s.end_time - s.start_time, 3) if s.start_time and s.end_time else None,
            "start": s.start_time,
            "end": s.end_time,
        }
        for s in instance.get_run_step_stats(run.run_id)
    ]
    steps.sort(key=lambda s: s["start"] or 0)
    events = len(instance.all_logs(run.run_id))
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "run_start": stats.start_time,
        "run_end": stats.end_time,
        "run_seconds": round(stats.end_time - stats.start_time, 3)
        if stats.start_time and stats.end_time else None,
        "steps": steps,
        "events": events,
    }


if __name__ == "__main__":
    command = sys.argv[1]
    result = {"init": init, "register": register, "stats": stats}[command]()
    print("HOME_RESULT " + json.dumps(result))
