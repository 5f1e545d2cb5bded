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

The report also names what moved: every feature column that drifted, or that the data contract
reported as changed (its values went beyond what the contract has seen), with its statistic,
the contract's words, a reference -> current summary and the data of a small picture (a
histogram on shared bins for numbers, the top categories' shares otherwise).
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
MAX_PICTURED = 8  # moved columns given a picture: the first ones, most moved first
MAX_NAMED = 5  # moved columns named in the summary line
HISTOGRAM_BINS = 20
# The bins span the middle 99% of both samples, and the tails fall into the end bins: one
# extreme value would otherwise squeeze every other bar into a single one.
TAIL_QUANTILE = 0.005
TOP_CATEGORIES = 8
PICTURE = "_picture"  # a moved column's picture data, moved from its entry into "moved"


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


def _compared_values(
    kind: str, ref_col: pd.Series, cur_col: pd.Series
) -> tuple[pd.Series, pd.Series, bool]:
    """The non-missing values of both sides as they are compared, and whether as categories.

    Numbers with at most FEW_VALUES distinct values are compared as categories (codes, counts).
    """
    if kind != "numeric":
        return _category_keys(ref_col), _category_keys(cur_col), True
    ref_vals, cur_vals = _as_numbers(ref_col).dropna(), _as_numbers(cur_col).dropna()
    if _few_values(ref_vals, cur_vals):
        return _category_keys(ref_vals), _category_keys(cur_vals), True
    return ref_vals, cur_vals, False


def _few_values(ref_vals: pd.Series, cur_vals: pd.Series) -> bool:
    # The first rows usually show more than FEW_VALUES values already: hashing a million
    # values to count them all is then not needed.
    if ref_vals.iloc[:1000].nunique() > FEW_VALUES or cur_vals.iloc[:1000].nunique() > FEW_VALUES:
        return False
    return pd.concat([ref_vals, cur_vals]).nunique() <= FEW_VALUES


def _missing_share(column: pd.Series, values: pd.Series) -> float:
    return (len(column) - len(values)) / len(column) if len(column) else 0.0


def _column_drift(
    column: str,
    kind: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: PipelineSettings,
    changed: bool = False,
    pictured: bool = True,
) -> dict[str, Any]:
    """One column's test. A moved feature (drifted, or `changed` by the contract) also gets,
    under PICTURE, what it looks like on both sides: computed here, while its values are at
    hand. `pictured=False` (the target) never does."""
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
    ref_vals, cur_vals, as_categories = _compared_values(kind, ref_col, cur_col)
    few = kind == "numeric" and as_categories
    if kind == "numeric":
        # text that is not a number counts as missing here
        entry["reference_null_share"] = _missing_share(ref_col, ref_vals)
        entry["current_null_share"] = _missing_share(cur_col, cur_vals)

    if len(ref_vals) == 0 or len(cur_vals) == 0:
        side = "reference" if len(ref_vals) == 0 else "current data"
        entry.update(
            method="no_values",
            note=f"no non-missing values in the {side}: not compared (see the null shares)",
        )
        return entry

    if not as_categories:
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
    if pictured and (drifted or changed):
        entry[PICTURE] = _picture(ref_vals, cur_vals, as_categories)
    return entry


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def _share_text(share: float) -> str:
    return f"{100 * share:.1f}%"


def _change_summary(change: dict) -> str:
    if change.get("summary"):
        return str(change["summary"])
    what = change.get("expectation") or "the data contract"
    return f"{change.get('column')}: changed ({what})"


def _changes_by_column(contract_changes: list[dict]) -> dict[str, str]:
    """Each column's change summaries from the data contract, joined into one text."""
    by_column: dict[str, list[str]] = {}
    for change in contract_changes:
        if change.get("column"):
            by_column.setdefault(str(change["column"]), []).append(_change_summary(change))
    return {column: "; ".join(summaries) for column, summaries in by_column.items()}


def _not_compared(column: str, kind: str) -> dict[str, Any]:
    return {"column": column, "kind": kind, "method": None, "statistic_name": None,
            "statistic": None, "threshold": None, "drifted": False}


