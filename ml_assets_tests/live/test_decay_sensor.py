"""decay_sensor and new_data_sensor after a real decay: champion version 1 (linear, breast cancer)
scores a batch whose labels arrive ordered by another measurement (the world changed); its live
metric falls. The labelled rows become a data version once per decay episode, live.cooldown_hours
apart; an episode closes on recovery or a new champion; the version is validated and then
trained whatever retrain.policy says (here on_drift_or_decay), except never."""

import json

import dagster as dg
import pandas as pd
import pytest

from ml_assets.core.tables import read_table
from ml_assets.demo.simulator import shifted_labels
from ml_assets.graph import ALL_ASSETS, TRAIN_ASSETS, VALIDATE_ASSETS, after_validation
from ml_assets.monitoring.notifications import Notifier
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import breast_cancer, launch_request, make_project
from ml_assets_tests.live import (
    PIPELINE,
    TABLE,
    deliver_labels,
    live_metadata,
    measure,
    new_batch,
    score_batch,
    tick,
    train_champion,
    true_labels,
)

ID, TARGET = "patient_id", "diagnosis"
SETTINGS = {**PIPELINE, "retrain": {"policy": "on_drift_or_decay"}}


def variant(project, **changes):
    """The same home (store, MLflow, landing) under pipeline settings with `changes`."""
    return make_project(project.root, "bc", **{**SETTINGS, **changes})


