"""The champion's live performance: late labels read and checked, joined to the predictions the
models made, every label problem counted, the primary metric over a window of the champion's
newest labelled predictions with its decay verdict, and the labelled rows of that window turned
back into a table in the landing format (a data version to retrain on).

Plain pandas over the predictions files' columns (see `PREDICTION_COLUMNS`); no Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.config import PipelineSettings
from ml_assets.core.retraining import assess_decay, performance_floor

# The columns every predictions file has after the join columns and the probabilities.
PREDICTION = "prediction"
PROBABILITY_PREFIX = "probability_"
MODEL_VERSION = "model_version"
MODEL_DATA_VERSION = "model_data_version"
SCORING_BATCH = "scoring_batch"
SCORED_AT = "scored_at"
ROW = "row"
PREDICTION_COLUMNS = (PREDICTION, MODEL_VERSION, MODEL_DATA_VERSION, SCORING_BATCH, SCORED_AT, ROW)

# What the join adds to each prediction: its label, and whether it has one.
LABEL = "label"
LABEL_STATE = "label_state"
LABELLED, CONFLICTING = "labelled", "conflicting"
MAX_LISTED = 10  # conflicting ids, unknown classes, bad values named in a message
MB = 1024 * 1024


class LabelsError(ValueError):
    """A labels file that cannot be used; str() says why, for the user."""


class LiveError(ValueError):
    """Live rows that cannot become a table; str() names what and where."""


def no_join_columns(settings: PipelineSettings) -> str:
    return (f"pipeline {settings.name} has no id_columns (or live.join_on) to join labels on")


# --- labels as text: a CSV reads the classes 0/1 as numbers, a predictions file may hold "0" ---
def _class_text(values: pd.Series) -> list[str]:
    """Distinct labels as text, numbers written the same whichever way they were read."""
    numbers = values
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        coerced = pd.to_numeric(values, errors="coerce")
        if coerced.notna().all() and len(values):
            numbers = coerced
    if pd.api.types.is_bool_dtype(numbers) or not pd.api.types.is_numeric_dtype(numbers):
        return [str(v).strip() for v in values]
    return [str(int(v)) if float(v).is_integer() else str(float(v)) for v in numbers]


def label_text(values: pd.Series) -> pd.Series:
    """Class labels as text (1, 1.0 and "1" are one class), missing ones None. One pass over the
    distinct values: a million labels of two classes cost milliseconds."""
    values = pd.Series(values)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names = np.array([*_class_text(pd.Series(uniques)), None], dtype=object)
    return pd.Series(names[codes], index=values.index, dtype=object)


def class_names(classes) -> list[str]:
    """A model's classes (or the class part of the probability columns) as label_text writes them."""
    return _class_text(pd.Series(list(classes)))


def probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith(PROBABILITY_PREFIX)]


# --- a labels file ---
def size_problem(path: Path, max_mb: float) -> str | None:
    """Why a file is too large to read (None when it is not)."""
    size = Path(path).stat().st_size
    if size > max_mb * MB:
        return f"{size / MB:.1f} MB, above live.max_file_mb {max_mb:g}"
    return None


def _listed(values) -> str:
    values = list(values)
    text = ", ".join(repr(v) for v in values[:MAX_LISTED])
    return text + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def checked_labels(frame: pd.DataFrame, settings: PipelineSettings,
                   classes: list[str] | None = None) -> pd.DataFrame:
    """The join columns and the target of a labels table, the target as the task needs it (text
    classes, numbers for a regressor); LabelsError when the table cannot be used. `classes`:
    the champion's classes (class_names), to refuse labels it cannot have predicted."""
    join, target = settings.join_columns, settings.target
    if not join:
        raise LabelsError(no_join_columns(settings))
    missing = [c for c in [*join, target] if c not in frame.columns]
    if missing:
        raise LabelsError(f"missing the column(s) {_listed(missing)}: a labels file holds the "
                          f"join columns {join} and the target {target!r}")
    frame = frame[[*join, target]].copy()
    if settings.task == "regression":
        values = pd.to_numeric(frame[target], errors="coerce")
        bad = frame[target][values.isna() & frame[target].notna()]
        if len(bad):
            raise LabelsError(f"the target {target!r} holds values that are not numbers "
                              f"({_listed(pd.unique(bad))}); pipeline {settings.name} is a regression")
        frame[target] = values.astype(float)
        return frame
    frame[target] = label_text(frame[target])
    if classes is not None:
        unknown = sorted(set(frame[target].dropna()) - set(classes))
        if unknown:
            raise LabelsError(f"the labels {_listed(unknown)} are not among the classes the "
                              f"champion knows ({_listed(classes)})")
    return frame


