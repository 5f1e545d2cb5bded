"""Scoring without Dagster or MLflow: the predictions table a fitted pipeline gives, the data
contract's feature rules on a file to score, and the files that cannot be scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_assets.config import parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.contract import build_contract
from ml_assets.core.modeling import build_pipeline
from ml_assets.core.scoring import (
    BatchBlocked,
    Scorer,
    ScoringFileError,
    check_features,
    feature_contract,
    prediction_summary,
    read_scoring_file,
    score_file,
    score_frame,
    with_batch_columns,
)
from ml_assets_tests.conftest import DATASETS, breast_cancer, diabetes

BC_IDS = ["patient_id"]


def _fitted(df: pd.DataFrame, name: str):
    """(settings, contract, fitted pipeline) as a data version's run makes them."""
    settings = parse_settings({"name": name, **DATASETS[name][1]}, "test.yaml")
    roles = infer_roles(df, settings.target, settings.id_columns, settings.contract.max_categories)
    model = build_pipeline(roles, settings.task, "linear", {}, seed=0)
    model.fit(df.drop(columns=[settings.target]), df[settings.target])
    return settings, build_contract(df, settings, roles), model


@pytest.fixture(scope="module")
def cancer():
    df = breast_cancer()
    settings, contract, model = _fitted(df, "breast_cancer")
    return df.drop(columns=["diagnosis"]), contract, Scorer(model, "classification", 3, "bc-abc123")


@pytest.fixture(scope="module")
def regression():
    df = diabetes()
    settings, _, model = _fitted(df, "diabetes")
    return df.drop(columns=["progression"]), Scorer(model, "regression", 1, "diabetes-0f0f")


def test_classifier_predictions_keep_ids_order_and_sum_to_one(cancer):
    rows, _, scorer = cancer
    shuffled = rows.sample(frac=1.0, random_state=1)  # the file's order, whatever it is
    scored = score_frame(shuffled, scorer, BC_IDS)
    assert list(scored.columns) == ["patient_id", "prediction", "probability_benign",
                                    "probability_malignant", "model_version", "model_data_version"]
    assert list(scored["patient_id"]) == list(shuffled["patient_id"])
    probabilities = scored[["probability_benign", "probability_malignant"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities, scorer.model.predict_proba(shuffled))
    assert list(scored["prediction"]) == list(scorer.model.predict(shuffled))
    assert scored["model_version"].dtype == np.int64 and set(scored["model_version"]) == {3}
    assert set(scored["model_data_version"]) == {"bc-abc123"}
    assert 0.85 < (scored["prediction"] == breast_cancer().set_index("patient_id")
                   .loc[scored["patient_id"], "diagnosis"].to_numpy()).mean()


def test_regression_has_no_probability_columns(regression):
    rows, scorer = regression
    scored = score_frame(rows, scorer, ["visit_id"])
    assert list(scored.columns) == ["visit_id", "prediction", "model_version", "model_data_version"]
    np.testing.assert_allclose(scored["prediction"], scorer.model.predict(rows))
    summary = prediction_summary(scored, "regression")
    assert summary["min"] <= summary["median"] <= summary["max"]
    assert summary["median"] == pytest.approx(float(np.median(scorer.model.predict(rows))))


def test_batch_columns_record_the_batch_the_time_and_each_row(cancer):
    rows, _, scorer = cancer
    scored = score_frame(rows.head(4), scorer, BC_IDS)
    when = pd.Timestamp("2026-03-01 12:00:00", tz="UTC")
    batch = with_batch_columns(scored, "score-abc", when)
    assert list(batch.columns)[-3:] == ["scoring_batch", "scored_at", "row"]
    assert str(batch["scored_at"].dtype) == "datetime64[ns, UTC]"
    assert set(batch["scored_at"]) == {when} and set(batch["scoring_batch"]) == {"score-abc"}
    assert list(batch["row"]) == [0, 1, 2, 3] and batch["row"].dtype == np.int64
    shares = prediction_summary(batch, "classification")
    assert sum(shares.values()) == pytest.approx(1.0) and set(shares) <= {"benign", "malignant"}


def test_the_feature_rules_leave_out_the_target_the_row_count_and_changes(cancer):
    rows, contract, _ = cancer
    rules = feature_contract(contract)["expectations"]
    columns = {rule["kwargs"].get("column") for rule in rules}
    assert "diagnosis" not in columns and None not in columns and "patient_id" not in columns
    assert {rule.get("severity") for rule in rules} == {"critical"}
    assert "mean_radius" in columns
    # one row without a label is a valid file to score
    assert check_features(rows.head(1), contract, "one.csv").success


def test_text_in_a_numeric_column_is_blocked_naming_file_column_and_rule(cancer):
    rows, contract, _ = cancer
    bad = rows.assign(mean_texture=["see notes"] * len(rows))
    with pytest.raises(BatchBlocked) as caught:
        check_features(bad, contract, "x.csv (scoring batch x-123)")
    message = str(caught.value)
    assert message.startswith("x.csv (scoring batch x-123) by check data_contract: 1 of ")
    assert "mean_texture: 100.0% of values are not numbers" in message
    assert "expect_column_values_to_be_in_type_list on 'mean_texture'" in message


def test_a_missing_feature_column_is_blocked(cancer):
    rows, contract, _ = cancer
    with pytest.raises(BatchBlocked) as caught:
        check_features(rows.drop(columns=["worst_area"]), contract, "y.csv")
    message = str(caught.value)
    assert "column 'worst_area' is missing" in message
    assert "expect_column_to_exist on 'worst_area'" in message
    assert caught.value.result.failures[0].column == "worst_area"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"patient_id,mean_radius\n", "a header (2 columns) but no rows"),
        (b"\x00\x01\x02binary", "binary content, not a text table"),
        (b"a,b,c\n1,2,3\n4,5,6,7,8\n", "not a well-formed CSV table: Error tokenizing data"),
        (b"\xff\xfe\xfda,b\n1,2\n", "not UTF-8 text"),
    ],
)
def test_unreadable_files_are_named_with_their_reason(tmp_path, content, reason):
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    with pytest.raises(ScoringFileError) as caught:
        read_scoring_file(path, "batch.csv", BC_IDS, max_file_mb=10)
    assert str(caught.value).startswith("batch.csv: ") and reason in str(caught.value)


def test_missing_id_columns_and_too_large_files_are_refused(tmp_path, cancer):
    rows, contract, scorer = cancer
    path = tmp_path / "no_ids.csv"
    rows.drop(columns=["patient_id"]).to_csv(path, index=False)
    with pytest.raises(ScoringFileError, match=r"no_ids.csv: missing the id column\(s\) \['patient_id'\]"):
        score_file(path, "no_ids.csv", scorer, BC_IDS, 10, contract)
    big = tmp_path / "big.csv"
    rows.to_csv(big, index=False)  # about 0.15 MB
    with pytest.raises(ScoringFileError, match=r"big.csv: 0.\d MB is larger than live.max_file_mb=0.01"):
        score_file(big, "big.csv", scorer, BC_IDS, 0.01, contract)


def test_a_parquet_file_is_scored_like_its_csv(tmp_path, cancer):
    rows, contract, scorer = cancer
    rows.head(50).to_csv(tmp_path / "b.csv", index=False)
    rows.head(50).to_parquet(tmp_path / "b.parquet", index=False)
    from_csv = score_file(tmp_path / "b.csv", "b.csv", scorer, BC_IDS, 10, contract)
    from_parquet = score_file(tmp_path / "b.parquet", "b.parquet", scorer, BC_IDS, 10, contract)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
