"""The bundled demo: its two tables and their pipeline files agree, new versions are new rows
of the same population, drifted ones move only the drift columns (and the pipeline's own
drift test tells the two apart), and the regressor's gate is one a default model passes with
margin on held-out rows."""

import pandas as pd
import pytest

from ml_assets.config import load_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.drift import drift_report
from ml_assets.demo.simulator import DEMO_TABLES, make_version
from ml_assets.environment import BUNDLED_PIPELINES


@pytest.mark.parametrize("name", sorted(DEMO_TABLES))
def test_each_table_has_the_columns_its_pipeline_names(name):
    table = DEMO_TABLES[name]
    settings = load_settings(BUNDLED_PIPELINES / f"{name}.yaml")
    frame = pd.read_csv(table.path)
    assert settings.name == name and settings.task == table.task
    assert {settings.target, *settings.id_columns} <= set(frame.columns)
    assert frame[table.id_column].is_unique


@pytest.mark.parametrize("name", sorted(DEMO_TABLES))
def test_new_versions_are_new_rows_and_drift_moves_only_the_drift_columns(name):
    table = DEMO_TABLES[name]
    base = pd.read_csv(table.path)
    plain = make_version(base, seed=2, drift=False, target=table.target, table=table)
    drifted = make_version(base, seed=3, drift=True, target=table.target, table=table)
    pd.testing.assert_frame_equal(plain, make_version(base, seed=2, drift=False, target=table.target, table=table))
    assert plain.dtypes.to_dict() == base.dtypes.to_dict()  # an age in whole years stays one
    assert not plain[table.id_column].isin(base[table.id_column]).any()
    features = [c for c in base.columns if c not in (table.id_column, table.target)
                and pd.api.types.is_numeric_dtype(base[c])]
    moved = [c for c in features if table.drift_columns.search(c)]
    assert moved
    for column in features:
        shift = (drifted[column].mean() - base[column].mean()) / base[column].std()
        if column in moved:
            assert shift > 0.9, column
        else:
            assert abs(shift) < 0.3, column
    if table.task == "classification":
        assert set(plain[table.target]) == set(base[table.target])
    else:  # the target interpolated with its rows: the same population
        assert abs(plain[table.target].mean() - base[table.target].mean()) < 0.2 * base[table.target].std()


@pytest.mark.parametrize("name", sorted(DEMO_TABLES))
def test_the_pipelines_drift_test_flags_a_drifted_version_and_not_a_plain_one(name):
    table = DEMO_TABLES[name]
    settings = load_settings(BUNDLED_PIPELINES / f"{name}.yaml")
    base = pd.read_csv(table.path)
    roles = infer_roles(base, settings.target, settings.id_columns)
    for seed in (2, 3, 4):
        plain = make_version(base, seed=seed, drift=False, target=table.target, table=table)
        drifted = make_version(base, seed=seed, drift=True, target=table.target, table=table)
        assert not drift_report(base, plain, roles, settings)["dataset_drift"], seed
        report = drift_report(base, drifted, roles, settings)
        assert report["dataset_drift"], seed
        moved = {c["column"] for c in report["columns"] if c["drifted"]}
        assert {c for c in roles.numeric if table.drift_columns.search(c)} <= moved


def test_the_regressor_passes_its_own_gate_on_held_out_rows():
    from sklearn.model_selection import train_test_split

    from ml_assets.core.columns import ColumnRoles
    from ml_assets.core.modeling import build_pipeline

    settings = load_settings(BUNDLED_PIPELINES / "diabetes.yaml")
    frame = pd.read_csv(DEMO_TABLES["diabetes"].path)
    frame["sex"] = frame["sex"].astype("category")
    X, y = frame.drop(columns=["visit_id", "progression"]), frame["progression"]
    roles = ColumnRoles(target="progression", numeric=tuple(c for c in X.columns if c != "sex"),
                        categorical=("sex",), ids=("visit_id",), notes={})
    floor = settings.min_gates["r2"]
    scores = []
    for seed in range(5):
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)
        model = build_pipeline(roles, "regression", settings.model.estimator, {}, settings.seed)
        scores.append(model.fit(X_train, y_train).score(X_test, y_test))
    assert min(scores) > floor + 0.05, scores