def read_labels(path: Path, settings: PipelineSettings, classes: list[str] | None = None) -> pd.DataFrame:
    """A labels file read and checked (checked_labels); LabelsError says why it cannot be used."""
    from ml_assets.core.tables import TableReadError, read_table

    if not settings.join_columns:
        raise LabelsError(no_join_columns(settings))
    too_large = size_problem(path, settings.live.max_file_mb)
    if too_large:
        raise LabelsError(f"too large: {too_large}")
    try:
        frame = read_table(path)
    except TableReadError as exc:
        raise LabelsError(f"cannot be read as a table: {exc}") from None
    return checked_labels(frame, settings, classes)


# --- the join ---
def _numeric_text(values: pd.Series) -> pd.Series:
    """Numbers as text, whole ones without '.0' (an id 7 read as 7.0 beside a NaN is still '7')."""
    numbers = values.astype(float)
    whole = numbers.dropna()
    if (whole == np.floor(whole)).all():
        return values.astype("Int64").astype(str).where(values.notna(), None)
    return numbers.astype(str).where(values.notna(), None)


def _aligned(left: pd.Series, right: pd.Series) -> tuple[pd.Series, pd.Series]:
    """One id column of both sides in one type, so that 7, 7.0 and "7" are the same id."""
    numeric = pd.api.types.is_numeric_dtype
    if numeric(left) and numeric(right) and not (
            pd.api.types.is_bool_dtype(left) or pd.api.types.is_bool_dtype(right)):
        if left.dtype == right.dtype:
            return left, right
        return left.astype(float), right.astype(float)

    def text(values: pd.Series) -> pd.Series:
        if numeric(values) and not pd.api.types.is_bool_dtype(values):
            return _numeric_text(values)
        return values.astype(str).str.strip().where(values.notna(), None)

    return text(left), text(right)


@dataclass
class Joined:
    """The predictions, each with its `label` (None without one) and `label_state` (labelled,
    conflicting, or None), and the label problems counted."""

    rows: pd.DataFrame
    counts: dict[str, int]
    conflicting_ids: list = field(default_factory=list)  # the first MAX_LISTED, as records


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, join: list[str], target: str) -> Joined:
    """Join labels (the join columns + `target`, as checked_labels returns them) to predictions.

    Nothing is dropped silently: labels with a missing id or value, duplicates (same id, same
    value: one kept), conflicts (same id, different values: left out, the ids listed) and labels
    for ids no prediction has are counted. An id scored twice gets its label on both rows.
    """
    labels = labels[[*join, target]]
    null_id = labels[join].isna().any(axis=1).to_numpy()
    labels = labels[~null_id]
    null_value = labels[target].isna().to_numpy()
    labels = labels[~null_value]
    deduped = labels.drop_duplicates(subset=[*join, target])
    conflict = deduped.duplicated(subset=join, keep=False).to_numpy()
    conflicting = deduped[conflict][join].drop_duplicates()
    clean = deduped[~conflict]

    keys = [f"__id_{i}" for i in range(len(join))]
    # one row per id: its label, or its conflict (an empty part is left out of the concat,
    # where it would decide nothing but the dtype)
    parts = [(clean, pd.DataFrame({LABEL: clean[target].to_numpy(), LABEL_STATE: LABELLED}))]
    if len(conflicting):
        parts.append((conflicting, pd.DataFrame(
            {LABEL: np.full(len(conflicting), None, dtype=object), LABEL_STATE: CONFLICTING})))
    lookup = pd.concat([part for _, part in parts], ignore_index=True)
    if pd.api.types.is_float_dtype(clean[target]):
        lookup[LABEL] = lookup[LABEL].astype(float)  # a regressor's labels, None as NaN
    rows = predictions.reset_index(drop=True)
    for key, column in zip(keys, join, strict=True):
        label_ids = pd.concat([ids[column] for ids, _ in parts], ignore_index=True)
        rows[key], lookup[key] = _aligned(rows[column], label_ids)
    lookup[LABEL_STATE] = lookup[LABEL_STATE].astype("category")
    scored_ids = rows[keys].dropna().drop_duplicates()
    never_scored = _rows_not_in(lookup[keys], scored_ids)
    # a prediction without an id can never be labelled (and a missing key must match nothing)
    rows = rows.merge(lookup[[*keys, LABEL, LABEL_STATE]].dropna(subset=keys), on=keys, how="left")
    rows = rows.drop(columns=keys)
    state = rows[LABEL_STATE]
    counts = {
        "labels": int(len(null_id)),
        "labels_without_id": int(null_id.sum()),
        "labels_without_value": int(null_value.sum()),
        "duplicate_labels": int(len(labels) - len(deduped)),
        "conflicting_ids": int(len(conflicting)),
        "labels_never_scored": int(never_scored),
        "labelled_predictions": int((state == LABELLED).sum()),
        "conflicting_predictions": int((state == CONFLICTING).sum()),
        "unlabelled_predictions": int(state.isna().sum()),
    }
    listed = conflicting.head(MAX_LISTED)
    return Joined(rows, counts, [_plain_record(r) for r in listed.to_dict("records")])


