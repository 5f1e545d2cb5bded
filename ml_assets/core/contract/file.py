"""The contract file: a readable JSON suite, saved atomically, checked when loaded."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ml_assets.core.columns import ColumnRoles
from ml_assets.core.contract.suite import (
    META_KEY,
    ContractFileError,
    build_expectation,
    canonical,
    gx_module,
    pydantic_reason,
)

def save_contract(contract: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(canonical(contract))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dumps(value: Any, level: int = 0, width: int = 100) -> str:
    """JSON with 2-space indentation, lists of plain values packed into lines (readable diffs)."""

    def atom(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False)

    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{atom(str(k))}: {_dumps(v, level + 1, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if any(isinstance(v, (dict, list, tuple)) for v in value):
            items = [f"{inner}{_dumps(v, level + 1, width)}" for v in value]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        atoms = [atom(v) for v in value]
        if len(pad) + sum(len(a) + 2 for a in atoms) <= width - 20:
            return "[" + ", ".join(atoms) + "]"
        lines, line = [], ""
        for a in atoms:
            if line and len(inner) + len(line) + len(a) + 2 > width:
                lines.append(line)
                line = ""
            line = f"{line}, {a}" if line else a
        lines.append(line)
        return "[\n" + ",\n".join(inner + ln for ln in lines) + f"\n{pad}]"
    return atom(value)


def check_contract(contract: Any, source: str = "contract") -> None:
    """Raise ContractFileError (naming `source`) unless `contract` is a usable suite."""
    if not isinstance(contract, dict):
        raise ContractFileError(
            f"{source}: expected a JSON object (a Great Expectations suite), "
            f"got {type(contract).__name__}"
        )
    name = contract.get("name")
    if not isinstance(name, str) or not name:
        raise ContractFileError(f"{source}: key 'name': expected the suite name (a string)")
    expectations = contract.get("expectations")
    if not isinstance(expectations, list):
        raise ContractFileError(f"{source}: key 'expectations': expected a list of expectations")
    built = []
    for number, config in enumerate(expectations, start=1):
        kind = config.get("type") if isinstance(config, dict) else None
        try:
            built.append(build_expectation(config))
        except ValueError as exc:
            what = f" ({kind})" if isinstance(kind, str) else ""
            raise ContractFileError(f"{source}: expectation #{number}{what}: {exc}") from None
    meta = contract.get("meta")
    ours = meta.get(META_KEY) if isinstance(meta, dict) else None
    roles = ours.get("roles") if isinstance(ours, dict) else None
    if not isinstance(roles, dict) or not isinstance(roles.get("target"), str):
        raise ContractFileError(
            f"{source}: key 'meta.{META_KEY}.roles': expected the column roles "
            "(target, numeric, categorical, ids) written when the contract was built"
        )
    for key in ("numeric", "categorical", "ids"):
        if not isinstance(roles.get(key, []), list):
            raise ContractFileError(
                f"{source}: key 'meta.{META_KEY}.roles.{key}': expected a list of column names"
            )
    gx = gx_module()
    try:
        gx.ExpectationSuite(name=name, expectations=built, meta=dict(meta))
    except Exception as exc:
        raise ContractFileError(f"{source}: not a valid suite: {pydantic_reason(exc)}") from None


def load_contract(path: Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractFileError(f"{path}: contract file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractFileError(f"{path}: cannot read the contract file ({exc})") from None
    try:
        contract = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractFileError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    check_contract(contract, str(path))
    return contract


def roles_from_contract(contract: dict) -> ColumnRoles:
    try:
        return ColumnRoles.from_dict(contract["meta"][META_KEY]["roles"])
    except (KeyError, TypeError):
        raise ContractFileError(
            f"contract {contract.get('name')!r}: no column roles in meta.{META_KEY}.roles"
        ) from None

