"""Variants of the code location for production deployments (deploy/README.md): the same
definitions as `ml_assets.definitions`, with another executor for the steps."""

from __future__ import annotations

import dagster as dg


def with_executor(defs: dg.Definitions, executor: dg.ExecutorDefinition) -> dg.Definitions:
    """The same assets, checks, jobs, sensors, schedules and resources; another executor."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources=defs.resources,
        loggers=defs.loggers,
        executor=executor,
    )