def unlabelled(predictions: pd.DataFrame) -> Joined:
    """The predictions as join_labels returns them when there are no labels to join."""
    rows = predictions.reset_index(drop=True)
    rows[LABEL] = None
    rows[LABEL_STATE] = pd.Categorical([None] * len(rows), categories=[LABELLED, CONFLICTING])
    counts = dict.fromkeys(["labels", "labels_without_id", "labels_without_value", "duplicate_labels",
                            "conflicting_ids", "labels_never_scored", "labelled_predictions",
                            "conflicting_predictions"], 0)
    return Joined(rows, {**counts, "unlabelled_predictions": int(len(rows))})


def _rows_not_in(keys: pd.DataFrame, known: pd.DataFrame) -> int:
    """How many rows of `keys` are not among the rows of `known` (same columns)."""
    if len(keys.columns) == 1:
        column = keys.columns[0]
        return int((~keys[column].isin(known[column])).sum())
    merged = keys.merge(known, on=list(keys.columns), how="left", indicator=True)
    return int((merged["_merge"] == "left_only").sum())


def _plain_record(record: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


# --- the window, the metric, the verdict ---
def live_window(rows: pd.DataFrame, champion_version: int, window_rows: int,
                window_days: float | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """The newest `window_rows` labelled predictions made by `champion_version` (by scored_at,
    then batch and row), only those scored within `window_days` of `now` when that is set;
    oldest first."""
    mine = rows[(rows[LABEL_STATE] == LABELLED) & (rows[MODEL_VERSION] == champion_version)]
    if window_days is not None:
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        mine = mine[mine[SCORED_AT] >= now - pd.Timedelta(days=window_days)]
    mine = mine.sort_values([SCORED_AT, SCORING_BATCH, ROW], kind="stable")
    return mine.tail(window_rows).reset_index(drop=True)


def live_metrics(rows: pd.DataFrame, task: str, positive_label: Any = None) -> dict[str, float]:
    """The evaluation's metrics of labelled predictions (score_predictions): classifiers scored
    with the probability columns of the file, classes as the columns name them."""
    from ml_assets.core.evaluation.metrics import score_predictions
    from ml_assets.core.evaluation.predictions import Predictions

    if rows.empty:
        return {}
    if task == "regression":
        p = Predictions(rows[PREDICTION].to_numpy(dtype=float))
        return score_predictions(p, rows[LABEL].astype(float), task)
    columns = [c for c in probability_columns(rows) if rows[c].notna().all()]
    classes = class_names(c[len(PROBABILITY_PREFIX):] for c in columns)
    proba = rows[columns].to_numpy(dtype=float) if columns else None
    p = Predictions(label_text(rows[PREDICTION]).to_numpy(), proba, None, classes or None)
    if positive_label is not None and len(classes) == 2 and str(positive_label) not in classes:
        raise LiveError(f"positive_label {positive_label!r} is not one of the classes of the "
                        f"predictions ({_listed(classes)})")
    return score_predictions(p, rows[LABEL], task, positive_label)


def verdict(live: float | None, rows: int, at_evaluation: float | None,
            settings: PipelineSettings) -> dict:
    """Has the champion decayed on its live predictions? `judged` is False when there is no
    verdict (too few labelled predictions, or a metric undefined on them)."""
    metric, live_settings = settings.primary_metric, settings.live
    if rows < live_settings.min_rows:
        return {"judged": False, "decayed": False,
                "reason": f"too few labelled predictions: {rows} < live.min_rows {live_settings.min_rows}"}
    if live is None:
        return {"judged": False, "decayed": False,
                "reason": f"{metric} is undefined on the {rows} labelled predictions of the "
                          "window (one class only?)"}
    decay = assess_decay(live, at_evaluation, settings)
    on = f"live {metric} {live:.3f} on {rows} labelled predictions"
    if decay["decayed"]:
        return {"judged": True, "decayed": True, "reason": f"{on}: {decay['reason']}"}
    floor = performance_floor(settings)
    bounds = [f"margin {settings.retrain.decay_margin:g} from {at_evaluation:.3f} at its evaluation"
              if at_evaluation is not None else None,
              f"floor {floor:.3f}" if floor is not None else None]
    within = ", ".join(b for b in bounds if b) or "nothing to compare with"
    return {"judged": True, "decayed": False, "reason": f"{on}: within the {within}"}


def per_version(rows: pd.DataFrame, metric: str, task: str, positive_label: Any = None) -> list[dict]:
    """The metric of each model version on all its labelled predictions, oldest version first."""
    labelled = rows[rows[LABEL_STATE] == LABELLED]
    out = []
    for version, group in labelled.groupby(MODEL_VERSION, sort=True):
        value = live_metrics(group, task, positive_label).get(metric)
        out.append({"model_version": int(version), "labelled_rows": int(len(group)), metric: value,
                    "first_scored": str(group[SCORED_AT].min()), "last_scored": str(group[SCORED_AT].max())})
    return out


def measure(joined: Joined, settings: PipelineSettings, champion: dict | None,
            now: pd.Timestamp | None = None) -> tuple[dict, pd.DataFrame]:
    """The live report (JSON-able) of the champion on its window, and the window's rows."""
    metric, live_settings = settings.primary_metric, settings.live
    report = {"metric": metric, **joined.counts, "conflicting_id_list": joined.conflicting_ids,
              "window_rows": live_settings.window_rows, "window_days": live_settings.window_days,
              "per_version": per_version(joined.rows, metric, settings.task, settings.positive_label)}
    if champion is None:
        empty = joined.rows.iloc[0:0]
        return {**report, "champion_version": None, "at_evaluation": None, f"live_{metric}": None,
                "labelled_rows": 0, "judged": False, "decayed": False,
                "reason": "no champion: nothing to measure"}, empty
    window = live_window(joined.rows, champion["version"], live_settings.window_rows,
                         live_settings.window_days, now)
    live = live_metrics(window, settings.task, settings.positive_label).get(metric)
    at_evaluation = (champion.get("metrics") or {}).get(metric)
    report.update({"champion_version": int(champion["version"]), "at_evaluation": at_evaluation,
                   f"live_{metric}": live, "labelled_rows": int(len(window))})
    if len(window):
        report["window_from"], report["window_to"] = str(window[SCORED_AT].iloc[0]), str(window[SCORED_AT].iloc[-1])
    report.update(verdict(live, len(window), at_evaluation, settings))
    return report, window


# --- the window's rows as a data version ---
def rows_to_retrain(settings: PipelineSettings) -> int:
    """The fewest rows a version needs for its held-out part to hold gates.min_comparison_rows."""
    return math.ceil(round(settings.gates.min_comparison_rows / settings.test_size, 9))


def labelled_table(window: pd.DataFrame, read_batch: Callable[[str], pd.DataFrame],
                   columns: list[str], target: str, target_dtype=None) -> pd.DataFrame:
    """The window's rows in the landing format: each row's columns read back from its scoring
    batch's file (`read_batch(batch)`, at position `row`) with its label as `target`, the
    columns in the order of `columns`, the rows in the window's order. Labels are compared as
    text; with a numeric `target_dtype` (the data versions' target) they are numbers again."""
    features = [c for c in columns if c != target]
    parts = []
    for batch, group in window.groupby(SCORING_BATCH, sort=False):
        source = read_batch(batch)
        missing = [c for c in features if c not in source.columns]
        if missing:
            raise LiveError(f"scoring batch {batch} has no column(s) {_listed(missing)} that the "
                            "pipeline's data versions have")
        positions = group[ROW].to_numpy(dtype=np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(source)):
            raise LiveError(f"scoring batch {batch} has {len(source)} rows; its predictions name "
                            f"row {int(positions.max())}: the predictions do not belong to this file")
        part = source[features].iloc[positions].reset_index(drop=True)
        part[target] = group[LABEL].to_numpy()
        part["__order"] = group.index.to_numpy()
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True).sort_values("__order", kind="stable")
    if target_dtype is not None and pd.api.types.is_numeric_dtype(target_dtype) \
            and not pd.api.types.is_numeric_dtype(table[target]):
        numbers = pd.to_numeric(table[target], errors="coerce")
        table[target] = numbers if numbers.isna().any() else numbers.astype(target_dtype)
    return table[columns].reset_index(drop=True)
