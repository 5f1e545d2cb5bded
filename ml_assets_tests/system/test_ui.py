"""The Dagster UI in a real browser: `dagster dev` on 127.0.0.1 in a temporary home trains the
demo by itself and blocks a bad file; headless Chromium (Debian's, driven by Playwright) then
checks what a user looks at: the asset graph and its lineage, the evaluation report with its
metrics and plots, the checks of each version, the data-version partitions, and what an edit
of the model's hyperparameters makes stale (the same answer as `ml-assets run --changed`).
Full-page screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import dagster as dg
import pytest

from ml_assets.graph import ALL_ASSETS
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import DagsterDev, wait_for
from ml_assets_tests.e2e.services import BIN

pytestmark = pytest.mark.system

ARTIFACTS = REPO / "test-artifacts" / "ui"
ASSETS = list(ALL_ASSETS)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def trained_ui(tmp_path):
    """`dagster dev` that has trained the demo (champion) and blocked a file missing a column."""
    from ml_assets.registry.mlflow_wiring import ModelRegistry
    from ml_assets.storage import VersionedStore

    dev = DagsterDev(tmp_path)
    try:
        wait_for(lambda: urllib.request.urlopen(f"{dev.url}/server_info", timeout=2).status == 200,
                 120, "the Dagster webserver")
        demo = subprocess.run([str(BIN / "ml-assets"), "demo"], cwd=tmp_path, env=dev.env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert demo.returncode == 0, demo.stderr
        home = tmp_path / "home"
        store = VersionedStore(home / "store", "breast_cancer")
        instance = dev.instance()

        def finished_runs(key):
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
            return [r for r in runs if r.is_finished]

        # Watched through the Dagster instance, not the MLflow store: a test polling a fresh
        # MLflow sqlite file races the run that creates its tables.
        good = wait_for(lambda: next(iter(store.versions()), None), 120, "the demo file to become a data version")
        [run] = wait_for(lambda: finished_runs(good), 300, "the sensor's run of the demo version", interval=2)
        assert run.status == dg.DagsterRunStatus.SUCCESS, dev.log_text()[-3000:]
        registry = ModelRegistry(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", model_name="breast_cancer")
        assert registry.champion()["data_version"] == good

        import pandas as pd

        bad_rows = pd.read_csv(home / "landing" / "breast_cancer.csv").head(120).drop(columns=["mean_area"])
        (home / "landing" / "scanner_b.csv").write_text(bad_rows.to_csv(index=False))
        bad = wait_for(lambda: next((k for k in store.versions() if k.startswith("scanner_b-")), None),
                       120, "scanner_b.csv to become a data version")
        [run] = wait_for(lambda: finished_runs(bad), 180, "the bad version's run to finish", interval=2)
        assert run.status == dg.DagsterRunStatus.FAILURE
        yield dev, good, bad
    finally:
        dev.stop()


class Browser:
    def __init__(self, playwright, base_url: str):
        self.base_url = base_url
        self.browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = self.browser.new_context(viewport={"width": 1600, "height": 1000})
        # As if the user had dismissed the "Join the Dagster community" dialog, which otherwise
        # pops up a second after the first page and swallows clicks.
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        self.page = context.new_page()
        self.page.set_default_timeout(30_000)

    def open(self, path: str, expect: str):
        """Go to `path` and wait until `expect` is shown."""
        self.page.goto(self.base_url + path, wait_until="domcontentloaded")
        self.page.get_by_text(expect, exact=True).first.wait_for(state="visible")
        self.page.wait_for_load_state("networkidle")
        return self.page

    def shot(self, name: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def text(self) -> str:
        return self.page.inner_text("body")

    def graph_nodes(self) -> set[str]:
        """The asset names on the graph's nodes (the first line of each node)."""
        labels = self.page.locator("foreignObject").evaluate_all(
            "nodes => nodes.map(n => ((n.firstElementChild && n.firstElementChild.innerText) || '')"
            ".trim().split('\\n')[0].trim()).filter(Boolean)")
        return {_full_name(label) for label in labels}

    def close(self):
        self.browser.close()


def _full_name(label: str) -> str:
    """Dagster shortens long names on graph nodes ("registere…_version")."""
    if "…" not in label:
        return label
    head, tail = label.split("…", 1)
    matches = [a for a in ASSETS if a.startswith(head) and a.endswith(tail)]
    return matches[0] if len(matches) == 1 else label