def shifted(batch: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({ID: batch[ID], TARGET: shifted_labels(batch, breast_cancer(), TABLE)})


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Champion 1; batches A (569 rows) and B (200) scored; A's labels arrive shifted and
    live_performance of B says the champion decayed."""
    project = make_project(tmp_path_factory.mktemp("decay"), "bc", **SETTINGS)
    with dg.instance_for_test() as instance:
        train_champion(project, instance)
        a, b = new_batch(1), new_batch(2, rows=200)
        score_batch(project, instance, a, "a.csv", pd.Timestamp("2025-03-01", tz="UTC"))
        key_b = score_batch(project, instance, b, "b.csv", pd.Timestamp("2025-03-02", tz="UTC"))
        deliver_labels(project, instance, "a_labels.csv", shifted(a))
        measured = live_metadata(project, measure(project, instance, key_b))
        assert measured["decayed"] and measured["labelled_rows"] == len(a), measured
        yield project, instance, (a, b), key_b


def keys(selection) -> list[str]:
    return sorted(key.to_user_string() for key in selection)


def test_too_few_rows_for_a_comparison_request_nothing_and_say_so(home, webhook):
    project, instance, _, _ = home
    strict = variant(project, gates={"min_comparison_rows": 200}, live={"cooldown_hours": 0})
    result = tick(strict, instance, strict.names.decay_sensor, notifier=Notifier(webhook_url=webhook.url))
    assert "its window holds 569 labelled rows, fewer than the 1000 a retraining needs for its " \
           "evaluation to compare (gates.min_comparison_rows 200 / test_size 0.2): nothing requested" \
           in result.skip_message
    [sent] = webhook.texts()
    assert sent.startswith("[ml_assets] retraining not requested: pipeline bc: champion version 1 decayed")
    assert not [r for r in VersionedStore(project.env.store_root, "bc").versions().values() if r.trigger]


def test_policy_never_requests_nothing(home):
    project, instance, _, _ = home
    never = variant(project, retrain={"policy": "never"})
    result = tick(never, instance, never.names.decay_sensor)
    assert "champion version 1 decayed, but retrain.policy is never: nothing requested" in result.skip_message


def test_decay_episode_retrains_once_on_the_labelled_rows(home, webhook):
    project, instance, (a, b), key_b = home
    notifier = Notifier(webhook_url=webhook.url)
    names, store = project.names, VersionedStore(project.env.store_root, "bc")
    assert project.defs().get_sensor_def(names.decay_sensor).default_status == dg.DefaultSensorStatus.RUNNING

    # 1. the decayed measurement opens an episode: A's labelled rows become a data version
    first = tick(project, instance, names.decay_sensor, notifier=notifier)
    [record] = [r for r in store.versions().values() if r.trigger == "decay"]
    assert record.key.startswith("live_labels_v1-") and record.source_name == "live_labels_v1.csv"
    assert f"became data version {record.key}; new_data_sensor requests its runs" in first.skip_message
    [sent] = webhook.texts()
    assert sent.startswith(f"[ml_assets] retraining requested: pipeline bc, data version {record.key}: "
                           "decay: live roc_auc ")
    assert f"the {len(a)} labelled rows of champion version 1 became data version {record.key}" in sent
    rows = read_table(store.verify_snapshot(record.key))
    assert list(rows.columns) == list(breast_cancer().columns)  # the landing format, ids included
    expected = a.assign(**{TARGET: shifted(a)[TARGET].to_numpy()})  # A's rows in scored order
    pd.testing.assert_frame_equal(rows, expected.reset_index(drop=True), check_dtype=False)
    cursor = json.loads(first.cursor)
    assert cursor["episode"]["champion_version"] == 1 and cursor["episode"]["data_version"] == record.key

    # 2. decayed again, same champion: the episode is open, nothing more
    deliver_labels(project, instance, "b_some.csv", shifted(b).head(20))
    measure(project, instance, key_b)
    again = tick(project, instance, names.decay_sensor, first.cursor, notifier=notifier)
    assert (f"champion version 1 decayed again; its decay episode is open since "
            f"{cursor['episode']['opened_at']} (retraining on {record.key} requested): nothing requested"
            in again.skip_message)
    assert len(webhook.texts()) == 1 and len([r for r in store.versions().values() if r.trigger]) == 1

    # 3. a measurement that is not decayed closes it (B's newest rows, labelled as they are)
    narrow = variant(project, live={"window_rows": 150})
    deliver_labels(project, instance, "b_rest.csv", true_labels(b).iloc[20:])
    recovered = live_metadata(narrow, measure(narrow, instance, key_b))
    assert recovered["judged"] and not recovered["decayed"], recovered["reason"]
    closed = tick(project, instance, names.decay_sensor, again.cursor, notifier=notifier)
    assert "the decay episode of champion version 1 is closed: live roc_auc" in closed.skip_message
    assert json.loads(closed.cursor)["episode"] is None

    # 4. decayed again: a new episode, but inside the cooldown after the last decay retraining
    assert live_metadata(project, measure(project, instance, key_b))["decayed"]
    cooling = tick(project, instance, names.decay_sensor, closed.cursor, notifier=notifier)
    assert "but the cooldown after the last decay retraining" in cooling.skip_message
    assert "live.cooldown_hours 24) ends at " in cooling.skip_message
    # ... with no cooldown it requests again, on the window as it is now (A's and B's rows)
    eager = variant(project, live={"cooldown_hours": 0})
    now = tick(eager, instance, names.decay_sensor, closed.cursor, notifier=notifier)
    decay_versions = sorted((r for r in store.versions().values() if r.trigger), key=lambda r: r.registered_at)
    assert len(decay_versions) == 2 and "became data version" in now.skip_message
    assert len(read_table(store.verify_snapshot(decay_versions[1].key))) == len(a) + len(b)

    # 5. new_data_sensor validates the first decay version, then follows up with its training
    new_data = project.defs().get_sensor_def(names.new_data_sensor)
    result = tick(project, instance, names.new_data_sensor)
    requests = {r.partition_key: r for r in result.run_requests}
    request = requests[record.key]
    assert (request.tags["ml_assets/trigger"], request.tags["ml_assets/stage"]) == ("decay", "validate")
    assert keys(request.asset_selection) == keys(names.keys(VALIDATE_ASSETS))
    for partitions in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(partitions.partitions_def_name, list(partitions.partition_keys))
    assert launch_request(project.defs(), instance, names.job, request, new_data.name).success
    follow = tick(project, instance, names.new_data_sensor, result.cursor)
    [train] = follow.run_requests
    assert train.partition_key == record.key and train.tags["ml_assets/trigger"] == "decay"
    # on_drift_or_decay alone would stop at the ingestion; this version is trained
    assert keys(train.asset_selection) == keys(names.keys(after_validation(ALL_ASSETS)))
    assert set(names.keys(TRAIN_ASSETS)) <= set(train.asset_selection)
    assert launch_request(project.defs(), instance, names.job, train, new_data.name).success
    champion = project.registry().champion()
    assert champion["version"] == 2 and champion["data_version"] == record.key

    # 6. the new champion's measurement closes the old champion's episode
    measured = live_metadata(eager, measure(eager, instance, key_b))
    assert measured["champion_version"] == 2 and not measured["decayed"]
    last = tick(eager, instance, names.decay_sensor, now.cursor, notifier=notifier)
    assert json.loads(last.cursor)["episode"] is None
