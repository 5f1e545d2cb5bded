"""Row identities and the fair comparison set: the champion is never scored on rows it was
trained on, whether versions are cumulative, overlapping or disjoint.

Feature tables are built as the `features` asset builds them (the split, then identities from
the id columns or the feature and label values); the expected counts come from plain Python
sets of ids or of whole rows, not from the hashing under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_assets.config import parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.evaluation import GateResult, decide_promotion
from ml_assets.core.modeling import ROW_KEY_COLUMN, SPLIT_COLUMN, held_out, split_rows, train_test
from ml_assets.core.overlap import (
    BY_VALUES,
    METHOD_ATTR,
    add_row_keys,
    comparison_rows,
    identity_columns,
    read_champion_training_rows,
    row_keys,
    unseen_rows,
)
from ml_assets_tests.conftest import breast_cancer

TARGET = "diagnosis"
ID = "patient_id"


def feature_table(rows: pd.DataFrame, id_columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(feature table, the source rows with their split): what the features asset stores, and
    what the test needs to count independently."""
    roles = infer_roles(rows, TARGET, id_columns)
    rows = rows.reset_index(drop=True)
    table = rows[[*roles.features, TARGET]].copy()
    table[SPLIT_COLUMN] = split_rows(table[TARGET], "classification", 0.2, 42).astype("category")
    method, columns = identity_columns(id_columns, rows.columns, [*roles.features, TARGET])
    add_row_keys(table, rows, method, columns)
    return table, rows.assign(split=table[SPLIT_COLUMN].astype(str).to_numpy())


def identities(rows: pd.DataFrame, by_id: bool) -> list:
    """Each row's identity as plain Python values: its id, or the tuple of its other values."""
    if by_id:
        return rows[ID].tolist()
    values = rows.drop(columns=[ID, "split"])
    return list(values.itertuples(index=False, name=None))


def expected_counts(champion_rows: pd.DataFrame, challenger_rows: pd.DataFrame, by_id: bool):
    """(rows excluded as the champion's training rows, duplicates of the challenger's own
    training rows, rows compared), counted with Python sets."""
    champion_training = set(identities(champion_rows[champion_rows.split == "train"], by_id))
    own_training = set(identities(challenger_rows[challenger_rows.split == "train"], by_id))
    held_out_rows = identities(challenger_rows[challenger_rows.split == "test"], by_id)
    seen = sum(r in champion_training for r in held_out_rows)
    duplicates = sum(r not in champion_training and r in own_training for r in held_out_rows)
    return seen, duplicates, len(held_out_rows) - seen - duplicates


@pytest.fixture(scope="module")
def table():
    return breast_cancer()