def test_the_ui_shows_graph_report_checks_and_versions(trained_ui):
    from playwright.sync_api import sync_playwright

    dev, good, bad = trained_ui
    for old in ARTIFACTS.glob("*.png") if ARTIFACTS.exists() else []:
        old.unlink()
    with sync_playwright() as playwright:
        browser = Browser(playwright, dev.url)
        try:
            _asset_graph_and_lineage(browser)
            _evaluation_report(browser, good)
            _checks(browser, good, bad)
            _partitions(browser, good, bad)
            _staleness(browser, dev, good)
        finally:
            browser.close()
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == sorted(
        ["01_asset_graph.png", "02_lineage_downstream_of_features.png",
         "03_lineage_upstream_of_registered_model_version.png", "04_evaluation_report.png",
         "05_evaluation_plots.png", "06_data_contract_checks.png", "07_quality_gate_checks.png",
         "08_data_version_partitions.png", "09_runs.png", "10_model_unsynced_after_edit.png",
         "11_evaluation_report_unsynced_after_model.png"])


def _asset_graph_and_lineage(browser: Browser):
    page = browser.open("/asset-groups", "Global asset lineage")
    page.locator("foreignObject").nth(len(ASSETS) - 1).wait_for()
    assert browser.graph_nodes() == set(ASSETS)
    browser.shot("01_asset_graph")

    browser.open("/assets/features?view=lineage&lineageScope=downstream&lineageDepth=5", "Downstream")
    wait_for(lambda: len(browser.graph_nodes()) >= 5, 30, "the downstream lineage graph", interval=0.5)
    assert browser.graph_nodes() == {"features", "model", "drift_report", "evaluation_report",
                                     "registered_model_version"}
    browser.shot("02_lineage_downstream_of_features")

    browser.open("/assets/registered_model_version?view=lineage&lineageScope=upstream&lineageDepth=5",
                 "Upstream")
    wait_for(lambda: len(browser.graph_nodes()) >= 6, 30, "the upstream lineage graph", interval=0.5)
    assert browser.graph_nodes() == set(ASSETS) - {"drift_report"}
    browser.shot("03_lineage_upstream_of_registered_model_version")


