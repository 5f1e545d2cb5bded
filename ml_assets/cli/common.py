"""What every `ml-assets` command shares: the exit codes, the errors `main` turns into them,
finding the pipelines (`--pipeline NAME` picks among several) and opening the Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A usage or pipeline-file error (exit 2); str() names what and where."""


class Refused(Exception):
    """A command that refuses what it was asked (exit 1); str() names what and why."""


def load_catalog():
    """The environment and every pipeline file of it (ml_assets.pipelines.Catalog)."""
    from ml_assets.environment import EnvironmentError_, load_environment
    from ml_assets.pipelines import load_catalog as find_pipelines

    try:
        env = load_environment()
    except EnvironmentError_ as exc:
        raise UsageError(str(exc)) from None
    return env, find_pipelines(env)


def load_pipelines(names: list[str] | None):
    """(catalog, the pipelines named, or all valid ones when none are). A name that is not a
    valid pipeline is a UsageError; with no name and no valid pipeline at all, too."""
    from ml_assets.config import PipelineFileError

    _, catalog = load_catalog()
    try:
        selected = catalog.select(names)
    except PipelineFileError as exc:
        raise UsageError(str(exc)) from None
    if not selected:
        raise UsageError("\n".join(problem.error for problem in catalog.invalid)
                         or f"no pipeline in {catalog.source}")
    return catalog, selected


def load_pipeline(names: list[str] | None = None):
    """(environment, settings) of the one pipeline a command works on: the one named with
    `--pipeline`, or the only one there is."""
    catalog, selected = load_pipelines(names)
    if len(selected) > 1:
        raise UsageError(
            f"{len(selected)} pipelines in {catalog.source} ({', '.join(catalog.names)}): "
            "name one with --pipeline NAME"
        )
    if not names and catalog.invalid:
        # The one valid pipeline is not "the only one" when a file beside it is broken: the
        # user may have meant that one.
        broken = ", ".join(str(problem.path) for problem in catalog.invalid)
        raise UsageError(f"{broken} could not be loaded (see `ml-assets pipelines`); name "
                         f"the pipeline with --pipeline {selected[0].name}")
    return selected[0].env, selected[0].settings


def report_invalid(catalog) -> None:
    """Every pipeline file that could not be loaded, on stderr (file, key, reason)."""
    import sys

    for problem in catalog.invalid:
        print(f"error: pipeline file not loaded: {problem.error}", file=sys.stderr)


def open_instance():
    """The Dagster instance of DAGSTER_HOME, created (telemetry off) when it does not exist."""
    from dagster import DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        # Same default as `make dev`, so the UI started there shows these runs.
        home = str(Path.cwd() / ".dagster_home")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.get()
