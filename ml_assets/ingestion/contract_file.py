"""The per-pipeline data contract file: inferred from the first accepted version, then kept.

`$ML_ASSETS_HOME/contracts/<pipeline>.json` is a Great Expectations suite users can review and
edit; once it exists, every later version is validated against it (and its column roles decide
which columns are features). Delete it to have it inferred again from the next version.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock

from ml_assets.config import PipelineSettings


def contract_for_version(
    df: pd.DataFrame, settings: PipelineSettings, path: Path, key: str
) -> tuple[dict, bool]:
    """(contract, created): the saved contract, or one inferred from this version."""
    from ml_assets.core.columns import infer_roles
    from ml_assets.core.contract import build_contract, load_contract

    if path.exists():
        return load_contract(path), False
    roles = infer_roles(
        df, settings.target, settings.id_columns, max_categories=settings.contract.max_categories
    )
    contract = build_contract(df, settings, roles)
    contract.setdefault("meta", {}).setdefault("ml_assets", {})["inferred_from"] = key
    return contract, True


def accept_contract(contract: dict, path: Path, key: str) -> bool:
    """Save a contract inferred from `key` unless another version's was saved first."""
    from ml_assets.core.contract import save_contract

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60):
        if path.exists():
            return False
        save_contract(contract, path)
        return True


def load_roles(path: Path):
    from ml_assets.core.contract import load_contract, roles_from_contract

    return roles_from_contract(load_contract(path))
