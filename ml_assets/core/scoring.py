"""Scoring a file of rows with a fitted model: reading it with clear errors, checking it against
the data contract's feature rules, and the predictions table (one row per row of the file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.tables import TableReadError, read_table

PREDICTION = "prediction"
PROBABILITY_PREFIX = "probability_"
MODEL_VERSION = "model_version"
MODEL_DATA_VERSION = "model_data_version"
SCORING_BATCH = "scoring_batch"
SCORED_AT = "scored_at"
ROW = "row"
# The batch's own columns, after those `ml-assets score` writes as well.
BATCH_COLUMNS = (SCORING_BATCH, SCORED_AT, ROW)
CONTRACT_CHECK = "data_contract"


class ScoringFileError(ValueError):
    """A file that cannot be scored; str() names the file and the reason."""


class BatchBlocked(ScoringFileError):
    """Rows that break the data contract's feature rules; str() names the file, each column and
    rule, as a blocked data version's message does."""

    def __init__(self, message: str, result: Any):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Scorer:
    """The model that scores, and what every prediction records about it."""

    model: Any
    task: str  # "classification" | "regression"
    version: int
    data_version: str


def read_scoring_file(path: Path, label: str, id_columns: list[str], max_file_mb: float) -> pd.DataFrame:
    """The rows of a file to score, in file order; ScoringFileError (starting with `label`, the
    file as the user knows it) when it is too large, cannot be read, or lacks an id column."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ScoringFileError(f"{label}: cannot open the file: {exc.strerror or exc}") from None
    if size > max_file_mb * 1024 * 1024:
        raise ScoringFileError(
            f"{label}: {size / 1024 / 1024:.1f} MB is larger than live.max_file_mb="
            f"{max_file_mb:g}; nothing was read"
        )
    try:
        frame = read_table(path)
    except TableReadError as exc:
        raise ScoringFileError(f"{label}: {exc}") from None
    missing = [column for column in id_columns if column not in frame.columns]
    if missing:
        raise ScoringFileError(
            f"{label}: missing the id column(s) {missing}, which every prediction keeps "
            f"(live.join_on, else id_columns); columns found: {list(frame.columns)[:12]}"
        )
    return frame


def feature_contract(contract: dict) -> dict:
    """The contract's breakage rules on the feature columns only: what a file to score must
    meet. Its rules on the target (absent from such a file) and on the row count (any number
    of rows can be scored) are left out, and so is change (warnings block nothing)."""
    from ml_assets.core.contract import roles_from_contract
    from ml_assets.core.contract.suite import CRITICAL

    features = set(roles_from_contract(contract).features)

    def on_a_feature(expectation: dict) -> bool:
        column = (expectation.get("kwargs") or {}).get("column") if isinstance(expectation, dict) else None
        severity = str(expectation.get("severity") or CRITICAL).lower()
        return column in features and severity == CRITICAL

    return {**contract, "expectations": [e for e in contract.get("expectations") or [] if on_a_feature(e)]}


def check_features(frame: pd.DataFrame, contract: dict, label: str) -> Any:
    """Evaluate the contract's feature rules on `frame`; the ContractResult when they hold,
    BatchBlocked naming `label`, the columns and the rules when any breaks."""
    from ml_assets.core.contract import validate_table

    result = validate_table(frame, feature_contract(contract))
    if not result.success:
        raise BatchBlocked(blocked_message(label, result), result)
    return result


def blocked_message(label: str, result: Any) -> str:
    """How a blocked data version reads (its data_contract check's description), then each
    broken rule with its column."""
    rules = ", ".join(f"{f.expectation} on {f.column!r}" if f.column else f.expectation
                      for f in result.failures)
    return f"{label} by check {CONTRACT_CHECK}: {result.describe()}\nrules broken: {rules}"


def score_frame(frame: pd.DataFrame, scorer: Scorer, id_columns: list[str]) -> pd.DataFrame:
    """The id columns as in `frame`, `prediction`, classifiers' `probability_<class>` (in the
    model's class order), `model_version` and `model_data_version`: one row per row of `frame`,
    in its order."""
    outputs = model_outputs(scorer.model, frame, scorer.task)
    # the file's own dtypes for the ids (nullable integers, text)
    columns: dict[str, Any] = {column: frame[column].reset_index(drop=True) for column in id_columns}
    columns[PREDICTION] = outputs.pred
    if outputs.proba is not None:
        for i, cls in enumerate(outputs.classes or []):
            columns[f"{PROBABILITY_PREFIX}{cls}"] = outputs.proba[:, i]
    rows = len(frame)
    columns[MODEL_VERSION] = np.full(rows, scorer.version, dtype=np.int64)
    columns[MODEL_DATA_VERSION] = np.full(rows, str(scorer.data_version), dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(rows), copy=False)


def model_outputs(model: Any, frame: pd.DataFrame, task: str):
    """The model's predictions (and a classifier's probabilities) of `frame`, with a pipeline's
    preprocessing run once: `predict` and `predict_proba` of a scikit-learn Pipeline would each
    transform every row again (on a million rows, a second each for the breast cancer model)."""
    from ml_assets.core.evaluation.predictions import predict

    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        return predict(steps[-1][1], model[:-1].transform(frame), task)
    return predict(model, frame, task)


def with_batch_columns(scored: pd.DataFrame, batch: str, scored_at: pd.Timestamp) -> pd.DataFrame:
    """The predictions of a scoring batch: `scored` with the batch's key, when it was scored
    (UTC) and each row's position in the batch's file."""
    rows = len(scored)
    out = scored.copy(deep=False)
    out[SCORING_BATCH] = np.full(rows, batch, dtype=object)
    when = pd.Timestamp(scored_at)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    # one value for the whole batch, without a Timestamp object per row
    out[SCORED_AT] = pd.to_datetime(np.full(rows, when.value, dtype=np.int64), utc=True)
    out[ROW] = np.arange(rows, dtype=np.int64)
    return out


def score_file(path: Path, label: str, scorer: Scorer, id_columns: list[str], max_file_mb: float,
               contract: dict | None) -> pd.DataFrame:
    """Read, check (when there is a contract) and score a file: score_frame's table."""
    frame = read_scoring_file(path, label, id_columns, max_file_mb)
    if contract is not None:
        check_features(frame, contract, label)
    return score_frame(frame, scorer, id_columns)


def prediction_summary(scored: pd.DataFrame, task: str) -> dict[str, float]:
    """What the predictions look like at a glance: each class's share (classification), or
    the quantiles of the predicted values (regression)."""
    if len(scored) == 0:
        return {}
    if task == "classification":
        shares = scored[PREDICTION].astype(str).value_counts(normalize=True).sort_index()
        return {str(cls): round(float(share), 4) for cls, share in shares.items()}
    values = pd.to_numeric(scored[PREDICTION], errors="coerce")
    quantiles = values.quantile([0.0, 0.1, 0.5, 0.9, 1.0])
    names = ("min", "p10", "median", "p90", "max")
    return {name: round(float(v), 6) for name, v in zip(names, quantiles.to_numpy(), strict=True)}
