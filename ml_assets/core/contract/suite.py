"""The contract as Great Expectations sees it: the suite's JSON form, its results, and the
few GX calls the other contract modules share. GX is imported only inside functions (seconds)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

META_KEY = "ml_assets"
# 2: every expectation has a GX severity, "critical" (breakage, blocks) or "warning" (change)
CONTRACT_FORMAT = 2
MAX_EXAMPLES = 5
# GX's severities; an expectation without one (as in format 1 files) is critical
CRITICAL = "critical"
WARNING = "warning"

# Dtype names GX's pandas engine understands; the nullable pandas dtypes go by class name and
# plain `int`/`float` accept Python numbers in an object column.
NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"float{b}" for b in (16, 32, 64)),
    *(f"Int{b}Dtype" for b in (8, 16, 32, 64)),
    *(f"UInt{b}Dtype" for b in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
    "int",
    "float",
]

_EXPECTATION_KEYS = {
    "type",
    "kwargs",
    "meta",
    "notes",
    "description",
    "severity",
    "id",
    "rendered_content",
}


# Table-level expectations that need the row count only: validated with the first column batch
# (or on a frame with no columns) so GX does not hash every cell of the table for them.
ROW_COUNT_EXPECTATIONS = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}


class ContractFileError(ValueError):
    """A contract file that cannot be used; str() names the file and the reason."""


@dataclass
class ExpectationFailure:
    expectation: str
    column: str | None
    summary: str
    observed: Any
    expected: Any
    examples: list[dict] = field(default_factory=list)
    # position of the expectation in the contract's list (None: not one expectation's verdict)
    index: int | None = None
    # GX severity: "critical" is breakage (blocks the version), "warning" is change (reported)
    severity: str = "critical"


@dataclass
class ContractResult:
    """The verdict on one data version: `success` when nothing broke (no critical failure);
    `changes` are the failed warning expectations, reported without blocking.

    `evaluated` counts the expectations that could be evaluated: a missing column is one
    failure, and the other expectations on it (or on a numeric column that failed its type
    check and so could not be ranged) are left out of the count rather than reported again.
    """

    success: bool
    evaluated: int
    failures: list[ExpectationFailure]  # breakage: severity "critical"; any one blocks
    changes: list[ExpectationFailure] = field(default_factory=list)  # severity "warning"

    def to_metadata(self) -> dict:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": len(self.failures),
            "failures": [asdict(f) for f in self.failures],
            "changed": len(self.changes),
            "changes": [asdict(f) for f in self.changes],
        }

    @property
    def changed_columns(self) -> list[str]:
        """The columns with a change, each once, in the contract's order."""
        return list(dict.fromkeys(f.column for f in self.changes if f.column is not None))

    def describe(self) -> str:
        if not self.failures:
            return f"all {self.evaluated} expectations passed"
        lines = [f"{len(self.failures)} of {self.evaluated} expectations failed:"]
        lines += [f"- {f.summary}" for f in self.failures]
        return "\n".join(lines)

    def describe_changes(self) -> str:
        if not self.changes:
            return "no change from the contract"
        noun = "change" if len(self.changes) == 1 else "changes"
        lines = [f"{len(self.changes)} {noun} from the contract (reported, not blocking):"]
        lines += [f"- {f.summary}" for f in self.changes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Great Expectations, imported late


def gx_module():
    import great_expectations as gx  # analytics off: ml_assets/library_settings.py

    return gx


def ephemeral_context():
    gx = gx_module()
    from ml_assets.private_apis import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # The validator reads this to decide on tqdm bars ("Calculating Metrics") on stderr.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def pydantic_reason(exc: Exception) -> str:
    """A short reason from a GX or pydantic error: the first message per field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        seen: dict[str, str] = {}
        for error in errors():
            key = ".".join(str(p) for p in error.get("loc", ())) or "value"
            seen.setdefault(key, error.get("msg", ""))
        if seen:
            return "; ".join(f"{k}: {m}" for k, m in seen.items())
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def build_expectation(config: dict):
    """A GX Expectation from its JSON form; raises ValueError with a short reason."""
    gx_module()
    from ml_assets.private_apis import ExpectationConfiguration

    if not isinstance(config, dict):
        raise ValueError(f"expected an object with 'type' and 'kwargs', got {config!r:.60}")
    unknown = set(config) - _EXPECTATION_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if not isinstance(config.get("type"), str):
        raise ValueError("'type' must be the name of an expectation, e.g. expect_column_to_exist")
    if not isinstance(config.get("kwargs"), dict):
        raise ValueError("'kwargs' must be an object")
    clean = {k: v for k, v in config.items() if k not in ("id", "rendered_content")}
    try:
        return ExpectationConfiguration(**clean).to_domain_obj()
    except Exception as exc:  # GX raises its own, pydantic's and TypeErrors here
        if type(exc).__name__ == "ExpectationNotFoundError":
            raise ValueError(f"unknown expectation type {config['type']!r}") from None
        raise ValueError(pydantic_reason(exc)) from None


# --------------------------------------------------------------------------------------------
# Building the contract


def category_key(value: Any) -> str:
    """One text form per category, however pandas happened to read it."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def as_text(series: pd.Series) -> pd.Series:
    """The series as a categorical of text keys (missing stays missing).

    Works on the distinct values only, so it costs one factorize on a big column; a
    categorical dtype also makes GX's null and set checks several times faster than object.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = list(series.cat.categories)
    else:
        codes, uniques_index = pd.factorize(series, use_na_sentinel=True)
        uniques = list(uniques_index)
    keys = [category_key(u) for u in uniques]
    categories = list(dict.fromkeys(keys))
    if len(categories) == len(keys):
        new_codes = codes
    else:
        position = {k: i for i, k in enumerate(categories)}
        remap = np.array([position[k] for k in keys], dtype=np.int64)
        new_codes = np.where(codes >= 0, remap[np.clip(codes, 0, None)], -1)
    values = pd.Categorical.from_codes(
        np.asarray(new_codes), categories=pd.Index(categories, dtype=object)
    )
    return pd.Series(values, index=series.index, name=series.name)


def text_columns(contract: dict) -> list[str]:
    meta = (contract.get("meta") or {}).get(META_KEY) or {}
    roles = meta.get("roles") or {}
    columns = list(roles.get("categorical") or [])
    if meta.get("task") == "classification" and roles.get("target"):
        columns.append(roles["target"])
    return columns


_KWARGS_ORDER = ("column", "min_value", "max_value", "value_set", "type_list", "mostly")


def canonical(contract: dict) -> dict:
    """Key order that reads well: name, expectations (type, kwargs with column first, meta)."""
    expectations = []
    for exp in contract.get("expectations", []):
        exp = {k: v for k, v in exp.items() if not (k == "id" and v is None)}
        kwargs = dict(exp.get("kwargs", {}))
        ordered = {k: kwargs.pop(k) for k in _KWARGS_ORDER if k in kwargs}
        ordered.update(sorted(kwargs.items()))
        first = {"type": exp.get("type"), "kwargs": ordered}
        first.update({k: v for k, v in exp.items() if k not in first})
        expectations.append(first)
    out: dict = {"name": contract.get("name"), "expectations": expectations}
    out.update(
        {
            k: v
            for k, v in contract.items()
            if k not in out and not (k in ("id", "notes") and v is None)
        }
    )
    return out


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        return number if math.isfinite(number) else ("inf" if number > 0 else "-inf")
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)

