"""Pipeline files that could not be loaded, as a Dagster user sees them first: an asset in the
group `invalid_pipeline_files` whose description is the error (file, key, reason), and a
running sensor that skips with the same reason on every tick. Nothing of them runs."""

from __future__ import annotations

import dagster as dg

from ml_assets.pipelines import InvalidPipeline

GROUP = "invalid_pipeline_files"


def invalid_pipeline_definitions(invalid: tuple[InvalidPipeline, ...]) -> dg.Definitions:
    specs, sensors = [], []
    for index, problem in enumerate(invalid):
        # Two problems of one file stem (a.yaml in two folders cannot happen; an empty folder
        # has no stem clash either) still get names of their own.
        slug = problem.slug if index == _first_index(invalid, problem.slug) else f"{problem.slug}_{index}"
        specs.append(
            dg.AssetSpec(
                key=dg.AssetKey([GROUP, slug]),
                group_name=GROUP,
                description=f"NOT LOADED: {problem.error}",
                metadata={"file": dg.MetadataValue.path(str(problem.path)), "error": problem.error},
                kinds={"yaml"},
            )
        )
        sensors.append(_reporting_sensor(f"{slug}__invalid_pipeline_file", problem))
    return dg.Definitions(assets=specs, sensors=sensors)


def _first_index(invalid, slug: str) -> int:
    return next(i for i, p in enumerate(invalid) if p.slug == slug)


def _reporting_sensor(name: str, problem: InvalidPipeline) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=3600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Pipeline file not loaded: {problem.error}",
    )
    def report(context: dg.SensorEvaluationContext):
        return dg.SkipReason(f"not loaded: {problem.error}")

    return report
