"""Nothing lost, nothing let in: the bad-input corpus, dropped after a good version has made
a champion, through `ml-assets run` and through new_data_sensor.

For each file the expected outcome is written in ml_assets_tests/bad_inputs.py: blocked by
which check (with the reason), accepted, or refused at registration.
"""

import json
import re
import threading
import time

import dagster as dg

from ml_assets.graph import ALL_ASSETS, CHECKS
from ml_assets_tests.bad_inputs import corpus
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection
from ml_assets_tests.test_cli import cli

CHECK_ASSET = {check.name: check.asset for check in CHECKS}


def snapshot_bytes(store_root):
    """Every source snapshot in the store, byte for byte (what must never change)."""
    return {p.relative_to(store_root): p.read_bytes() for p in store_root.rglob("source/*")}


def reasons_in(message: str) -> list[str]:
    """What a check's message says went wrong: the "- " lines under "N of M expectations
    failed:", else the message itself."""
    head, *lines = message.splitlines()
    if not lines:
        return [head]
    assert re.fullmatch(r"\d+ of \d+ expectations failed:", head), message
    return [line.strip().removeprefix("- ") for line in lines]


def test_corpus_through_the_cli(tmp_path):
    """The bundled demo's two pipelines; the corpus lands in the classifier's folder."""
    assert cli(tmp_path, "demo").returncode == 0
    assert cli(tmp_path, "run").returncode == 0
    landing = tmp_path / ".ml_assets" / "landing" / "breast_cancer"
    store_root = tmp_path / ".ml_assets" / "store"
    before = snapshot_bytes(store_root)
    status_of_classifier = ("status", "--json", "--pipeline", "breast_cancer")
    first_champion = json.loads(cli(tmp_path, *status_of_classifier).stdout)["champion"]

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cases = corpus(breast_cancer(), outside)
    for case in cases:
        case.write(landing / case.name, breast_cancer())
    landing_before = {p.name: p.read_bytes() for p in landing.iterdir()}

    run = cli(tmp_path, "run", timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out  # some versions were blocked
    assert "Traceback" not in out

    status = json.loads(cli(tmp_path, *status_of_classifier).stdout)
    by_file = {v["file"]: v for v in status["versions"]}
    for case in cases:
        if case.kind == "refused":
            assert case.name not in by_file
            assert f"  refused {case.name}: {case.outcome[1]}" in out.splitlines()
            continue
        version = by_file[case.name]
        if case.kind == "accepted":
            assert version["status"] in ("registered", "champion"), (case.name, version)
            continue
        _, check, reason = case.outcome
        assert version["blocked_by"] == [f"{CHECK_ASSET[check]}:{check}"], (case.name, version)
        verdict = next(line for line in out.splitlines()
                       if line.startswith(f"  => blocked: {case.name} "))
        detail = out[out.index(verdict):].split("\n\n")[0]
        label = f"{CHECK_ASSET[check]}:{check}"
        said = f"  => blocked: {case.name} (data version {version['data_version']}) by check {label}: "
        assert detail.startswith(said), (case.name, detail)
        assert reasons_in(detail[len(said):]) == [reason], (case.name, detail)

    # the champion is the first one or an accepted (good) file's model, never a blocked one
    champion = status["champion"]
    accepted = {by_file[c.name]["data_version"] for c in cases if c.kind == "accepted"}
    assert champion["data_version"] in accepted | {first_champion["data_version"]}
    # nothing stored before changed; the landing folder was only read
    after = snapshot_bytes(store_root)
    assert all(after[path] == data for path, data in before.items())
    assert {p.name: p.read_bytes() for p in landing.iterdir()} == landing_before

    # the next good file still trains
    breast_cancer().sample(frac=0.95, random_state=9).to_csv(landing / "next.csv", index=False)
    again = cli(tmp_path, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "=> registered breast_cancer version" in again.stdout


def test_corpus_through_the_sensor(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    defs = project.defs()
    sensor = defs.get_sensor_def(project.names.new_data_sensor)

    def tick():
        context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                          definitions=defs)
        result = sensor.evaluate_tick(context)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result

    project.drop("good.csv", breast_cancer())
    [first] = tick().run_requests
    assert run_selection(project, instance, first.partition_key, ALL_ASSETS).success

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cases = corpus(breast_cancer(), outside)
    for case in cases:
        case.write(project.landing / case.name, breast_cancer())
    requests = tick().run_requests
    versions = project.store.versions()
    by_file = {record.source_name: key for key, record in versions.items()}
    assert sorted(r.partition_key for r in requests) == sorted(k for k in versions if k != first.partition_key)
    for case in cases:
        if case.kind == "refused":
            assert case.name not in by_file
            continue
        result = run_selection(project, instance, by_file[case.name], ALL_ASSETS)
        if case.kind == "accepted":
            assert result.success, case.name
            continue
        _, check, reason = case.outcome
        evaluation = next(
            e.asset_check_evaluation_data for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and not e.asset_check_evaluation_data.passed
        )
        assert evaluation.check_name == check, case.name
        # the message names the version (and the file, when it could not be read at all)
        said = (f"{case.name} (data version {by_file[case.name]}) " if check == "readable_table"
                else f"data version {by_file[case.name]}: ")
        assert evaluation.description.startswith(said), (case.name, evaluation.description)
        assert reasons_in(evaluation.description[len(said):]) == [reason], (case.name, evaluation.description)
        assert evaluation.blocking
    champion = project.registry().champion()
    good = {first.partition_key} | {by_file[c.name] for c in cases if c.kind == "accepted"}
    assert champion["data_version"] in good
    assert tick().run_requests == []  # nothing requested twice


def test_a_file_still_being_written_is_registered_once_complete(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    settle = 1.0
    text = breast_cancer().to_csv(index=False)
    path = project.landing / "slow upload.csv"
    project.landing.mkdir(parents=True)
    chunks = [text[i:i + len(text) // 8 + 1] for i in range(0, len(text), len(text) // 8 + 1)]

    def write_slowly():
        with open(path, "w") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(0.4)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    time.sleep(0.5)
    scan = project.store.scan_landing(project.landing, "*.csv", settle_seconds=settle)
    assert scan.new == []
    assert re.fullmatch(r"still being written \(modified \d+\.\ds ago\)", scan.unsettled[0].reason)
    writer.join()
    time.sleep(settle + 0.2)
    [record] = project.store.scan_landing(project.landing, "*.csv", settle_seconds=settle).new
    assert project.store.snapshot_path(record.key).read_text() == text  # the whole file
