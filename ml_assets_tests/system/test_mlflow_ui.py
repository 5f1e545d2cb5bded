"""The MLflow UI as `make dev` starts it, in a real browser: after `ml-assets demo` and
`ml-assets run` in a temporary home, headless Chromium follows the links Dagster recorded
(`registered_model_version` to the champion's model version page, `evaluation_report` to its
MLflow run) and checks what a user looks at there: the model, its version and alias, the run
that made it, the run's metrics and its plots. Full-page screenshots go to
test-artifacts/mlflow_ui/."""

from __future__ import annotations

import shutil
import time

import dagster as dg
import pytest

from ml_assets.dev_servers import Server, mlflow_server
from ml_assets.graph import EVALUATION_REPORT, REGISTERED_MODEL_VERSION, DagsterNames
from ml_assets.private_apis import InstanceRef
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import free_port, wait_for
from ml_assets_tests.e2e.services import clean_env, ml_assets
from ml_assets_tests.system.test_ui import CHROMIUM_ARGS

pytestmark = pytest.mark.system

ARTIFACTS = REPO / "test-artifacts" / "mlflow_ui"
MODEL = "breast_cancer"
RUN_NAME = f"{MODEL}__train_version"  # dagster-mlflow names the MLflow run after the job


@pytest.fixture
def trained(tmp_path):
    """A home whose breast_cancer champion `ml-assets run` trained, and the Dagster metadata of
    its `registered_model_version` and `evaluation_report`, links to the MLflow UI included."""
    mlflow_port = free_port()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dev" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = clean_env(DAGSTER_HOME=str(dagster_home), ML_ASSETS_HOME=str(tmp_path / "home"),
                    # where the UI below answers (`make dev` passes its own port on like this)
                    ML_ASSETS_MLFLOW_UI_URL=f"http://127.0.0.1:{mlflow_port}")
    for args in (["demo"], ["run", "--pipeline", MODEL]):
        done = ml_assets(args, tmp_path, env)
        assert done.returncode == 0, f"ml-assets {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert f"=> registered {MODEL} version 1 and promoted to champion" in done.stdout
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))

    def metadata(asset: str) -> dict:
        [record] = instance.fetch_materializations(DagsterNames.of(MODEL).key(asset), limit=1).records
        return record.event_log_entry.asset_materialization.metadata

    return {"home": tmp_path / "home", "mlflow_port": mlflow_port,
            "registered": metadata(REGISTERED_MODEL_VERSION), "report": metadata(EVALUATION_REPORT)}


@pytest.fixture
def mlflow_ui(trained):
    """`mlflow server` over the home's store, started as `make dev` starts it."""
    home = trained["home"]
    server: Server = mlflow_server("127.0.0.1", trained["mlflow_port"], f"sqlite:///{home / 'mlflow.db'}",
                                   home / "mlartifacts")
    server.start()
    try:
        wait_for(lambda: server.exited() is None and server.check_ready(), 180, "the MLflow UI")
        yield server.url
    finally:
        server.send_stop()
        deadline = time.monotonic() + 30
        while not server.stopped() and time.monotonic() < deadline:
            time.sleep(0.2)
        server.send_stop(9)  # SIGKILL to what is left, if anything
        server.process.wait(timeout=10)


class MlflowPage:
    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        self.page = self.browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        self.page.set_default_timeout(60_000)

    def open(self, url: str, expect: str):
        """Go to `url` and wait until `expect` is shown. (The MLflow UI keeps polling, so the
        network is never idle: the page is ready when what we look for is there.)"""
        self.page.goto(url, wait_until="domcontentloaded")
        self.wait_for_text(expect)
        return self.page

    def wait_for_text(self, text: str) -> None:
        self.page.get_by_text(text, exact=True).first.wait_for(state="visible")

    def text(self) -> str:
        return self.page.inner_text("body")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_links_open_the_champion_its_run_metrics_and_plots(trained, mlflow_ui):
    from playwright.sync_api import sync_playwright

    registered, report = trained["registered"], trained["report"]
    version_url = registered["mlflow_model_version"].url
    assert version_url == f"{mlflow_ui}/#/models/{MODEL}/versions/1"
    run_id = registered["mlflow_run_id"].value
    roc_auc = report["metric/roc_auc"].value

    with sync_playwright() as playwright:
        ui = MlflowPage(playwright)
        try:
            # the champion's model version page: name, version, alias and the run that made it
            page = ui.open(version_url, "Version 1")
            ui.wait_for_text("Source Run")
            text = ui.text()
            assert MODEL in text and "Version 1" in text
            assert "champion" in text  # the alias
            source_run = page.locator(f'a[href*="/runs/{run_id}"]').first
            assert source_run.inner_text().strip() == RUN_NAME
            ui.shot("champion_model_version")

            # evaluation_report's link: this Dagster run's MLflow run, then its metrics
            ui.open(report["mlflow_run_search"].url, "1 matching run")
            ui.shot("evaluation_report_run_search")
            page.get_by_role("link", name=RUN_NAME).first.click()
            ui.wait_for_text("roc_auc")
            assert run_id in page.url
            text = ui.text()
            for metric in ("accuracy", "roc_auc", "f1", "log_loss"):
                assert metric in text, f"metric {metric} is not on the run page"
            assert repr(roc_auc) in text, f"roc_auc {roc_auc} is not on the run page"
            ui.shot("evaluation_report_run")

            # the run's artifacts: a plot the evaluation drew, read from the home's folder
            ui.open(f"{mlflow_ui}/#/experiments/{run_experiment(page.url)}/runs/{run_id}"
                    "/artifacts/plots/roc_curve.png", "roc_curve.png")
            # the UI fetches the file and shows it from a blob: address
            plot = page.locator("img[src^='blob:']").first
            plot.wait_for(state="visible")
            wait_for(lambda: plot.evaluate("img => img.complete && img.naturalWidth > 0"), 30,
                     "the ROC curve to load")
            ui.shot("run_artifacts_roc_curve")
        finally:
            ui.browser.close()


def run_experiment(run_page_url: str) -> str:
    """The experiment id of an MLflow UI run page address (…/#/experiments/<id>/runs/…)."""
    return run_page_url.split("/#/experiments/", 1)[1].split("/", 1)[0]
