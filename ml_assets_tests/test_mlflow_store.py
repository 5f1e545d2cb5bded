"""A fresh MLflow sqlite store used by several processes at once (a run's first step while a
sensor looks up the champion): MLflow creates and migrates the database on first use, and
without ml_assets' lock concurrent first uses fail and can leave it broken for good."""

import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

FIRST_USE = """
import sys, time
from pathlib import Path
from ml_assets.registry.mlflow_wiring import ModelRegistry, ensure_experiment

uri, go, ready, mode = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
ready.touch()
while not go.exists():  # every process imported and waiting: start together
    time.sleep(0.005)
if mode == "sensor":
    assert ModelRegistry(tracking_uri=uri).model("bc").champion() is None
else:
    ensure_experiment(uri, "bc", str(go.parent / "mlartifacts"))
print("ok")
"""


def test_concurrent_first_uses_of_a_new_sqlite_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    modes = ["sensor", "run", "sensor", "run"]
    procs = [
        subprocess.Popen([sys.executable, "-c", FIRST_USE, uri, str(go),
                          str(tmp_path / f"ready{i}"), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, mode in enumerate(modes)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(len(modes))):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    outcomes = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]

    # the store is whole: one experiment, and the registry answers
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "bc"]
    assert client.search_registered_models() == []
