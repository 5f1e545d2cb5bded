"""Per-column drift against a reference, on real (breast cancer) and generated data."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from ml_assets.config import parse_settings
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.drift import MAX_PICTURED, drift_plot, drift_report, histogram_png


def settings_for(task: str = "classification", **extra):
    target = "diagnosis" if task == "classification" else "y"
    return parse_settings({"name": "t", "target": target, "task": task, **extra}, "test.yaml")


@pytest.fixture(scope="module")
def cancer():
    """Two disjoint random halves of the breast cancer data (~285 rows each), with an id."""
    data = load_breast_cancer(as_frame=True)
    df = data.data.copy()
    df["diagnosis"] = data.target.map({0: "malignant", 1: "benign"})
    df.insert(0, "patient_id", np.arange(len(df)))
    order = np.random.default_rng(0).permutation(len(df))
    half = len(df) // 2
    reference = df.iloc[order[:half]].reset_index(drop=True)
    current = df.iloc[order[half:]].reset_index(drop=True)
    roles = ColumnRoles(target="diagnosis", numeric=tuple(data.feature_names), ids=("patient_id",))
    return reference, current, roles


def by_column(report: dict) -> dict[str, dict]:
    return {c["column"]: c for c in report["columns"]}


def _json_roundtrip(value):
    return json.loads(json.dumps(value, allow_nan=False))


def test_a_resample_of_the_same_data_does_not_drift(cancer):
    reference, current, roles = cancer
    report = drift_report(reference, current, roles, settings_for(), reference_label="v1")

    assert report["has_reference"] and report["reference"] == "v1"
    assert report["n_columns"] == report["n_compared"] == 30
    assert {c["method"] for c in report["columns"]} == {"ks"}  # <= 1000 reference rows
    assert not report["dataset_drift"]
    assert report["share_drifted"] < 0.2
    assert report["summary"].startswith("no dataset drift against v1")
    first = report["columns"][0]
    assert first["statistic_name"] == "p_value" and first["threshold"] == 0.05
    assert 0 <= first["statistic"] <= 1
    assert _json_roundtrip(report) == report


def test_a_shift_of_two_std_drifts_those_columns_and_the_dataset(cancer):
    reference, current, roles = cancer
    shifted_columns = list(roles.numeric[:20])
    shifted = current.copy()
    for column in shifted_columns:
        shifted[column] = shifted[column] + 2 * reference[column].std()
    report = drift_report(reference, shifted, roles, settings_for(), reference_label="v1")

    columns = by_column(report)
    assert all(columns[c]["drifted"] for c in shifted_columns)
    assert all(columns[c]["statistic"] < 0.05 for c in shifted_columns)
    assert report["n_drifted"] >= 20 and report["share_drifted"] >= 20 / 30
    assert report["dataset_drift"]
    assert report["summary"].startswith("dataset drift against v1")
    # the summary names the most moved columns first, and counts the rest
    assert set(report["moved_columns"]) >= set(shifted_columns)
    assert all(f"{c} (drift)" in report["summary"] for c in report["moved_columns"][:5])
    assert f"and {len(report['moved_columns']) - 5} more" in report["summary"]
    # every moved column is summarised; the first MAX_PICTURED carry a histogram
    moved = report["moved"]
    assert all(m["reference_to_current"].startswith("mean ") for m in moved)
    assert [("histogram" in m) for m in moved] == [i < MAX_PICTURED for i in range(len(moved))]


def test_ids_and_the_target_are_left_out_of_the_share(cancer):
    reference, current, roles = cancer
    changed = current.copy()
    changed["patient_id"] = changed["patient_id"] + 10_000  # entirely new ids
    changed["diagnosis"] = "malignant"  # the label distribution moved completely
    report = drift_report(reference, changed, roles, settings_for())

    assert "patient_id" not in by_column(report) and "diagnosis" not in by_column(report)
    assert report["n_columns"] == 30
    assert not report["dataset_drift"]
    target = report["target"]
    assert target["column"] == "diagnosis" and target["method"] == "chi_square"
    assert target["drifted"]
    assert set(target) == {"column", "kind", "method", "statistic_name", "statistic",
                           "threshold", "drifted", "reference_null_share", "current_null_share"}
    assert report["moved_columns"] == []  # the target is not a feature: never "moved"


def test_categorical_drift_when_category_proportions_change():
    n = 600

    def table(p_plan, seed):
        r = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "plan": r.choice(["basic", "plus", "pro"], size=n, p=p_plan),
                "region": r.choice(["north", "south"], size=n),
                "tenure": r.normal(24, 6, size=n),
                "churn": r.choice(["yes", "no"], size=n),
            }
        )

    roles = ColumnRoles(target="churn", numeric=("tenure",), categorical=("plan", "region"))
    reference = table([0.6, 0.3, 0.1], 2)
    same = drift_report(reference, table([0.6, 0.3, 0.1], 3), roles, settings_for())
    moved = drift_report(reference, table([0.1, 0.3, 0.6], 4), roles, settings_for())

    assert by_column(same)["plan"]["method"] == "chi_square"
    assert not by_column(same)["plan"]["drifted"]
    plan = by_column(moved)["plan"]
    assert plan["drifted"] and plan["statistic"] < 1e-6 and plan["kind"] == "categorical"
    assert not by_column(moved)["region"]["drifted"]


def test_a_category_seen_on_one_side_only_is_compared_without_error():
    reference = pd.DataFrame({"color": ["red"] * 50 + ["blue"] * 50, "y": 0.0})
    current = pd.DataFrame({"color": ["red"] * 40 + ["blue"] * 40 + ["green"] * 20, "y": 0.0})
    roles = ColumnRoles(target="y", categorical=("color",))
    column = by_column(drift_report(reference, current, roles, settings_for("regression")))
    assert column["color"]["drifted"] and column["color"]["method"] == "chi_square"


def test_large_references_use_wasserstein_and_jensen_shannon():
    rng = np.random.default_rng(7)
    n = 3000

    def table(shift, p_plan):
        return pd.DataFrame(
            {
                "income": rng.normal(50_000 + shift * 12_000, 12_000, size=n),
                "age": rng.normal(40, 10, size=n),
                "plan": rng.choice(["basic", "plus", "pro"], size=n, p=p_plan),
                "y": rng.normal(size=n),
            }
        )

    roles = ColumnRoles(target="y", numeric=("income", "age"), categorical=("plan",))
    settings = settings_for("regression")
    reference = table(0, [0.5, 0.3, 0.2])
    same = by_column(drift_report(reference, table(0, [0.5, 0.3, 0.2]), roles, settings))
    moved = drift_report(reference, table(0.5, [0.2, 0.3, 0.5]), roles, settings)
    columns = by_column(moved)

    assert same["income"]["method"] == "wasserstein"
    assert same["income"]["statistic_name"] == "distance" and same["income"]["threshold"] == 0.1
    assert same["income"]["statistic"] < 0.1 and not same["income"]["drifted"]
    assert same["plan"]["method"] == "jensen_shannon" and not same["plan"]["drifted"]
    # half a standard deviation of shift: a normed Wasserstein distance of about 0.5
    assert columns["income"]["drifted"] and 0.35 < columns["income"]["statistic"] < 0.65
    assert not columns["age"]["drifted"]
    assert columns["plan"]["drifted"] and 0 < columns["plan"]["statistic"] <= 1
    assert moved["dataset_drift"]  # 2 of 3 >= 0.5
    assert moved["target"]["method"] == "wasserstein" and not moved["target"]["drifted"]


def test_drift_thresholds_come_from_the_settings(cancer):
    reference, current, roles = cancer
    shifted = current.copy()
    column = roles.numeric[0]
    shifted[column] = shifted[column] + 0.3 * reference[column].std()
    strict = settings_for(drift={"p_value": 0.5, "share": 0.01})
    report = drift_report(reference, shifted, roles, strict)
    assert by_column(report)[column]["threshold"] == 0.5
    assert report["share_threshold"] == 0.01 and report["dataset_drift"]


def test_few_distinct_numeric_values_with_missing_values_are_compared_as_categories():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"children": rng.integers(0, 4, size=400), "y": 1.0})
    current = pd.DataFrame({"children": rng.integers(0, 4, size=400).astype(float), "y": 1.0})
    current.loc[:119, "children"] = np.nan  # 30% missing: the column turns float (1 -> 1.0)
    roles = ColumnRoles(target="y", numeric=("children",))
    column = by_column(drift_report(reference, current, roles, settings_for("regression")))[
        "children"
    ]

    assert column["method"] == "chi_square" and column["kind"] == "numeric"
    assert not column["drifted"]  # same distribution of the values that are there
    assert column["reference_null_share"] == 0.0
    assert column["current_null_share"] == pytest.approx(0.3)


def test_no_reference_means_no_champion_yet(cancer):
    _, current, roles = cancer
    report = drift_report(None, current, roles, settings_for())
    assert report["has_reference"] is False
    assert report["columns"] == [] and report["dataset_drift"] is False
    assert report["summary"] == "no reference: there is no champion yet"
    assert drift_plot(report) is None
    reason = drift_report(
        None,
        current,
        roles,
        settings_for(),
        no_reference_reason="the champion's data version was deleted",
    )
    assert reason["summary"] == "no reference: the champion's data version was deleted"
    assert _json_roundtrip(report) == report


def test_a_missing_column_is_listed_and_does_not_crash(cancer):
    reference, current, roles = cancer
    column = roles.numeric[0]
    report = drift_report(
        reference, current.drop(columns=[column, "diagnosis"]), roles, settings_for()
    )

    missing = by_column(report)[column]
    assert missing["method"] == "missing" and missing["drifted"] is False
    assert missing["current_null_share"] is None
    assert report["n_columns"] == 30 and report["n_compared"] == 29
    assert report["target"]["method"] == "missing"
    empty = drift_report(reference, current.assign(**{column: np.nan}), roles, settings_for())
    assert by_column(empty)[column]["method"] == "no_values"
    assert by_column(empty)[column]["current_null_share"] == 1.0


def test_same_inputs_give_the_same_report(cancer):
    reference, current, roles = cancer
    settings = settings_for()
    assert drift_report(reference, current, roles, settings) == drift_report(
        reference, current, roles, settings
    )


def test_drift_plot_is_a_png_highlighting_drifted_columns(cancer):
    import matplotlib.pyplot as plt

    reference, current, roles = cancer
    shifted = current.copy()
    for column in roles.numeric[:10]:
        shifted[column] = shifted[column] + 2 * reference[column].std()
    open_before = plt.get_fignums()
    png = drift_plot(drift_report(reference, shifted, roles, settings_for()))

    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    assert plt.get_fignums() == open_before


def test_category_codes_read_as_text_in_one_version_and_numbers_in_another_match():
    # roles are fixed from the first version, where "store" was text ("1", "2", "x"); a later
    # file holds only numbers and a blank, so pandas reads it as float (1.0, 2.0, NaN)
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"store": rng.choice(["1", "2", "3"], size=300), "y": 0.0})
    codes = rng.choice([1, 2, 3], size=300).astype(float)
    codes[:30] = np.nan
    current = pd.DataFrame({"store": codes, "y": 0.0})
    roles = ColumnRoles(target="y", categorical=("store",))
    store = by_column(drift_report(reference, current, roles, settings_for("regression")))["store"]
    assert store["method"] == "chi_square" and not store["drifted"]
    assert store["current_null_share"] == pytest.approx(0.1)


def test_a_categorical_feature_table_matches_a_reference_stored_as_plain_values():
    # Feature tables keep text columns as categoricals; a champion trained before that kept
    # plain strings. The same values must compare as the same categories.
    rng = np.random.default_rng(6)
    values = rng.choice(["basic", "plus", "premium"], size=400)
    reference = pd.DataFrame({"plan": values[:200], "y": 0.0})
    current = pd.DataFrame({"plan": pd.Categorical(values[200:]), "y": 0.0})
    roles = ColumnRoles(target="y", categorical=("plan",))
    plan = by_column(drift_report(reference, current, roles, settings_for("regression")))["plan"]
    assert plan["method"] == "chi_square" and not plan["drifted"]
    shifted = pd.DataFrame({"plan": pd.Categorical(["premium"] * 150 + ["basic"] * 50), "y": 0.0})
    plan = by_column(drift_report(reference, shifted, roles, settings_for("regression")))["plan"]
    assert plan["drifted"]


def shares_by_category(detail: dict) -> dict[str, tuple[float, float]]:
    return {
        row["category"]: (row["reference_share"], row["current_share"])
        for row in detail["categories"]
    }


def test_values_60_percent_higher_are_named_with_statistics_and_a_histogram(cancer):
    from PIL import Image

    reference, current, roles = cancer
    raised = ["mean radius", "worst area", "mean smoothness"]
    moved_version = current.copy()
    moved_version[raised] = moved_version[raised] * 1.6
    changes = [
        {"column": "mean radius", "expectation": "expect_column_values_to_be_between",
         "summary": "mean radius: 6.2% of values outside [-3.6, 38.7] (allowed: 1.0%)"},
        # reported by the contract, but its distribution did not move: named, not drifted
        {"column": "mean texture", "expectation": "expect_column_values_to_be_between",
         "summary": "mean texture: 1.1% of values outside [0, 40] (allowed: 1.0%)"},
        {"column": "diagnosis", "summary": "diagnosis: a target change is not a feature"},
    ]
    report = drift_report(reference, moved_version, roles, settings_for(),
                          reference_label="champion version 1", contract_changes=changes)

    assert not report["dataset_drift"]  # 3 of 30 columns: below drift.share
    details = {m["column"]: m for m in report["moved"]}
    assert report["moved_columns"][0] == "mean radius"  # drift and contract change first
    assert set(report["moved_columns"][1:3]) == {"worst area", "mean smoothness"}
    assert report["moved_columns"][-1] == "mean texture"  # the contract alone last
    assert "diagnosis" not in details
    assert report["contract_changes"] == [c["summary"] for c in changes]

    radius = details["mean radius"]
    assert radius["drifted"] and radius["method"] == "ks"
    assert radius["statistic"] < 1e-10 and radius["threshold"] == 0.05
    assert radius["contract_change"] == changes[0]["summary"]
    before, after = reference["mean radius"].mean(), moved_version["mean radius"].mean()
    assert radius["statistics"]["reference"]["mean"] == pytest.approx(before)
    assert radius["statistics"]["current"]["mean"] == pytest.approx(after)
    assert radius["reference_to_current"].startswith(f"mean {before:.4g} -> {after:.4g}, median ")
    texture = details["mean texture"]
    assert not texture["drifted"] and texture["contract_change"] == changes[1]["summary"]
    assert details["worst area"]["contract_change"] is None

    histogram = radius["histogram"]
    edges = np.array(histogram["edges"])
    assert len(edges) == len(histogram["reference"]) + 1 and np.all(np.diff(edges) > 0)
    assert sum(histogram["reference"]) == pytest.approx(1) == sum(histogram["current"])
    centres = (edges[:-1] + edges[1:]) / 2
    assert centres @ histogram["current"] > 1.4 * (centres @ histogram["reference"])

    png = histogram_png(radius, reference_name="champion")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        assert image.size[0] > 200 and image.size[1] > 100

    for column in ("mean radius", "worst area", "mean smoothness", "mean texture"):
        assert column in report["summary"]
    assert "mean radius (drift + contract)" in report["summary"]
    assert "mean texture (contract)" in report["summary"]
    assert "histogram" not in json.dumps(report["columns"])  # pictures live under "moved" only
    assert _json_roundtrip(report) == report


def test_a_moved_category_shows_the_top_categories_with_their_shares():
    reference = pd.DataFrame({
        "contract": ["month"] * 300 + ["one_year"] * 200 + ["two_year"] * 100,
        "tenure": np.linspace(1, 72, 600),
        "churn": "no",
    })
    current = pd.DataFrame({
        "contract": ["month"] * 150 + ["one_year"] * 150 + ["two_year"] * 150 + ["weekly"] * 50,
        "tenure": np.linspace(1, 72, 500),
        "churn": "no",
    })
    roles = ColumnRoles(target="churn", numeric=("tenure",), categorical=("contract",))
    change = {"column": "contract", "summary": "contract: 10.0% of values not in the known set"}
    report = drift_report(reference, current, roles, settings_for(), contract_changes=[change])

    assert report["moved_columns"] == ["contract"]
    detail = report["moved"][0]
    assert detail["kind"] == "categorical" and detail["method"] == "chi_square"
    assert detail["drifted"] and detail["contract_change"] == change["summary"]
    assert "histogram" not in detail
    shares = shares_by_category(detail)
    assert shares == {
        "month": pytest.approx((0.5, 0.3)),
        "one_year": pytest.approx((200 / 600, 0.3)),
        "two_year": pytest.approx((100 / 600, 0.3)),
        "weekly": pytest.approx((0.0, 0.1)),
    }
    assert list(shares)[0] == "month"  # the largest share first
    assert detail["reference_to_current"] == "'month' 50.0% -> 30.0%"  # the category that moved most
    assert histogram_png(detail) is None


def test_beyond_the_top_categories_the_rest_is_one_row():
    letters = [chr(ord("a") + i) for i in range(12)]
    reference = pd.DataFrame({"plan": letters * 50, "y": 0.0})
    current = pd.DataFrame({"plan": ["a"] * 300 + letters[1:] * 10, "y": 0.0})
    roles = ColumnRoles(target="y", categorical=("plan",))
    [detail] = drift_report(reference, current, roles, settings_for("regression"))["moved"]
    shares = shares_by_category(detail)
    assert len(shares) == 9 and list(shares)[0] == "a"
    assert shares["(4 other categories)"] == pytest.approx((4 / 12, 40 / 410))
    assert sum(r for r, _ in shares.values()) == pytest.approx(1)
    assert sum(c for _, c in shares.values()) == pytest.approx(1)


def test_without_a_reference_the_contract_changes_are_still_named(cancer):
    _, current, roles = cancer
    change = {"column": "mean radius", "summary": "mean radius: 6.2% of values outside [0, 38]"}
    report = drift_report(None, current, roles, settings_for(), contract_changes=[change])
    assert report["moved_columns"] == ["mean radius"]
    [detail] = report["moved"]
    assert detail["contract_change"] == change["summary"] and not detail["drifted"]
    assert detail["statistic"] is None and detail["reference_to_current"] is None
    assert report["summary"] == "no reference: there is no champion yet; moved: mean radius (contract)"
    assert _json_roundtrip(report) == report
