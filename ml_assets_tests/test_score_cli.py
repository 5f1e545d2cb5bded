"""`ml-assets score FILE --output OUT`: the champion's predictions for a file, as
`mlflow.sklearn.load_model("models:/<name>@champion")` gives them in a fresh process; and the
refusals (exit 1) and usage errors (exit 2), named, with OUT never written.

One home for the module with a linear champion; the happy path runs as a user runs it (a
subprocess), the refusals call `main` in this process (they need no fresh interpreter).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from ml_assets.cli import main
from ml_assets.graph import ALL_ASSETS
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection
from ml_assets_tests.test_cli import cli

PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "linear"}}
COLUMNS = ["patient_id", "prediction", "probability_benign", "probability_malignant",
           "model_version", "model_data_version"]


def rows_to_score(start: int, stop: int) -> pd.DataFrame:
    return breast_cancer().iloc[start:stop].drop(columns=["diagnosis"]).reset_index(drop=True)


def champion_in_a_fresh_process(project, rows_file) -> pd.DataFrame:
    """What a user's own script gets from the registry for these rows, loaded as users load it
    (MLflow then writes a `registered_model_meta` file into the stored model of a local
    artifact store: the champion must still pass its checksum after that)."""
    out = rows_file.with_name("mlflow_answer.parquet")
    script = f"""
import mlflow, mlflow.sklearn, pandas as pd
mlflow.set_tracking_uri({project.env.tracking_uri!r})
model = mlflow.sklearn.load_model('models:/breast_cancer@champion')
rows = pd.read_csv({str(rows_file)!r})
answer = pd.DataFrame(model.predict_proba(rows), columns=[f'probability_{{c}}' for c in model.classes_])
answer.insert(0, 'prediction', model.predict(rows))
answer.to_parquet({str(out)!r})
"""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_"))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=environ)
    assert done.returncode == 0, done.stderr
    return pd.read_parquet(out)


@pytest.fixture(autouse=True)
def collector_back():
    """`main` freezes the heap after importing its libraries, as a command's process should;
    this test process gets its objects back to the collector after each test."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("score_cli")
    project = make_project(root, "breast_cancer", **PIPELINE)
    with dg.instance_for_test() as instance:
        project.drop("v1.csv", breast_cancer())
        [project.version] = project.register_new(instance)
        assert run_selection(project, instance, project.version, ALL_ASSETS).success
    yield project


@pytest.fixture
def in_home(home, monkeypatch):
    """`main` as the command line calls it, in the home's folder and environment."""
    for name in list(os.environ):
        if name.startswith(("ML_ASSETS_", "MLFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ML_ASSETS_HOME", str(home.env.home))
    monkeypatch.chdir(home.root)
    return home


def test_scores_a_file_with_the_champion_as_mlflow_serves_it(home, tmp_path):
    rows = rows_to_score(0, 80)
    rows.to_csv(tmp_path / "monday.csv", index=False)
    out = tmp_path / "predictions.parquet"
    done = cli(home.root, "score", str(tmp_path / "monday.csv"), "--output", str(out),
               env={"ML_ASSETS_HOME": str(home.env.home)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"scored 80 rows of monday.csv with breast_cancer version 1 "
                                   f"(data version {home.version}) -> {out}")
    scored = pd.read_parquet(out)
    assert list(scored.columns) == COLUMNS
    assert list(scored["patient_id"]) == list(rows["patient_id"])
    assert set(scored["model_version"]) == {1} and set(scored["model_data_version"]) == {home.version}
    served = champion_in_a_fresh_process(home, tmp_path / "monday.csv")
    np.testing.assert_allclose(scored[["probability_benign", "probability_malignant"]],
                               served[["probability_benign", "probability_malignant"]])
    assert list(scored["prediction"]) == list(served["prediction"])
    # the user's load left MLflow's own file in the stored model: its checksum still holds
    again = cli(home.root, "score", str(tmp_path / "monday.csv"), "--output", str(out),
                env={"ML_ASSETS_HOME": str(home.env.home)})
    assert again.returncode == 0, again.stderr


def test_parquet_in_csv_out(in_home, tmp_path, capsys):
    rows = rows_to_score(80, 100)
    rows.to_parquet(tmp_path / "tuesday.parquet", index=False)
    out = tmp_path / "out.csv"
    assert main(["score", str(tmp_path / "tuesday.parquet"), "--output", str(out)]) == 0
    assert "scored 20 rows of tuesday.parquet with breast_cancer version 1" in capsys.readouterr().out
    scored = pd.read_csv(out)
    assert list(scored.columns) == COLUMNS and list(scored["patient_id"]) == list(rows["patient_id"])
    np.testing.assert_allclose(scored[["probability_benign", "probability_malignant"]].sum(axis=1), 1.0)


def test_rows_breaking_the_contract_are_refused_named(in_home, tmp_path, capsys):
    source = tmp_path / "broken.csv"
    rows_to_score(0, 30).assign(mean_texture="see notes").to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    assert main(["score", str(source), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refused: {source} by check data_contract: 1 of ")
    assert "mean_texture: 100.0% of values are not numbers" in err
    assert "expect_column_values_to_be_in_type_list on 'mean_texture'" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "the file is empty (0 bytes)"),
     (b"patient_id,mean_radius\n", "a header (2 columns) but no rows"),
     (b"mean_radius,mean_texture\n1,2\n", "missing the id column(s) ['patient_id']")],
)
def test_unreadable_files_are_refused_named(in_home, tmp_path, capsys, content, reason):
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    out = tmp_path / "out.parquet"
    assert main(["score", str(source), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refused: {source}: ") and reason in err
    assert not out.exists()


def test_no_champion_is_refused_named(tmp_path, monkeypatch, capsys):
    empty = make_project(tmp_path, "breast_cancer", **PIPELINE)
    monkeypatch.setenv("ML_ASSETS_HOME", str(empty.env.home))
    monkeypatch.delenv("ML_ASSETS_PIPELINES", raising=False)
    monkeypatch.delenv("ML_ASSETS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    rows_to_score(0, 10).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.parquet"
    assert main(["score", "rows.csv", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "refused: no champion yet for breast_cancer" in err and not out.exists()


def test_usage_errors_exit_2(in_home, tmp_path, capsys):
    rows_to_score(0, 10).to_csv(tmp_path / "rows.csv", index=False)
    assert main(["score", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "out.json")]) == 2
    assert ("error: --output " + str(tmp_path / "out.json") + ": expected a file ending in .csv or "
            ".parquet, got '.json'") in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_several_pipelines_need_one_named(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for name in ("breast_cancer", "diabetes"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **DATASETS[name][1]}))
    monkeypatch.setenv("ML_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ML_ASSETS_PIPELINES", str(folder))
    monkeypatch.delenv("ML_ASSETS_CONFIG", raising=False)
    rows_to_score(0, 10).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.csv"
    assert main(["score", str(tmp_path / "rows.csv"), "--output", str(out)]) == 2
    assert "name one with --pipeline NAME" in capsys.readouterr().err and not out.exists()
