"""Where ml_assets keeps its state, resolved once from the environment (README: Environment).

Every path is absolute so that step subprocesses, the daemon and the CLI agree no matter
which directory they were started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Loaded when no pipeline is given: a folder of pipelines (a classifier and a regressor).
BUNDLED_PIPELINES = Path(__file__).parent / "demo" / "pipelines"
DEFAULT_SENSOR_INTERVAL = 30
# Where `make dev` starts the MLflow UI (the Dagster UI's port + 1) over a local store.
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:3001"


class EnvironmentError_(ValueError):
    """A bad value in one of the ML_ASSETS_* variables."""


@dataclass(frozen=True)
class Environment:
    home: Path
    landing_dir: Path
    # Where the pipelines come from: one file (ML_ASSETS_CONFIG, ./ml_assets.yaml) or a folder
    # (ML_ASSETS_PIPELINES, ./pipelines/, the bundled demo). A pipeline's own environment
    # (ml_assets.pipelines) has its file here and its landing folder above.
    config_path: Path | None
    tracking_uri: str
    sensor_interval: int
    webhook_url: str | None
    settle_seconds: float = 2.0
    pipelines_dir: Path | None = None
    # The MLflow UI the assets' metadata links to (ML_ASSETS_MLFLOW_UI_URL).
    mlflow_ui_url: str = DEFAULT_MLFLOW_UI_URL

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def contracts_dir(self) -> Path:
        return self.home / "contracts"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def uses_bundled_pipelines(self) -> bool:
        return self.pipelines_dir == BUNDLED_PIPELINES or (
            self.config_path is not None and self.config_path.parent == BUNDLED_PIPELINES
        )


def load_environment(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Environment:
    env = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()

    home = Path(env.get("ML_ASSETS_HOME") or cwd / ".ml_assets").expanduser()
    home = (cwd / home).resolve() if not home.is_absolute() else home
    landing = Path(env.get("ML_ASSETS_LANDING_DIR") or home / "landing").expanduser()
    landing = (cwd / landing).resolve() if not landing.is_absolute() else landing

    config, folder = _pipelines_source(env, cwd)

    tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"

    raw_interval = env.get("ML_ASSETS_SENSOR_INTERVAL") or str(DEFAULT_SENSOR_INTERVAL)
    try:
        interval = int(raw_interval)
        if interval < 1:
            raise ValueError
    except ValueError:
        raise EnvironmentError_(
            f"ML_ASSETS_SENSOR_INTERVAL: expected a whole number of seconds >= 1, "
            f"got {raw_interval!r}"
        ) from None

    raw_settle = env.get("ML_ASSETS_SETTLE_SECONDS") or "2"
    try:
        settle = float(raw_settle)
        if settle < 0:
            raise ValueError
    except ValueError:
        raise EnvironmentError_(
            f"ML_ASSETS_SETTLE_SECONDS: expected seconds >= 0, got {raw_settle!r}"
        ) from None

    return Environment(
        settle_seconds=settle,
        home=home,
        landing_dir=landing,
        config_path=config,
        pipelines_dir=folder,
        tracking_uri=tracking_uri,
        sensor_interval=interval,
        webhook_url=env.get("ML_ASSETS_WEBHOOK_URL") or None,
        mlflow_ui_url=_mlflow_ui_url(env, tracking_uri),
    )


def _mlflow_ui_url(env, tracking_uri: str) -> str:
    """ML_ASSETS_MLFLOW_UI_URL; else a tracking server's own address (it serves the UI);
    else where `make dev` starts the UI beside a local store."""
    value = env.get("ML_ASSETS_MLFLOW_UI_URL")
    if value:
        if not value.startswith(("http://", "https://")):
            raise EnvironmentError_(
                f"ML_ASSETS_MLFLOW_UI_URL: expected an http:// or https:// address of the "
                f"MLflow UI, got {value!r}"
            )
        return value.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_MLFLOW_UI_URL


def _pipelines_source(env, cwd: Path) -> tuple[Path | None, Path | None]:
    """(one pipeline file, or a folder of them), in this order: ML_ASSETS_CONFIG, the folder
    ML_ASSETS_PIPELINES (or ./pipelines/ when it exists), ./ml_assets.yaml, the bundled demo."""
    if env.get("ML_ASSETS_CONFIG"):
        return _absolute(env["ML_ASSETS_CONFIG"], cwd), None
    if env.get("ML_ASSETS_PIPELINES"):
        folder = _absolute(env["ML_ASSETS_PIPELINES"], cwd)
        if not folder.is_dir():
            raise EnvironmentError_(
                f"ML_ASSETS_PIPELINES: {folder} is not a folder (expected a folder of pipeline "
                f"files, one pipeline per *.yaml)"
            )
        return None, folder
    if (cwd / "pipelines").is_dir():
        return None, cwd / "pipelines"
    if (cwd / "ml_assets.yaml").is_file():
        return cwd / "ml_assets.yaml", None
    return None, BUNDLED_PIPELINES


def _absolute(value: str, cwd: Path) -> Path:
    path = Path(value).expanduser()
    return (cwd / path).resolve() if not path.is_absolute() else path
