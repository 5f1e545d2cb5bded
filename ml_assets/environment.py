"""Where ml_assets keeps its state, resolved once from the environment (README: Environment).

Every path is absolute so that step subprocesses, the daemon and the CLI agree no matter
which directory they were started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BUNDLED_PIPELINE = Path(__file__).parent / "demo" / "pipeline.yaml"
DEFAULT_SENSOR_INTERVAL = 30


class EnvironmentError_(ValueError):
    """A bad value in one of the ML_ASSETS_* variables."""


@dataclass(frozen=True)
class Environment:
    home: Path
    landing_dir: Path
    config_path: Path
    tracking_uri: str
    sensor_interval: int
    webhook_url: str | None
    settle_seconds: float = 2.0

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
    def uses_bundled_pipeline(self) -> bool:
        return self.config_path == BUNDLED_PIPELINE


def load_environment(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Environment:
    env = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()

    home = Path(env.get("ML_ASSETS_HOME") or cwd / ".ml_assets").expanduser()
    home = (cwd / home).resolve() if not home.is_absolute() else home
    landing = Path(env.get("ML_ASSETS_LANDING_DIR") or home / "landing").expanduser()
    landing = (cwd / landing).resolve() if not landing.is_absolute() else landing

    if env.get("ML_ASSETS_CONFIG"):
        config = Path(env["ML_ASSETS_CONFIG"]).expanduser()
        config = (cwd / config).resolve() if not config.is_absolute() else config
    elif (cwd / "ml_assets.yaml").is_file():
        config = cwd / "ml_assets.yaml"
    else:
        config = BUNDLED_PIPELINE

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
        tracking_uri=tracking_uri,
        sensor_interval=interval,
        webhook_url=env.get("ML_ASSETS_WEBHOOK_URL") or None,
    )
