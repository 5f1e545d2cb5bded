"""What ml_assets asks of the libraries it loads, as environment defaults: nothing leaves the
machine, nothing fills the run logs, a failing tracking server is given up on in seconds.

Set once, when the package is first imported (`ml_assets/__init__.py`), so every process
that runs our code gets them: the CLI, `dagster dev`'s code server and daemon, a run worker,
a step subprocess, a Celery or Kubernetes step. Defaults only: a variable the user set wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

LIBRARY_DEFAULTS: dict[str, str] = {
    # Great Expectations posts usage analytics unless told not to.
    "GX_ANALYTICS_ENABLED": "False",
    # MLflow 3 starts a telemetry client when it is imported (a config fetch and event posts
    # from a background thread). Read at import time, so it must be set before mlflow loads.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Progress bars of artifact downloads would fill run logs and the CLI's output.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # MLflow's HTTP client retries each request up to 7 times with exponential backoff
    # (minutes in all) before a step even sees the failure. The steps retry with their own
    # policy (registry/mlflow_wiring.py MLFLOW_RETRY), so each request gives up sooner.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def apply_library_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    target = os.environ if environ is None else environ
    for name, value in LIBRARY_DEFAULTS.items():
        target.setdefault(name, value)
