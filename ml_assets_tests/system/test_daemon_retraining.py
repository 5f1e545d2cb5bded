"""Retraining that runs itself, under the real daemon: `dagster dev` on 127.0.0.1 in a
temporary home with the bundled demo's two pipelines (a classifier and a regressor), files
dropped into their landing folders over time, nobody clicks anything."""

import urllib.request

import dagster as dg
import pytest

from ml_assets.demo.simulator import make_version
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import WebhookServer, breast_cancer, diabetes
from ml_assets_tests.e2e.conftest import wait_for

pytestmark = pytest.mark.system


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp*)."""
    import ipaddress
    from pathlib import Path

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(str(ipaddress.IPv4Address(raw[::-1])))
                else:
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    found.add(str(ipaddress.IPv6Address(b"".join(words))))
    return found


def finished_runs(instance, key):
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
    return [r for r in runs if r.is_finished]


def test_daemon_trains_retrains_ignores_and_blocks(tmp_path, dagster_dev_factory):
    webhook = WebhookServer()
    try:
        dev = dagster_dev_factory({"ML_ASSETS_WEBHOOK_URL": webhook.url})
        home = tmp_path / "home"
        landing = home / "landing" / "breast_cancer"  # the bundled demo: a subfolder each
        landing.mkdir(parents=True)
        store = VersionedStore(home / "store", "breast_cancer")
        registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", "breast_cancer")
        regressor = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", "diabetes")

        wait_for(lambda: urllib.request.urlopen(f"{dev.url}/server_info", timeout=2).status == 200,
                 120, "the Dagster webserver")
        assert listening_addresses(dev.port) == {"127.0.0.1"}  # loopback only

        base = breast_cancer()
        (landing / "first.csv").write_text(base.to_csv(index=False))
        champion = wait_for(registry.champion, 240, "the first champion", interval=2)
        first = next(iter(store.versions()))
        assert champion["data_version"] == first
        # nothing landed for the regressor: its sensor started no run
        instance = dev.instance()
        assert {r.job_name for r in instance.get_runs()} == {"breast_cancer__train_version"}
        (home / "landing" / "diabetes").mkdir(parents=True, exist_ok=True)
        (home / "landing" / "diabetes" / "visits.csv").write_text(diabetes().to_csv(index=False))
        regression_champion = wait_for(regressor.champion, 240, "the regressor's champion", interval=2)
        assert regression_champion["data_version"] in VersionedStore(home / "store", "diabetes").versions()

        # the same bytes under another name: not a new version
        (landing / "first copy.csv").write_bytes((landing / "first.csv").read_bytes())
        drifted = make_version(base, seed=7, drift=True)
        (landing / "drifted.csv").write_text(drifted.to_csv(index=False))
        wait_for(lambda: len(store.versions()) == 2, 60, "the drifted version to be registered")
        drifted_key = next(k for k in store.versions() if k.startswith("drifted-"))
        wait_for(lambda: registry.champion()["data_version"] == drifted_key, 240,
                 "the drifted version to be retrained and promoted", interval=2)
        assert not any(k.startswith("first_copy") for k in store.versions())

        # a bad file: blocked, no promotion
        bad = base.head(120).drop(columns=["mean_area"])
        (landing / "bad.csv").write_text(bad.to_csv(index=False))
        wait_for(lambda: any(k.startswith("bad-") for k in store.versions()), 60, "bad.csv registered")
        bad_key = next(k for k in store.versions() if k.startswith("bad-"))
        [run] = wait_for(lambda: finished_runs(instance, bad_key), 180, "the bad file's run", interval=2)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert registry.champion()["data_version"] == drifted_key

        texts = wait_for(lambda: [t for t in webhook.texts() if t.startswith("[ml_assets] gate blocked: ")],
                         120, "the webhook about the blocked gate", interval=2)
        assert texts[0].startswith(
            f"[ml_assets] gate blocked: pipeline breast_cancer, data version {bad_key}, step validated_data: "
            "check data_contract failed: "), texts[0]
        assert "column 'mean_area' is missing" in texts[0] and dev.url + "/runs/" in texts[0]
        promoted = [t for t in webhook.texts() if t.startswith("[ml_assets] promoted: pipeline breast_cancer,")]
        assert [t.split(", step ")[0] for t in promoted] == [
            f"[ml_assets] promoted: pipeline breast_cancer, data version {first}",
            f"[ml_assets] promoted: pipeline breast_cancer, data version {drifted_key}",
        ], promoted

        # one validation run per version, ever, and the run of the rest only for versions whose
        # contract passed: the duplicate never got one, nor did any version twice
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="breast_cancer__train_version"))
        stages = sorted((r.tags.get("dagster/partition"), r.tags.get("ml_assets/stage")) for r in runs)
        assert stages == sorted([(first, "validate"), (first, "train"), (drifted_key, "validate"),
                                 (drifted_key, "train"), (bad_key, "validate")])
        regression_runs = instance.get_runs(filters=dg.RunsFilter(job_name="diabetes__train_version"))
        assert sorted(r.tags["ml_assets/stage"] for r in regression_runs) == ["train", "validate"]
        assert {r.status for r in regression_runs} == {dg.DagsterRunStatus.SUCCESS}
        assert webhook.url not in dev.log_text()
    finally:
        webhook.close()
