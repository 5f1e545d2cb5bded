"""Per-column drift of a data version against a reference (the champion's training data).

The tests follow Evidently's defaults: numeric columns use the two-sample Kolmogorov-Smirnov
test (p < drift.p_value) when the reference has at most 1000 rows and the Wasserstein distance
normed by the reference's standard deviation (>= drift.distance) above that; categorical
columns, and numeric columns with at most 5 distinct values, use a chi-square test on the
category counts (p < drift.p_value) or the Jensen-Shannon distance (base 2, >= drift.distance).
The dataset drifts when the share of drifted feature columns reaches drift.share.

Where we differ from Evidently, and why: the chi-square test is the two-sample test of
homogeneity (scipy's chi2_contingency on the 2 x k table of counts) rather than a
goodness-of-fit test that treats the reference counts as exact; it treats both samples as
samples, and a category seen on one side only needs no special case (its expected counts come
from the pooled margins and are never zero).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ml_assets.config import PipelineSettings
    from ml_assets.core.columns import ColumnRoles

SMALL_REFERENCE_ROWS = 1000  # <= this many reference rows: statistical tests (KS, chi-square)
FEW_VALUES = 5  # numeric columns with <= this many distinct values are compared as categories
MIN_STD = 0.001  # Evidently's floor for the Wasserstein norm (a constant reference column)
MAX_PLOTTED = 30
PLOT_CAP = 3.0  # bars stop at 3x the threshold: p = 1e-80 would otherwise flatten every other bar


def _null_share(series: pd.Series | None) -> float | None:
    if series is None:
        return None
    return float(series.isna().mean()) if len(series) else 0.0


def _as_numbers(series: pd.Series) -> pd.Series:
    """Numeric non-null values as floats (text that is not a number counts as missing)."""
    values = pd.to_numeric(series, errors="coerce").astype(float)
    return values.replace([np.inf, -np.inf], np.nan)


def _category_keys(series: pd.Series) -> pd.Series:
    """Non-null values as strings, the same on both sides whatever the dtype.

    A column of small integers becomes float on the side that has missing values (1 -> 1.0);
    comparing raw values would then call every category new.
    """
    values = series.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        # The feature table keeps text columns as categoricals; compare their values, as a
        # table stored before that (plain values) would be compared.
        values = values.astype(values.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return values.astype(str)
    numbers = values.astype(float)
    integral = np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers.abs() < 2**53)
    keys = numbers.astype(str)
    keys[integral] = numbers[integral].astype(np.int64).astype(str)
    return keys


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _numeric_test(ref: np.ndarray, cur: np.ndarray, small: bool, settings) -> tuple:
    from scipy import stats

    if small:
        p = stats.ks_2samp(ref, cur).pvalue
        return (
            "ks",
            "p_value",
            float(p),
            float(settings.drift.p_value),
            bool(p < settings.drift.p_value),
        )
    norm = max(float(np.std(ref)), MIN_STD)
    distance = float(stats.wasserstein_distance(ref, cur)) / norm
    return (
        "wasserstein",
        "distance",
        distance,
        float(settings.drift.distance),
        bool(distance >= settings.drift.distance),
    )


def _categorical_test(ref: pd.Series, cur: pd.Series, small: bool, settings) -> tuple:
    categories = sorted(set(ref.unique()) | set(cur.unique()))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy(dtype=float)
    cur_counts = cur.value_counts().reindex(categories, fill_value=0).to_numpy(dtype=float)
    if small:
        from scipy.stats import chi2_contingency

        if len(categories) < 2:
            p = 1.0  # one value on both sides: nothing changed
        else:
            p = float(
                chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False).pvalue
            )
        return (
            "chi_square",
            "p_value",
            p,
            float(settings.drift.p_value),
            bool(p < settings.drift.p_value),
        )
    from scipy.spatial.distance import jensenshannon

    distance = float(
        jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), base=2)
    )
    return (
        "jensen_shannon",
        "distance",
        distance,
        float(settings.drift.distance),
        bool(distance >= settings.drift.distance),
    )


def _column_drift(
    column: str,
    kind: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: PipelineSettings,
) -> dict[str, Any]:
    ref_col = reference[column] if column in reference.columns else None
    cur_col = current[column] if column in current.columns else None
    entry: dict[str, Any] = {
        "column": column,
        "kind": kind,
        "method": "missing",
        "statistic_name": None,
        "statistic": None,
        "threshold": None,
        "drifted": False,
        "reference_null_share": _null_share(ref_col),
        "current_null_share": _null_share(cur_col),
    }
    if ref_col is None or cur_col is None:
        side = "reference" if ref_col is None else "current data"
        entry["note"] = f"column not in the {side}: not compared"
        return entry

    small = len(reference) <= SMALL_REFERENCE_ROWS
    if kind == "numeric":
        ref_num, cur_num = _as_numbers(ref_col), _as_numbers(cur_col)
        entry["reference_null_share"] = _null_share(ref_num)
        entry["current_null_share"] = _null_share(cur_num)
        ref_vals, cur_vals = ref_num.dropna(), cur_num.dropna()
        few = pd.concat([ref_vals, cur_vals]).nunique() <= FEW_VALUES
        if few:
            ref_vals, cur_vals = _category_keys(ref_vals), _category_keys(cur_vals)
    else:
        ref_vals, cur_vals = _category_keys(ref_col), _category_keys(cur_col)
        few = False

    if len(ref_vals) == 0 or len(cur_vals) == 0:
        side = "reference" if len(ref_vals) == 0 else "current data"
        entry.update(
            method="no_values",
            note=f"no non-missing values in the {side}: not compared (see the null shares)",
        )
        return entry

    if kind == "numeric" and not few:
        result = _numeric_test(ref_vals.to_numpy(), cur_vals.to_numpy(), small, settings)
    else:
        result = _categorical_test(ref_vals, cur_vals, small, settings)
        if few:
            entry["note"] = (
                f"numeric with at most {FEW_VALUES} distinct values: compared as categories"
            )
    method, statistic_name, statistic, threshold, drifted = result
    entry.update(
        method=method,
        statistic_name=statistic_name,
        statistic=_finite_or_none(statistic),
        threshold=threshold,
        drifted=drifted,
    )
    return entry


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def drift_report(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    roles: ColumnRoles,
    settings: PipelineSettings,
    reference_label: str | None = None,
    *,
    no_reference_reason: str | None = None,
) -> dict:
    """Per-column drift of `current` against `reference`, as a JSON-able dict.

    Only roles.features count towards the share; ids are left out and the target is reported
    on its own under "target". `reference_label` names the reference (e.g. the champion's data
    version); with `reference=None`, `no_reference_reason` says why there is none.
    """
    report: dict[str, Any] = {
        "reference": reference_label,
        "has_reference": reference is not None,
        "columns": [],
        "target": None,
        "n_columns": 0,
        "n_compared": 0,
        "n_drifted": 0,
        "share_drifted": 0.0,
        "share_threshold": float(settings.drift.share),
        "dataset_drift": False,
        "reference_rows": None if reference is None else len(reference),
        "current_rows": len(current),
        "summary": "",
    }
    if reference is None:
        report["summary"] = f"no reference: {no_reference_reason or 'there is no champion yet'}"
        return report

    numeric = set(roles.numeric)
    columns = [
        _column_drift(c, "numeric" if c in numeric else "categorical", reference, current, settings)
        for c in roles.features
    ]
    target_kind = "numeric" if settings.task == "regression" else "categorical"
    report["target"] = _column_drift(roles.target, target_kind, reference, current, settings)

    compared = [c for c in columns if c["statistic_name"] is not None]
    drifted = [c["column"] for c in compared if c["drifted"]]
    share = len(drifted) / len(compared) if compared else 0.0
    dataset_drift = bool(compared) and share >= settings.drift.share
    report.update(
        columns=columns,
        n_columns=len(columns),
        n_compared=len(compared),
        n_drifted=len(drifted),
        share_drifted=share,
        dataset_drift=dataset_drift,
    )

    against = f" against {reference_label}" if reference_label else " against the reference"
    if not compared:
        report["summary"] = (
            f"no feature column could be compared{against} "
            f"({len(columns)} listed; see each column's note)"
        )
        return report
    names = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    verdict = "dataset drift" if dataset_drift else "no dataset drift"
    relation = ">=" if dataset_drift else "<"
    report["summary"] = (
        f"{verdict}{against}: {len(drifted)} of {len(compared)} feature columns drifted "
        f"({_percent(share)} {relation} the {_percent(settings.drift.share)} in drift.share)"
        + (f": {names}" if drifted else "")
    )
    return report


def _severity(entry: dict) -> float:
    """Statistic relative to its threshold: 1 at the threshold, above 1 means drift.

    p-values are compared on a log scale (p = threshold**2 scores 2), distances linearly.
    """
    stat, threshold = entry["statistic"], entry["threshold"]
    if entry["statistic_name"] == "p_value":
        return math.log(max(stat, 1e-300)) / math.log(threshold)
    return stat / threshold


def drift_plot(report: dict) -> bytes | None:
    """Horizontal bars: each compared column's statistic relative to its threshold (PNG)."""
    entries = [c for c in report.get("columns", []) if c.get("statistic") is not None]
    if not entries:
        return None
    from matplotlib.figure import Figure  # no pyplot: nothing global to leak, no GUI backend

    entries.sort(key=lambda c: (-_severity(c), c["column"]))
    total = len(entries)
    entries = entries[:MAX_PLOTTED]
    scores = [min(_severity(c), PLOT_CAP) for c in entries]
    labels = []
    for c in entries:
        name = c["column"] if len(c["column"]) <= 22 else c["column"][:21] + "…"
        labels.append(name)
    n = len(entries)
    fig = Figure(figsize=(5, min(1.8 + 0.24 * n, 10)), dpi=100)
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]  # the worst at the top
    colors = ["#d62728" if c["drifted"] else "#1f77b4" for c in entries]
    ax.barh(y, scores, color=colors, height=0.7)
    ax.axvline(1.0, color="black", ls="--", lw=1)
    ax.set_yticks(y, labels, fontsize=8 if n > 12 else 9)
    xmax = max(max(scores), 1.0) * 1.45
    ax.set_xlim(0, xmax)
    ax.set_ylim(-0.6, n - 0.4)
    for yi, c, s in zip(y, entries, scores, strict=True):
        stat = c["statistic"]
        text = f"p={stat:.2g}" if c["statistic_name"] == "p_value" else f"{stat:.3f}"
        ax.text(s + xmax * 0.01, yi, f"{text} ({c['method']})", va="center", fontsize=7)
    shown = f", top {n} of {total}" if total > n else ""
    ax.set_title(
        f"Drift per column: {report.get('n_drifted', 0)} of "
        f"{report.get('n_compared', total)} drifted (red){shown}",
        fontsize=10,
    )
    ax.set_xlabel(
        f"statistic / threshold (dashed line = threshold; capped at {PLOT_CAP:g})\n"
        "p-values on a log scale: p = threshold² scores 2",
        fontsize=8,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    fig.clear()
    return buf.getvalue()
