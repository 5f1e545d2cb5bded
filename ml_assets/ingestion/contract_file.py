"""The per-pipeline data contract file: inferred from the first accepted version, then kept,
and widened by hand (`ml-assets contract accept`) into numbered revisions.

`$ML_ASSETS_HOME/contracts/<pipeline>.json` is a Great Expectations suite users can review and
edit; once it exists, every later version is validated against it (and its column roles decide
which columns are features). Delete it to have it inferred again from the next version. Each
widening keeps the file it replaces as `contracts/<pipeline>.revisions/<N>.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from ml_assets.config import PipelineSettings

if TYPE_CHECKING:
    import pandas as pd


def contract_file_path(contracts_dir: Path, pipeline: str) -> Path:
    return Path(contracts_dir) / f"{pipeline}.json"


def contract_for_version(
    df: pd.DataFrame, settings: PipelineSettings, path: Path, key: str
) -> tuple[dict, bool]:
    """(contract, created): the saved contract, or one inferred from this version (revision 1)."""
    from ml_assets.core.columns import infer_roles
    from ml_assets.core.contract import build_contract, load_contract
    from ml_assets.core.contract.evolve import start_history

    if path.exists():
        return load_contract(path), False
    roles = infer_roles(
        df, settings.target, settings.id_columns, max_categories=settings.contract.max_categories
    )
    contract = build_contract(df, settings, roles)
    contract.setdefault("meta", {}).setdefault("ml_assets", {})["inferred_from"] = key
    start_history(contract, key)
    return contract, True


def contract_lock(path: Path) -> FileLock:
    """Held while the contract file is created or replaced (inference, `contract accept`)."""
    return FileLock(str(path) + ".lock", timeout=60)


def accept_contract(contract: dict, path: Path, key: str) -> bool:
    """Save a contract inferred from `key` unless another version's was saved first."""
    from ml_assets.core.contract import save_contract

    path.parent.mkdir(parents=True, exist_ok=True)
    with contract_lock(path):
        if path.exists():
            return False
        save_contract(contract, path)
        return True


def load_roles(path: Path):
    from ml_assets.core.contract import load_contract, roles_from_contract

    return roles_from_contract(load_contract(path))


# --------------------------------------------------------------------------------------------
# Revisions


def revisions_dir(path: Path) -> Path:
    return path.with_name(f"{path.stem}.revisions")


def revision_path(path: Path, revision: int) -> Path:
    return revisions_dir(path) / f"{revision}.json"


def revision_on_disk(path: Path) -> int:
    """The current contract's revision by a plain JSON read (no GX: cheap enough for every
    load of the definitions). No file yet counts as 1, the revision inference will write, so
    the first version's inference does not make its own validated_data stale."""
    # Not through the contract package: importing it costs pandas and numpy.
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        revision = data["meta"]["ml_assets"]["revision"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return 1
    valid = isinstance(revision, int) and not isinstance(revision, bool) and revision > 0
    return revision if valid else 1


def read_contract_json(path: Path) -> dict:
    """A contract file as JSON, for reading only (no GX check); ContractFileError if unusable."""
    from ml_assets.core.contract import ContractFileError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractFileError(f"{path}: contract file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractFileError(f"{path}: cannot read the contract file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ContractFileError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ContractFileError(f"{path}: expected a Great Expectations suite (a JSON object with 'expectations')")
    return data


def available_revisions(path: Path) -> dict[int, Path]:
    """Every revision that can be read back: the kept ones and the current file."""
    found: dict[int, Path] = {}
    folder = revisions_dir(path)
    if folder.is_dir():
        for kept in folder.glob("*.json"):
            if kept.stem.isdigit():
                found[int(kept.stem)] = kept
    if path.exists():
        found[revision_on_disk(path)] = path
    return dict(sorted(found.items()))


class UnknownRevision(LookupError):
    """A revision that was never kept; str() names the ones that exist."""


def load_revision(path: Path, revision: int) -> dict:
    revisions = available_revisions(path)
    if revision not in revisions:
        known = ", ".join(str(r) for r in revisions) or "none (no contract yet)"
        raise UnknownRevision(
            f"contract revision {revision} does not exist for {path.name}; revisions: {known}"
        )
    return read_contract_json(revisions[revision])


# --------------------------------------------------------------------------------------------
# Accepting a data version: widen the contract from it


@dataclass
class Acceptance:
    already_passes: bool
    revision: int  # the contract's revision after the accept
    previous: Path | None = None  # where the replaced revision was kept
    widened: list[str] = field(default_factory=list)


def accept_version(
    path: Path, df: pd.DataFrame, settings: PipelineSettings, key: str, reason: str = ""
) -> Acceptance:
    """Widen the contract at `path` from data version `key` (its table `df`), keeping the
    replaced file as a numbered revision. Raises ContractFileError (no usable contract) or
    CannotWiden (what the version fails cannot be widened); nothing is written then."""
    from ml_assets.core.contract import load_contract, save_contract, validate_table
    from ml_assets.core.contract.evolve import (
        CannotWiden,
        failed_expectations,
        revision_of,
        widen_contract,
    )

    with contract_lock(path):
        contract = load_contract(path)
        result = validate_table(df, contract)
        failures = failed_expectations(result)
        if not failures:
            return Acceptance(already_passes=True, revision=revision_of(contract))
        widening = widen_contract(contract, df, failures, settings.contract, key, reason)
        # The widened contract must take the version in; if it does not, write nothing.
        check = validate_table(df, widening.contract)
        left = failed_expectations(check)
        if left:
            raise CannotWiden(
                f"the contract widened from {key} would still fail it; nothing written:\n"
                + "\n".join(f"- {f.summary}" for f in left)
            )
        previous = _keep_revision(path, revision_of(contract))
        save_contract(widening.contract, path)
    return Acceptance(
        already_passes=False, revision=widening.revision, previous=previous, widened=widening.widened
    )


def _keep_revision(path: Path, revision: int) -> Path:
    """Copy the current file, byte for byte, to its numbered revision (read-only)."""
    from ml_assets.storage import atomic_write

    kept = revision_path(path, revision)
    data = path.read_bytes()
    atomic_write(kept, lambda tmp: tmp.write_bytes(data))
    os.chmod(kept, 0o444)  # a kept revision is history: never edited
    return kept


def request_rerun(store, key: str, revision: int, reason: str = "") -> str:
    """Ask for data version `key` to run again under contract `revision`, through the store:
    new_data_sensor or `ml-assets run` takes the request, once. Returns its run key."""
    from ml_assets.core.contract.evolve import current_user

    run_key = f"contract-r{revision}:{key}"
    store.request_run(
        run_key, key, trigger="contract_accepted", contract_revision=revision, reason=reason,
        requested_by=current_user(),
    )
    return run_key
