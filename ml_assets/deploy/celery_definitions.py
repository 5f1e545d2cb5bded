"""The same code location with every step run on Celery workers (dagster-celery, Redis broker).

Load this module instead of `ml_assets.definitions` to spread steps over worker hosts:
`dagster-webserver -m ml_assets.deploy.celery_definitions`, with workers started by
`dagster-celery worker start -A dagster_celery.app -y deploy/celery/worker.yaml`
(deploy/README.md). `ML_ASSETS_CELERY_BROKER` (e.g. `redis://127.0.0.1:6379/0`) is both the
broker and the result backend, here and in the workers' file, so the two cannot disagree.
The default code location stays in-process: for one data version, the steps are a chain and
Celery only pays off when many versions or pipelines train at once.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_celery import celery_executor

import ml_assets.definitions as in_process  # a module, not its `defs`: one Definitions per module
from ml_assets.deploy import with_executor

__all__ = ["defs"]


def celery_steps_executor() -> dg.ExecutorDefinition:
    broker = os.environ.get("ML_ASSETS_CELERY_BROKER")
    if not broker:
        raise RuntimeError(
            "ML_ASSETS_CELERY_BROKER is not set: the Celery code location needs the broker URL "
            "its workers listen on, e.g. redis://127.0.0.1:6379/0 (deploy/README.md)"
        )
    return celery_executor.configured(
        {
            # Read from the environment at launch: the URL (it may hold a password) is not
            # written into the run config the UI shows.
            "broker": {"env": "ML_ASSETS_CELERY_BROKER"},
            "backend": {"env": "ML_ASSETS_CELERY_BROKER"},
        },
        name="celery",
    )


defs = with_executor(in_process.defs, celery_steps_executor())
