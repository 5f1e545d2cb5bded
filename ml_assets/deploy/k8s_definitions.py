"""The same code location with every step in its own Kubernetes Job (dagster-k8s's
`k8s_job_executor`): the module the Helm chart's user-code deployment serves
(deploy/kubernetes/values.yaml). Requests and limits are per step: training gets the most.
"""

from __future__ import annotations

from dagster_k8s import k8s_job_executor

import ml_assets.definitions as in_process  # a module, not its `defs`: one Definitions per module
from ml_assets.deploy import with_executor
from ml_assets.graph import MODEL, RAW_DATA

__all__ = ["EXECUTOR_CONFIG", "defs"]


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict:
    return {"container_config": {"resources": {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }}}


EXECUTOR_CONFIG = {
    # steps of one run at a time; the run queue limits runs per pipeline to one
    "max_concurrent": 4,
    # every step: reading, validating and scoring a table of up to ~1M rows
    "step_k8s_config": _resources("500m", "1Gi", "2", "4Gi"),
    # by step key, `<slug>__<asset>`: the same for every pipeline of the code location
    "per_step_k8s_config": {
        step: config
        # every pipeline's job, from pipeline files or the defs folder: `<slug>__train_version`
        for slug in (job.name.removesuffix("__train_version") for job in in_process.defs.jobs
                     if job.name.endswith("__train_version"))
        for step, config in {
            # fitting the model holds the training table and the trees; it uses both cores
            f"{slug}__{MODEL}": _resources("2", "4Gi", "4", "8Gi"),
            f"{slug}__{RAW_DATA}": _resources("250m", "512Mi", "1", "2Gi"),
        }.items()
    },
    # step Jobs are garbage-collected with their run's pod
    "enable_owner_references": True,
}

defs = with_executor(in_process.defs, k8s_job_executor.configured(EXECUTOR_CONFIG, name="k8s"))