def _evaluation_report(browser: Browser, good: str):
    page = browser.open(f"/assets/evaluation_report?view=partitions&partition={good}", good)
    page.get_by_text("metric/roc_auc", exact=True).first.wait_for()
    text = browser.text()
    for name in ("metric/accuracy", "metric/roc_auc", "metric/f1", "metric/log_loss", "decision", "plots"):
        assert name in text, name
    roc_auc = float(re.search(r"metric/roc_auc\s+([0-9.]+)", text)[1])
    assert 0.95 < roc_auc <= 1.0
    assert "promoted" in text
    browser.shot("04_evaluation_report")

    # the plots: PNGs embedded in markdown metadata, opened from the metadata table
    page.locator("tr", has_text="plots").get_by_text("[Show Markdown]").first.click()
    dialog = page.get_by_role("dialog")
    images = dialog.locator("img[src^='data:image/png;base64,']")
    images.nth(2).wait_for()
    sizes = images.evaluate_all(
        "imgs => imgs.map(i => ({alt: i.alt, complete: i.complete, natural: i.naturalWidth, "
        "shown: i.getBoundingClientRect().width}))")
    assert [s["alt"] for s in sizes] == ["confusion matrix", "roc curve", "pr curve"]
    for size in sizes:
        # decoded (naturalWidth > 0) and shown at a readable size
        assert size["complete"] and size["natural"] >= 400 and size["shown"] >= 400, size
    browser.shot("05_evaluation_plots")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def _check_history(browser: Browser, asset: str, check: str) -> tuple[str, str]:
    """The check's overview text, then its execution history (one row per evaluation)."""
    page = browser.open(f"/assets/{asset}?view=checks&checkDetail={check}", check)
    page.get_by_text("Latest execution", exact=True).first.wait_for()
    overview = browser.text()
    page.get_by_text("Execution history", exact=True).first.click()
    page.get_by_text("Evaluation result", exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")
    return overview, browser.text()


def _checks(browser: Browser, good: str, bad: str):
    overview, text = _check_history(browser, "validated_data", "data_contract")
    assert "This is a blocking asset check." in overview
    rows = {key: _row_status(browser, key) for key in (good, bad)}
    assert rows == {good: "Passed", bad: "Failed"}, rows
    assert "column 'mean_area' is missing" in text
    browser.shot("06_data_contract_checks")

    overview, _ = _check_history(browser, "evaluation_report", "quality_gate")
    assert "This is a blocking asset check." in overview
    assert _row_status(browser, good) == "Passed"
    assert "all gates passed" in browser.text()
    browser.shot("07_quality_gate_checks")


def _row_status(browser: Browser, partition: str) -> str:
    row = browser.page.locator("tr", has_text=partition).first
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    return cells[0].strip()


def _partitions(browser: Browser, good: str, bad: str):
    page = browser.open("/assets/registered_model_version?view=partitions", "Partitions")
    page.get_by_text(bad, exact=True).first.wait_for()
    text = browser.text()
    assert good in text and bad in text
    assert "Materialized (1)" in text and "Failed (1)" in text
    browser.shot("08_data_version_partitions")

    page = browser.open("/runs", "Runs")
    page.get_by_text("Failure", exact=False).first.wait_for()
    browser.shot("09_runs")


STALENESS = """query($partition: String!) { assetNodes { assetKey { path }
  staleStatus(partition: $partition)
  staleCauses(partition: $partition) { reason key { path } } } }"""


def _stale_in_ui(dev: DagsterDev, partition: str) -> dict[str, list[str]]:
    """What the UI marks Unsynced for a data version: {asset: ["<asset>: <reason>", ...]}.

    Asked of the webserver's GraphQL endpoint, as the UI's pages do."""
    request = urllib.request.Request(
        f"{dev.url}/graphql",
        data=json.dumps({"query": STALENESS, "variables": {"partition": partition}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    nodes = json.loads(urllib.request.urlopen(request, timeout=60).read())["data"]["assetNodes"]
    return {
        node["assetKey"]["path"][-1]: [f"{c['key']['path'][-1]}: {c['reason']}" for c in node["staleCauses"]]
        for node in nodes
        if node["staleStatus"] == "STALE"
    }


def _unsynced_tag(browser: Browser, asset: str, partition: str) -> bool:
    browser.open(f"/assets/{asset}?view=partitions&partition={partition}", "Latest materialization")
    return "Unsynced" in browser.text()


def _staleness(browser: Browser, dev: DagsterDev, good: str):
    """Edit model.params, reload: the UI marks model Unsynced and nothing upstream; once model
    is rematerialised, what follows it; `ml-assets run --changed` then reruns exactly that."""
    from ml_assets.environment import BUNDLED_PIPELINE

    assert _stale_in_ui(dev, good) == {}
    # The user's own copy of the demo pipeline file, in the directory `dagster dev` runs in.
    (dev.root / "ml_assets.yaml").write_text(
        BUNDLED_PIPELINE.read_text() + "model:\n  params: {learning_rate: 0.05, max_iter: 200}\n")
    page = browser.open("/asset-groups", "Global asset lineage")
    page.get_by_role("button", name="Reload definitions").click()
    stale = wait_for(lambda: _stale_in_ui(dev, good), 60, "the reloaded definitions", interval=1)
    assert stale == {"model": ["model: has a new code version"]}
    assert _unsynced_tag(browser, "model", good)
    browser.shot("10_model_unsynced_after_edit")
    assert not _unsynced_tag(browser, "features", good)

    # Dagster marks what follows model once model has a new data version.
    materialize = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_assets.definitions",
         "--select", "model", "--partition", good],
        cwd=dev.root, env=dev.env, capture_output=True, text=True, timeout=300, check=False)
    assert materialize.returncode == 0, materialize.stderr[-3000:]
    assert _stale_in_ui(dev, good) == {
        "evaluation_report": ["model: has a new data version"],
        "registered_model_version": ["model: has a new data version"],
    }
    assert _unsynced_tag(browser, "evaluation_report", good)
    browser.shot("11_evaluation_report_unsynced_after_model")

    changed = subprocess.run([str(BIN / "ml-assets"), "run", "--changed"], cwd=dev.root, env=dev.env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "2 stale asset(s)" in changed.stdout
    for asset in ("raw_data", "validated_data", "features", "drift_report", "model"):
        assert f"  {asset:<26} skipped" in changed.stdout, changed.stdout
    for asset in ("evaluation_report", "registered_model_version"):
        assert f"  {asset:<26} ok" in changed.stdout, changed.stdout
    assert _stale_in_ui(dev, good) == {}
