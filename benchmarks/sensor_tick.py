"""new_data_sensor's tick time with many registered versions and unchanged landing files.

    python benchmarks/sensor_tick.py <work dir> <files> <ticks>   (<work dir>/ml_assets.yaml given)

Builds the state fast (tiny distinct CSV files, registered once with scan_landing, their
dynamic partitions added to a sqlite instance under <work dir>), then evaluates the sensor
`ticks` times the way the tests do (build_sensor_context + evaluate_tick) and prints one JSON
line starting with SENSOR_RESULT. Nothing is new at any timed tick: it measures the steady
state a daemon sees every ML_ASSETS_SENSOR_INTERVAL seconds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main(work: Path, files: int, ticks: int) -> dict:
    home, dagster_home = work / "ml_assets_home", work / "dagster_home"
    landing = home / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(dagster_home)

    for i in range(files):
        (landing / f"part_{i:05d}.csv").write_text(
            f"customer_id,tenure_months,churn\n{i},{i % 72},yes\n{i + 1},{(i * 7) % 72},no\n"
        )

    import dagster as dg

    from ml_assets.definitions import build_definitions
    from ml_assets.environment import load_environment
    from ml_assets.pipelines import load_catalog
    from ml_assets.storage import VersionedStore

    env = load_environment({"ML_ASSETS_HOME": str(home)}, cwd=work)
    catalog = load_catalog(env)
    (pipeline,) = catalog.pipelines
    settings, names = pipeline.settings, pipeline.names
    started = time.perf_counter()
    scan = VersionedStore(env.store_root, settings.name).scan_landing(
        env.landing_dir, settings.landing_glob
    )
    register_seconds = time.perf_counter() - started
    keys = [r.key for r in scan.new]
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(names.partitions, keys)

    defs = build_definitions(env, catalog)
    sensor = defs.get_sensor_def(names.new_data_sensor)
    times, with_context = [], []
    outcome = None
    for _ in range(ticks):
        t0 = time.perf_counter()
        context = dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs
        )
        t1 = time.perf_counter()
        result = sensor.evaluate_tick(context)
        t2 = time.perf_counter()
        times.append(t2 - t1)
        with_context.append(t2 - t0)
        outcome = result
    return {
        "files": files,
        "registered": len(keys),
        "partitions": len(instance.get_dynamic_partitions(names.partitions)),
        "register_seconds": round(register_seconds, 3),
        "ticks": ticks,
        "first_tick": round(times[0], 4),
        "median": round(statistics.median(times), 4),
        "median_after_first": round(statistics.median(times[1:] or times), 4),
        "min": round(min(times), 4),
        "max": round(max(times), 4),
        "median_with_context": round(statistics.median(with_context), 4),
        "run_requests_last_tick": len(outcome.run_requests or []),
        "skip_message": outcome.skip_message,
    }


if __name__ == "__main__":
    out = main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print("SENSOR_RESULT " + json.dumps(out))
