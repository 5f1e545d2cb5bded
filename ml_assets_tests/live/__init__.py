"""Helpers of the live tests: a champion trained cheaply (linear, breast cancer), batches scored
as the predictions asset scores them (files in the shared predictions format, a materialisation
of `<slug>/predictions` recorded), labels files dropped, live_performance measured and sensors
ticked as the daemon does."""

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.core.tables import read_table
from ml_assets.demo.simulator import DEMO_TABLES, scoring_batch
from ml_assets.graph import ALL_ASSETS, LIVE_PERFORMANCE, PREDICTIONS
from ml_assets.storage import scoring_store
from ml_assets_tests.conftest import DATASETS, breast_cancer, run_selection

PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "linear"}}
TABLE = DEMO_TABLES["breast_cancer"]


def train_champion(project, instance, frame: pd.DataFrame | None = None, name: str = "v1.csv") -> dict:
    project.drop(name, breast_cancer() if frame is None else frame)
    [key] = project.register_new(instance)
    assert run_selection(project, instance, key, ALL_ASSETS).success
    return project.registry().champion()


def new_batch(number: int, rows: int | None = None) -> pd.DataFrame:
    """Rows to score with their true labels (new ids), as the world would send them."""
    batch = scoring_batch(breast_cancer(), number, TABLE)
    return batch.head(rows) if rows else batch


def score_batch(project, instance, batch: pd.DataFrame, name: str, scored_at: pd.Timestamp | None = None) -> str:
    """What the predictions asset does with a file in the scoring folder: registered in the
    scoring store, added as a scoring-batch partition, scored by the champion, its predictions
    written beside it in the shared format, its materialisation recorded."""
    settings, names = project.settings, project.names
    folder = project.landing / "score"
    folder.mkdir(parents=True, exist_ok=True)
    batch.drop(columns=[settings.target]).to_csv(folder / name, index=False)
    store = scoring_store(project.env.store_root, settings.name)
    [record] = store.scan_landing(project.landing, settings.scoring_glob).new
    instance.add_dynamic_partitions(names.scoring_partitions, [record.key])
    registry = project.registry()
    champion = registry.champion()
    model = registry.load_version(champion["version"])
    source = read_table(store.verify_snapshot(record.key))
    proba = model.predict_proba(source[list(model.feature_names_in_)])
    out = source[settings.join_columns].copy()
    out["prediction"] = model.classes_[proba.argmax(axis=1)]
    for i, label in enumerate(model.classes_):
        out[f"probability_{label}"] = proba[:, i]
    out["model_version"] = np.int64(champion["version"])
    out["model_data_version"] = champion["data_version"]
    out["scoring_batch"] = record.key
    out["scored_at"] = pd.Series([scored_at or pd.Timestamp.now(tz="UTC")] * len(out), dtype="datetime64[ns, UTC]")
    out["row"] = np.arange(len(out), dtype=np.int64)
    out.to_parquet(store.artifact_path(record.key, PREDICTIONS, "parquet"), index=False)
    instance.report_runless_asset_event(dg.AssetMaterialization(names.key(PREDICTIONS), partition=record.key))
    return record.key


def drop_labels(project, name: str, frame: pd.DataFrame) -> None:
    folder = project.landing / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)


def deliver_labels(project, instance, name: str, frame: pd.DataFrame):
    """A labels file dropped, and the labels sensor's tick that registers and checks it."""
    drop_labels(project, name, frame)
    return tick(project, instance, project.names.labels_sensor)


def true_labels(batch: pd.DataFrame) -> pd.DataFrame:
    return batch[[TABLE.id_column, TABLE.target]]


def tick(project, instance, sensor: str, cursor: str | None = None, notifier=None):
    """One evaluation of a sensor, with the resources the daemon would give it."""
    from ml_assets.monitoring.notifications import Notifier

    defs = project.defs()
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
        resources={"registry": defs.resources["registry"], "notifier": notifier or Notifier()},
    )
    return defs.get_sensor_def(sensor).evaluate_tick(context)


def measure(project, instance, batch: str, tags: dict | None = None):
    """A run of the live job for one batch, as the daemon launches the labels sensor's request."""
    job = project.defs().resolve_job_def(project.names.live_job)
    return job.execute_in_process(partition_key=batch, instance=instance, raise_on_error=False,
                                  tags=tags or {})


def live_metadata(project, result) -> dict:
    """The plain metadata of the live_performance materialisation of a run."""
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == project.names.key(LIVE_PERFORMANCE)]
    metadata = event.step_materialization_data.materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}