def versions(table: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(champion's version, challenger's version) of one table."""
    n = len(table)
    if kind == "cumulative":  # a quarter, then every row to date
        return table.iloc[: n // 4], table
    if kind == "overlapping":  # half of the challenger's rows were the champion's
        return table.iloc[: n // 2], table.iloc[n // 4: 3 * n // 4]
    return table.iloc[: n // 2], table.iloc[n // 2:]  # disjoint


@pytest.mark.parametrize("id_columns", [[ID], []], ids=["id columns", "values"])
@pytest.mark.parametrize("kind", ["cumulative", "overlapping", "disjoint"])
def test_the_comparison_set_excludes_exactly_the_champions_training_rows(table, kind, id_columns):
    champion_version, challenger_version = versions(table, kind)
    champion_table, champion_rows = feature_table(champion_version, id_columns)
    challenger_table, challenger_rows = feature_table(challenger_version, id_columns)

    rows = comparison_rows(challenger_table, TARGET, champion_table)

    seen, duplicates, compared = expected_counts(champion_rows, challenger_rows, bool(id_columns))
    assert (rows.seen_by_champion, rows.duplicates, rows.compared) == (seen, duplicates, compared)
    assert rows.excluded == seen + duplicates
    assert len(rows.keep) == (challenger_rows.split == "test").sum()
    assert duplicates == 0  # no row of the table repeats another
    method = "id columns patient_id" if id_columns else "feature and label values"
    assert rows.method == method
    if kind == "disjoint":
        assert seen == 0 and rows.summary() == (
            f"compared on all {compared} held-out rows; none excluded: none of them is a row the "
            f"champion was trained on (matched by {method})"
        )
    else:
        assert seen > 0  # these versions share rows: some held-out rows were trained on
        assert rows.summary() == (
            f"compared on {compared} held-out rows; {seen} excluded: rows the champion was "
            f"trained on (matched by {method})"
        )


def test_the_kept_rows_are_the_held_out_rows_the_champion_never_saw(table):
    champion_table, champion_rows = feature_table(table.iloc[:142], [ID])
    challenger_table, challenger_rows = feature_table(table, [ID])
    rows = comparison_rows(challenger_table, TARGET, champion_table)
    held_out_ids = challenger_rows.loc[challenger_rows.split == "test", ID].to_numpy()
    trained_on = set(champion_rows.loc[champion_rows.split == "train", ID])
    assert set(held_out_ids[rows.keep]) == set(held_out_ids) - trained_on
    assert not set(held_out_ids[rows.keep]) & trained_on


def test_held_out_duplicates_of_the_challengers_own_training_rows_are_excluded(table):
    # Some rows landed twice (the same values under another id): a copy may fall on each side
    # of the split, and the challenger would be scored on rows it was trained on.
    copies = table.iloc[284:344].assign(patient_id=lambda d: d[ID] + "-again")
    challenger_version = pd.concat([table.iloc[284:], copies], ignore_index=True)
    champion_table, champion_rows = feature_table(table.iloc[60:284], [])
    challenger_table, challenger_rows = feature_table(challenger_version, [])

    rows = comparison_rows(challenger_table, TARGET, champion_table)

    seen, duplicates, compared = expected_counts(champion_rows, challenger_rows, by_id=False)
    assert seen == 0 and duplicates > 0
    assert (rows.seen_by_champion, rows.duplicates, rows.compared) == (0, duplicates, compared)
    assert f"{duplicates} excluded: duplicates of the challenger's own training rows" \
        in rows.summary()


def test_a_number_read_as_int_in_one_file_and_as_float_in_another_is_the_same_row(tmp_path):
    first = pd.DataFrame({"visit": [1, 2, 3], "age": [40, 51, 62], "plan": ["a", "b", "a"],
                          "score": [1.5, 2.0, np.nan]})
    second = pd.concat([first, pd.DataFrame({"visit": [4], "age": [np.nan], "plan": ["c"],
                                             "score": [3.0]})], ignore_index=True)
    first.to_csv(tmp_path / "v1.csv", index=False)
    second.to_csv(tmp_path / "v2.csv", index=False)
    v1, v2 = pd.read_csv(tmp_path / "v1.csv"), pd.read_csv(tmp_path / "v2.csv")
    assert v1["age"].dtype == np.int64 and v2["age"].dtype == np.float64  # how pandas read them
    columns = ["age", "plan", "score"]
    assert list(row_keys(v1, columns)) == list(row_keys(v2, columns)[:3])
    assert list(row_keys(v1, ["visit"])) == list(row_keys(v2, ["visit"])[:3])
    # text and categories by value, missing values equal, numbers written as text are numbers
    as_text = v2.assign(plan=v2["plan"].astype("category"), age=v2["age"].map(
        lambda a: "" if np.isnan(a) else f"{a:g}").replace("", None))
    assert list(row_keys(as_text, columns)) == list(row_keys(v2, columns))
    # and different rows stay different
    assert len(set(row_keys(v2, columns))) == 4


def test_identities_do_not_depend_on_column_order_and_tell_values_apart():
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, -0.0], "b": ["x", "y", None, "x"]})
    keys = row_keys(frame, ["a", "b"])
    assert list(keys) == list(row_keys(frame[["b", "a"]], ["b", "a"]))
    assert list(keys) == list(row_keys(frame.assign(a=[1.0, 2.0, None, 0.0]), ["a", "b"]))
    swapped = pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]})  # the same values, other columns
    assert set(row_keys(swapped, ["a", "b"])).isdisjoint(set(keys))
    assert len(set(keys)) == 4


def test_long_integer_ids_stay_distinct():
    # 19-digit ids that differ in their last digit share one float64; they are other rows.
    ids = pd.DataFrame({"id": np.array([1_600_000_000_000_000_001, 1_600_000_000_000_000_002])})
    assert float(ids["id"][0]) == float(ids["id"][1])
    assert len(set(row_keys(ids, ["id"]))) == 2


def test_the_identity_is_no_feature(table):
    features, _ = feature_table(table, [ID])
    assert features[ROW_KEY_COLUMN].dtype == np.uint64
    assert features.attrs[METHOD_ATTR] == "id columns patient_id"
    X_train, _, X_test, _ = train_test(features, TARGET)
    _, X_held_out, _ = held_out(features, TARGET)
    for X in (X_train, X_test, X_held_out):
        assert ROW_KEY_COLUMN not in X and SPLIT_COLUMN not in X and ID not in X


def _stored(table: pd.DataFrame, path) -> pd.DataFrame:
    table.to_parquet(path, index=False)
    return pd.read_parquet(path)


def test_a_champion_table_written_before_identities_is_matched_by_values_on_both_sides(
        table, tmp_path):
    champion_table, champion_rows = feature_table(table.iloc[: len(table) // 4], [ID])
    old = champion_table.drop(columns=[ROW_KEY_COLUMN])
    old.attrs = {}
    path = tmp_path / "features.parquet"
    old.to_parquet(path, index=False)
    challenger_table, challenger_rows = feature_table(table, [ID])

    training = read_champion_training_rows(path, challenger_table)
    rows = comparison_rows(challenger_table, TARGET, training)

    seen, duplicates, compared = expected_counts(champion_rows, challenger_rows, by_id=False)
    assert (rows.seen_by_champion, rows.duplicates, rows.compared) == (seen, duplicates, compared)
    assert seen > 0 and duplicates == 0 and rows.method == BY_VALUES
    assert rows.summary() == (
        f"compared on {compared} held-out rows; {seen} excluded: rows the champion was "
        "trained on (matched by feature and label values; the champion's feature table has no row "
        "identities (written before they were recorded))"
    )


def test_stored_identities_are_read_alone_when_both_sides_computed_them_the_same_way(
        table, tmp_path):
    champion_table, _ = feature_table(table.iloc[:200], [ID])
    path = tmp_path / "features.parquet"
    champion_table.to_parquet(path, index=False)
    challenger_table, _ = feature_table(table, [ID])

    training = read_champion_training_rows(path, challenger_table)
    assert list(training.columns) == [SPLIT_COLUMN, ROW_KEY_COLUMN]
    assert len(training) == (champion_table[SPLIT_COLUMN] == "train").sum()
    assert comparison_rows(challenger_table, TARGET, training).method == "id columns patient_id"

    # a challenger identified by values cannot use id-based identities: the whole table is read
    by_values, _ = feature_table(table, [])
    whole = read_champion_training_rows(path, by_values)
    assert TARGET in whole.columns
    rows = comparison_rows(by_values, TARGET, whole)
    assert rows.method == BY_VALUES
    assert rows.note == ("the champion's rows were identified by id columns patient_id, "
                         "these by feature and label values")
    assert read_champion_training_rows(tmp_path / "absent.parquet", challenger_table) is None


def test_without_the_champions_table_every_held_out_row_is_compared_and_it_says_so(table):
    challenger_table, challenger_rows = feature_table(table, [ID])
    rows = comparison_rows(challenger_table, TARGET, None,
                           unknown_reason="the champion's feature table is not in the store")
    held = int((challenger_rows.split == "test").sum())
    assert rows.compared == held and rows.excluded == 0 and not rows.champion_rows_known
    assert rows.summary() == (
        f"compared on all {held} held-out rows: the champion's feature table is not in the "
        "store, so rows the champion was trained on could not be excluded")
    assert not rows.too_few(10_000)  # unknown rows are no reason to refuse


def test_decay_rows_are_every_labelled_row_the_champion_was_not_trained_on(table):
    champion_table, champion_rows = feature_table(table.iloc[: len(table) // 4], [ID])
    new_table, new_rows = feature_table(table, [ID])
    new_table.loc[new_table.index[-3:], TARGET] = None  # rows still waiting for a label

    rows = unseen_rows(new_table, TARGET, champion_table)

    trained_on = set(champion_rows.loc[champion_rows.split == "train", ID])
    labelled = new_rows[ID].iloc[:-3]
    assert rows.seen_by_champion == sum(i in trained_on for i in labelled)
    assert rows.compared == sum(i not in trained_on for i in labelled)
    assert rows.summary("scored on").startswith(f"scored on {rows.compared} labelled rows; ")


# --------------------------------------------------------------------------- the decision


def settings(**gates):
    return parse_settings({"name": "t", "target": TARGET, "task": "classification",
                           "positive_label": "malignant", "gates": gates}, "test.yaml")


def _passed() -> GateResult:
    return GateResult(passed=True, failures=[], checked={})


def test_the_decision_states_the_compared_and_excluded_rows(table):
    champion_table, _ = feature_table(table.iloc[: len(table) // 4], [ID])
    challenger_table, _ = feature_table(table, [ID])
    rows = comparison_rows(challenger_table, TARGET, champion_table)

    decision = decide_promotion({"roc_auc": 0.99}, {"roc_auc": 0.98}, _passed(), settings(),
                                comparison=rows)
    assert decision.promote
    assert decision.reason == (
        f"challenger roc_auc 0.990 >= champion 0.980 on the same {rows.compared} held-out rows: "
        f"promoted. Compared on {rows.compared} held-out rows; {rows.seen_by_champion} "
        "excluded: rows the champion was trained on (matched by id columns patient_id).")


def test_too_few_unseen_rows_is_no_comparison_and_the_champion_stays(table):
    champion_table, _ = feature_table(table.iloc[:500], [ID])
    champion_table[SPLIT_COLUMN] = "train"  # a champion trained on all of its 500 rows
    challenger_table, _ = feature_table(table.iloc[:520], [ID])  # 20 new rows
    rows = comparison_rows(challenger_table, TARGET, champion_table)
    assert 0 < rows.compared <= 20

    decision = decide_promotion({"roc_auc": 0.99}, {"roc_auc": 0.5}, _passed(), settings(),
                                comparison=rows)
    assert not decision.promote
    assert decision.reason.startswith(
        f"not promoted: only {rows.compared} held-out rows were not seen by the champion in "
        "training (gates.min_comparison_rows is 30): too few to compare; the champion stays.")
    # a lower bar in the pipeline file lets the same rows decide
    assert decide_promotion({"roc_auc": 0.99}, {"roc_auc": 0.5}, _passed(),
                            settings(min_comparison_rows=5), comparison=rows).promote


def test_the_drop_from_the_champions_evaluation_uses_the_challengers_own_rows():
    # On the compared rows the challenger looks fine; on all its held-out rows it fell far.
    decision = decide_promotion({"roc_auc": 0.97}, {"roc_auc": 0.95}, _passed(), settings(),
                                champion_evaluated=0.99, challenger_evaluated=0.75)
    assert not decision.promote
    assert decision.reason == (
        "not promoted: challenger roc_auc 0.750 on its own held-out rows is more than 10% worse than "
        "the champion's 0.990 at its evaluation (gates.max_drop_from_champion_evaluation): the new "
        "labels look noisier or less consistent; the champion stays."
    )
