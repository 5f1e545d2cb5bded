"""new_data_sensor and a version asked to run again (`ml-assets contract accept`): one
RunRequest for that version, tagged, with the selection a new version gets, and never twice."""

import json

from ml_assets.graph import MODEL
from ml_assets.ingestion.contract_file import request_rerun
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project
from ml_assets_tests.ingestion.test_new_data_sensor import apply, tick


def test_an_accepted_version_is_requested_once_tagged_with_the_new_versions_selection(
    tmp_path, instance
):
    project = make_project(
        tmp_path, "bc", retrain={"policy": "on_drift_or_decay"}, **DATASETS["breast_cancer"][1]
    )
    project.drop("a.csv", breast_cancer().head(300))
    _, first = tick(project, instance)
    apply(instance, first)
    [key] = project.store.versions()
    [new_version_request] = first.run_requests

    run_key = request_rerun(project.store, key, 3, "a new scanner")
    assert run_key == f"contract-r3:{key}"
    _, result = tick(project, instance)
    [request] = result.run_requests
    assert request.partition_key == key
    assert request.run_key == run_key
    assert request.tags["ml_assets/trigger"] == "contract_accepted"
    assert request.tags["ml_assets/contract_revision"] == "3"
    # under retrain.policy on_drift_or_decay a new version is ingested, not trained: the same
    assert request.asset_selection == new_version_request.asset_selection
    assert project.names.key(MODEL) not in request.asset_selection
    assert result.dynamic_partitions_requests == []  # the partition exists already

    _, again = tick(project, instance)
    assert again.run_requests == [] and again.skip_message
    [record] = json.loads(project.store.run_requests_file.read_text())
    assert record["consumed_by"] == "new_data_sensor" and record["consumed_at"]
    assert project.store.pending_run_requests() == []


def test_a_request_for_a_version_whose_first_run_starts_now_adds_no_second_run(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("a.csv", breast_cancer().head(300))
    [record] = project.store.scan_landing(project.landing, "*.csv").new  # registered, not run
    request_rerun(project.store, record.key, 2)

    _, result = tick(project, instance)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [(record.key, record.key)]
    assert project.store.pending_run_requests() == []  # consumed: the first run uses today's contract