def _histogram(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Shares of rows per bin, on bins shared by both sides."""
    both = np.concatenate([ref, cur])
    low, high = (float(q) for q in np.quantile(both, [TAIL_QUANTILE, 1 - TAIL_QUANTILE]))
    if not high > low:
        low, high = float(both.min()), float(both.max())
    if not high > low:  # a single value on both sides
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)

    def shares(values: np.ndarray) -> list[float]:
        counts = np.histogram(np.clip(values, low, high), bins=edges)[0]
        return [float(x) for x in counts / len(values)]

    return {
        "edges": [float(e) for e in edges],
        "reference": shares(ref),
        "current": shares(cur),
        "tails_in_end_bins": bool(both.min() < low or both.max() > high),
    }


def _numeric_change(ref: np.ndarray, cur: np.ndarray) -> tuple[dict, str]:
    sides = {
        side: {"mean": float(np.mean(values)), "median": float(np.median(values))}
        for side, values in (("reference", ref), ("current", cur))
    }
    ref_side, cur_side = sides["reference"], sides["current"]
    text = (
        f"mean {ref_side['mean']:.4g} -> {cur_side['mean']:.4g}, "
        f"median {ref_side['median']:.4g} -> {cur_side['median']:.4g}"
    )
    return sides, text


def _category_shares(ref: pd.Series, cur: pd.Series) -> tuple[list[dict], str]:
    """The top categories with their shares on both sides; the rest summed in one row.

    The text names the category whose share moved most.
    """
    shares = pd.concat(
        [ref.value_counts(normalize=True).rename("reference_share"),
         cur.value_counts(normalize=True).rename("current_share")],
        axis=1,
    ).fillna(0.0)
    rows = [
        {"category": str(category), "reference_share": float(r), "current_share": float(c)}
        for category, r, c in zip(
            shares.index, shares["reference_share"], shares["current_share"], strict=True
        )
    ]
    rows.sort(key=lambda row: (-max(row["reference_share"], row["current_share"]), row["category"]))
    most = max(rows, key=lambda row: abs(row["current_share"] - row["reference_share"]))
    text = (
        f"'{most['category']}' {_share_text(most['reference_share'])} -> "
        f"{_share_text(most['current_share'])}"
    )
    top, rest = rows[:TOP_CATEGORIES], rows[TOP_CATEGORIES:]
    if rest:
        top.append({
            "category": f"({len(rest)} other categories)",
            "reference_share": float(sum(row["reference_share"] for row in rest)),
            "current_share": float(sum(row["current_share"] for row in rest)),
        })
    return top, text


def _picture(ref_vals: pd.Series, cur_vals: pd.Series, as_categories: bool) -> dict[str, Any]:
    """A moved column on both sides: a reference -> current summary, and a histogram or the
    top categories' shares."""
    if as_categories:
        categories, text = _category_shares(ref_vals, cur_vals)
        return {"reference_to_current": text, "categories": categories}
    ref_arr, cur_arr = ref_vals.to_numpy(dtype=float), cur_vals.to_numpy(dtype=float)
    statistics, text = _numeric_change(ref_arr, cur_arr)
    return {"reference_to_current": text, "statistics": statistics,
            "histogram": _histogram(ref_arr, cur_arr)}


def _moved_detail(entry: dict, change: str | None, with_picture: bool) -> dict[str, Any]:
    """What one moved column shows: statistic, contract change, summary (and picture data)."""
    detail = {key: entry.get(key) for key in (
        "column", "kind", "method", "statistic_name", "statistic", "threshold", "drifted"
    )}
    picture = entry.get(PICTURE) or {}
    detail.update(contract_change=change, reference_to_current=picture.get("reference_to_current"))
    if "statistics" in picture:
        detail["statistics"] = picture["statistics"]
    if with_picture:
        detail.update({k: picture[k] for k in ("histogram", "categories") if k in picture})
    return detail


def _moved_order(entry: dict, changes: dict[str, str]) -> tuple:
    """Both pieces of evidence first, then drift alone, then the contract alone; within each,
    the largest statistic relative to its threshold first."""
    changed = entry["column"] in changes
    rank = 0 if entry["drifted"] and changed else 1 if entry["drifted"] else 2
    severity = _severity(entry) if entry["statistic"] is not None else 0.0
    return rank, -severity, entry["column"]


def _moved(entries: list[dict], changes: dict[str, str]) -> list[dict]:
    """The moved columns' details, most moved first; their entries lose the picture data."""
    moved = [e for e in entries if e["drifted"] or e["column"] in changes]
    moved.sort(key=lambda e: _moved_order(e, changes))
    details = [
        _moved_detail(e, changes.get(e["column"]), i < MAX_PICTURED) for i, e in enumerate(moved)
    ]
    for entry in entries:
        entry.pop(PICTURE, None)
    return details


def _evidence(detail: dict) -> str:
    return " + ".join(
        name for name, present in (("drift", detail["drifted"]),
                                   ("contract", detail["contract_change"])) if present
    )


def _moved_phrase(moved: list[dict]) -> str:
    if not moved:
        return ""
    names = ", ".join(f"{d['column']} ({_evidence(d)})" for d in moved[:MAX_NAMED])
    more = f" and {len(moved) - MAX_NAMED} more" if len(moved) > MAX_NAMED else ""
    return f"; moved: {names}{more}"


def drift_report(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    roles: ColumnRoles,
    settings: PipelineSettings,
    reference_label: str | None = None,
    *,
    no_reference_reason: str | None = None,
    contract_changes: list[dict] | None = None,
) -> dict:
    """Per-column drift of `current` against `reference`, as a JSON-able dict.

    Only roles.features count towards the share; ids are left out and the target is reported
    on its own under "target". `reference_label` names the reference (e.g. the champion's data
    version); with `reference=None`, `no_reference_reason` says why there is none.
    `contract_changes` are the data contract's change findings for `current` (each a dict
    with at least "column" and "summary"): a feature column with one counts as moved, drifted
    or not, and carries its summary. "moved" lists the moved columns, both pieces of evidence
    first, with a picture's data for the first MAX_PICTURED.
    """
    contract_changes = list(contract_changes or [])
    changes = _changes_by_column(contract_changes)
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
        "contract_changes": [_change_summary(c) for c in contract_changes],
        "moved_columns": [],
        "moved": [],
        "summary": "",
    }
    numeric = set(roles.numeric)
    kinds = {c: "numeric" if c in numeric else "categorical" for c in roles.features}
    if reference is None:
        stubs = [_not_compared(c, kinds[c]) for c in roles.features if c in changes]
        moved = _moved(stubs, changes)
        report.update(moved=moved, moved_columns=[d["column"] for d in moved])
        report["summary"] = (
            f"no reference: {no_reference_reason or 'there is no champion yet'}"
            + _moved_phrase(moved)
        )
        return report

    columns = [
        _column_drift(c, kinds[c], reference, current, settings, changed=c in changes)
        for c in roles.features
    ]
    target_kind = "numeric" if settings.task == "regression" else "categorical"
    report["target"] = _column_drift(
        roles.target, target_kind, reference, current, settings, pictured=False
    )

    compared = [c for c in columns if c["statistic_name"] is not None]
    drifted = [c["column"] for c in compared if c["drifted"]]
    share = len(drifted) / len(compared) if compared else 0.0
    dataset_drift = bool(compared) and share >= settings.drift.share
    moved = _moved(columns, changes)
    report.update(
        columns=columns,
        n_columns=len(columns),
        n_compared=len(compared),
        n_drifted=len(drifted),
        share_drifted=share,
        dataset_drift=dataset_drift,
        moved=moved,
        moved_columns=[d["column"] for d in moved],
    )

    against = f" against {reference_label}" if reference_label else " against the reference"
    if not compared:
        report["summary"] = (
            f"no feature column could be compared{against} "
            f"({len(columns)} listed; see each column's note)" + _moved_phrase(moved)
        )
        return report
    verdict = "dataset drift" if dataset_drift else "no dataset drift"
    relation = ">=" if dataset_drift else "<"
    report["summary"] = (
        f"{verdict}{against}: {len(drifted)} of {len(compared)} feature columns drifted "
        f"({_percent(share)} {relation} the {_percent(settings.drift.share)} in drift.share)"
        + _moved_phrase(moved)
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


def describe_statistic(entry: dict) -> str:
    """The statistic against its threshold in a few words: "ks p=3.2e-12 < 0.05"."""
    stat, threshold = entry.get("statistic"), entry.get("threshold")
    if stat is None or threshold is None:
        return "not compared"
    if entry.get("statistic_name") == "p_value":
        relation = "<" if entry.get("drifted") else ">="
        return f"{entry['method']} p={stat:.2g} {relation} {threshold:g}"
    relation = ">=" if entry.get("drifted") else "<"
    return f"{entry['method']} {stat:.3g} {relation} {threshold:g}"


def histogram_png(detail: dict, reference_name: str = "reference") -> bytes | None:
    """A moved numeric column: the shares of rows per bin, reference against current (PNG).

    None for a column without histogram data (categories, or beyond MAX_PICTURED).
    """
    histogram = detail.get("histogram")
    if not histogram:
        return None
    from matplotlib.figure import Figure  # no pyplot, as in drift_plot

    edges = np.asarray(histogram["edges"])
    fig = Figure(figsize=(4.2, 2.4), dpi=80)
    ax = fig.add_subplot()
    ax.stairs(histogram["reference"], edges, fill=True, alpha=0.45, color="#1f77b4",
              label=reference_name)
    ax.stairs(histogram["current"], edges, fill=True, alpha=0.45, color="#d62728",
              label="this version")
    column = detail["column"] if len(detail["column"]) <= 30 else detail["column"][:29] + "…"
    ax.set_title(f"{column}: {describe_statistic(detail)}", fontsize=9)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    if histogram.get("tails_in_end_bins"):
        ax.set_xlabel("the end bars include the values beyond them", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    fig.clear()
    return buf.getvalue()
