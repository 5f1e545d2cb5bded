"""The code location: a graph per pipeline (the pipeline files of `ml_assets.pipelines`, and
the `defs.yaml` components of `ml_assets/defs/`), the files that could not be loaded, shown
but never run, and one set of resources shared by all."""

from __future__ import annotations

import dagster as dg

from ml_assets.component import DEFS_MODULE, defs_folder_pipelines, without_declared
from ml_assets.environment import Environment, load_environment
from ml_assets.invalid_pipelines import invalid_pipeline_definitions
from ml_assets.pipeline_graph import pipeline_definitions
from ml_assets.pipelines import Catalog, load_catalog
from ml_assets.shared_resources import shared_definitions


def build_definitions(env: Environment, catalog: Catalog | None = None,
                      defs_module: str = DEFS_MODULE) -> dg.Definitions:
    components, broken = defs_folder_pipelines(defs_module)
    catalog = without_declared(catalog or load_catalog(env), components is not None, defs_module)
    return dg.Definitions.merge(
        *(pipeline_definitions(p) for p in catalog.pipelines),
        *([components] if components is not None else []),
        invalid_pipeline_definitions(catalog.invalid + broken),
        shared_definitions(env),
    )


defs = build_definitions(load_environment())


def job(name: str) -> dg.JobDefinition:
    """A job of this code location, as `dg.build_reconstructable_job` rebuilds it in another
    process (re-execution, `ml-assets run`)."""
    return defs.resolve_job_def(name)
