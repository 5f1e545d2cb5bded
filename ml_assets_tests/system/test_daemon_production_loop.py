"""The production loop under the real daemon (`dagster dev`), as an operator lives it: a
champion is approved by hand, scores a batch of new patients, their labels arrive later with
a changed relationship, the live metric falls, retraining happens by itself on those labelled
rows, the new model waits for approval and is approved, scores the next batch; a rollback
restores the first champion, which scores the batch after; the ledger tells it all in order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.demo.simulator import DEMO_TABLES, scoring_batch, shifted_labels
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.storage import VersionedStore, scoring_store
from ml_assets_tests.conftest import WebhookServer
from ml_assets_tests.e2e.conftest import serving_dagster_dev, wait_for
from ml_assets_tests.e2e.services import ml_assets

pytestmark = pytest.mark.system

NAME = "breast_cancer"
TABLE = DEMO_TABLES[NAME]


def write_pipeline(root: Path) -> None:
    folder = root / "pipelines"
    folder.mkdir()
    settings = {
        "name": NAME, "target": TABLE.target, "task": "classification",
        "id_columns": [TABLE.id_column], "positive_label": "malignant",
        "model": {"estimator": "linear"}, "promotion": "manual",
    }
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(settings))


def drop(folder: Path, name: str, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    frame.to_csv(tmp, index=False)
    tmp.rename(folder / name)  # whole, as a sensor tick must see it


def alias(registry: RegisteredModel, name: str) -> int | None:
    try:
        return int(registry.client().get_model_version_by_alias(NAME, name).version)
    except Exception:  # noqa: BLE001 - MLflow raises for an alias that is not set
        return None


def scored_by(home: Path, file: str) -> set[int] | None:
    """The model versions on the rows of a scoring file's predictions, once they exist."""
    store = scoring_store(home / "store", NAME)
    batch = next((r.key for r in store.versions().values() if r.source_name == file), None)
    path = store.artifact_path(batch, "predictions", "parquet") if batch else None
    if path is None or not path.exists():
        return None
    return set(pd.read_parquet(path)["model_version"].astype(int))


def test_score_decay_retrain_approve_rollback_under_the_daemon(tmp_path):
    write_pipeline(tmp_path)
    home = tmp_path / "home"
    landing = home / "landing" / NAME
    registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", NAME)
    base = pd.read_csv(TABLE.path)
    batches = [scoring_batch(base, n, TABLE) for n in (1, 2, 3)]
    webhook = WebhookServer()
    env_extra = {"ML_ASSETS_SENSOR_INTERVAL": "1", "ML_ASSETS_SETTLE_SECONDS": "0",
                 "ML_ASSETS_WEBHOOK_URL": webhook.url}
    try:
        with serving_dagster_dev(tmp_path, env_extra) as dev:
            cli_env = {**dev.env}

            def cli(*args: str):
                done = ml_assets(list(args), tmp_path, cli_env)
                assert done.returncode == 0, f"ml-assets {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
                return done

            # 1. the first model passes its gates and waits for a person
            drop(landing, "clean.csv", base)
            wait_for(lambda: alias(registry, "challenger") == 1, 300, "version 1 to wait for approval",
                     interval=2)
            assert registry.champion() is None
            cli("approve", "1")
            assert registry.champion()["version"] == 1 and alias(registry, "challenger") is None

            # 2. the champion scores a batch of new patients
            drop(landing / "score", "batch_1.csv", batches[0].drop(columns=[TABLE.target]))
            assert wait_for(lambda: scored_by(home, "batch_1.csv"), 180, "batch 1 to be scored",
                            interval=2) == {1}

            # 3. their labels arrive, following another measurement: the live metric falls, and
            #    the labelled rows become a data version that is trained on by itself
            labels = pd.DataFrame({TABLE.id_column: batches[0][TABLE.id_column],
                                   TABLE.target: shifted_labels(batches[0], base, TABLE)})
            drop(landing / "labels", "batch_1_labels.csv", labels)
            wait_for(lambda: alias(registry, "challenger") == 2, 420,
                     "the retrained version 2 to wait for approval", interval=2)
            versions = VersionedStore(home / "store", NAME).versions()
            retrained = registry.client().get_model_version(NAME, "2").tags["data_version"]
            assert retrained in versions and retrained != registry.champion()["data_version"]
            cli("approve", "2")
            assert registry.champion()["version"] == 2

            # 4. the new champion scores the next batch
            drop(landing / "score", "batch_2.csv", batches[1].drop(columns=[TABLE.target]))
            assert wait_for(lambda: scored_by(home, "batch_2.csv"), 180, "batch 2 to be scored",
                            interval=2) == {2}

            # 5. a rollback restores the first champion, which scores the batch after
            cli("rollback")
            assert registry.champion()["version"] == 1
            drop(landing / "score", "batch_3.csv", batches[2].drop(columns=[TABLE.target]))
            assert wait_for(lambda: scored_by(home, "batch_3.csv"), 180, "batch 3 to be scored",
                            interval=2) == {1}

            # 6. the ledger tells the story in order, with who did what
            history = json.loads(cli("history", "--json").stdout)
            story = [(r["action"], r["model_version"]) for r in history["records"]]
            assert story == [("waiting", 1), ("approved", 1), ("waiting", 2), ("approved", 2),
                             ("rolled_back", 1)], story
            actors = [r["actor"] for r in history["records"]]
            assert actors[0].startswith("sensor ") and actors[1].startswith("ml-assets approve")
            assert actors[4].startswith("ml-assets rollback")
            texts = webhook.texts()
            assert any("waits for approval" in t for t in texts), texts
            assert any(t.startswith("[ml_assets] retraining requested") for t in texts), texts
            assert any(t.startswith("[ml_assets] rolled back") for t in texts), texts
    finally:
        webhook.close()
