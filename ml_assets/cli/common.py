"""What every `ml-assets` command shares: the exit codes, the errors `main` turns into them,
loading the pipeline file and opening the Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A usage or pipeline-file error (exit 2); str() names what and where."""


class Refused(Exception):
    """A command that refuses what it was asked (exit 1); str() names what and why."""


def load_pipeline():
    """The environment and the pipeline file's settings; an error in either is a UsageError."""
    from ml_assets.config import PipelineFileError, load_settings
    from ml_assets.environment import EnvironmentError_, load_environment

    try:
        env = load_environment()
        settings = load_settings(env.config_path)
    except (PipelineFileError, EnvironmentError_) as exc:
        raise UsageError(str(exc)) from None
    return env, settings


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
