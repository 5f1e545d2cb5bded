"""The libraries ml_assets loads send nothing off the machine: a process that loads the code
location the way a run worker or `dagster dev` does gets MLflow without its telemetry client
and Great Expectations without analytics, unless the user said otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ml_assets.library_settings import LIBRARY_DEFAULTS, apply_library_defaults

# Loads the code location as Dagster does, then MLflow, and reports what MLflow decided.
PROBE = """
import json, os
import ml_assets.definitions  # what `dagster dev`, a run worker or a step process imports
import mlflow
from ml_assets.private_apis import get_telemetry_client
print(json.dumps({
    "telemetry_client": get_telemetry_client() is not None,
    "gx_analytics": os.environ.get("GX_ANALYTICS_ENABLED"),
    "http_retries": os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES"),
}))
"""


def _probe(tmp_path, **extra: str) -> dict:
    # A user's plain environment: none of the variables a test session or CI might have set.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_", "GX_")) and k != "DO_NOT_TRACK"}
    env.update(ML_ASSETS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dh"), **extra)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_the_code_location_turns_library_telemetry_off(tmp_path):
    seen = _probe(tmp_path)
    assert seen["telemetry_client"] is False
    assert seen["gx_analytics"] == "False"
    assert seen["http_retries"] == "2"


def test_a_users_own_setting_wins(tmp_path):
    seen = _probe(tmp_path, MLFLOW_DISABLE_TELEMETRY="false", MLFLOW_HTTP_REQUEST_MAX_RETRIES="5")
    # MLflow itself may still decide against telemetry (it does in CI); ours is not forced.
    assert seen["http_retries"] == "5"
    environ = {"MLFLOW_DISABLE_TELEMETRY": "false"}
    apply_library_defaults(environ)
    assert environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert {k: v for k, v in environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"} == {
        k: v for k, v in LIBRARY_DEFAULTS.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
