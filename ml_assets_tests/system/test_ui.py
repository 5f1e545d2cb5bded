"""The Dagster UI in a real browser: `dagster dev` on 127.0.0.1 in a temporary home, its
pipelines folder (ML_ASSETS_PIPELINES) holding the two demo pipeline files and a broken third,
trains both demo pipelines by itself and blocks a bad file; headless Chromium (Debian's, driven
by Playwright) then checks what a user looks at: one group of seven assets per pipeline and their
lineage, the evaluation report with its metrics and plots, the checks of each version, the
data-version partitions (a blocked version fails its check and paints no asset as failed), what
an edit of the model's hyperparameters makes stale (the same answer as `ml-assets run
--changed`), and the broken file shown as an asset and a sensor of its own while the others
load. Full-page screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import dagster as dg
import pytest

from ml_assets.graph import ALL_ASSETS, SCORING_ASSETS, DagsterNames
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import DagsterDev, wait_for
from ml_assets_tests.e2e.services import BIN

pytestmark = pytest.mark.system

ARTIFACTS = REPO / "test-artifacts" / "ui"
ASSETS = list(ALL_ASSETS)
# The demo pipeline whose pages are looked at, and the other one beside it.
PIPELINE = "breast_cancer"
OTHER = "diabetes"
# A pipeline file with a typo in its task, beside the two demo files.
BROKEN = "name: broken\ntarget: outcome\ntask: clasification\n"
BROKEN_ERROR = "key 'task': expected one of 'classification' or 'regression', got 'clasification'"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def trained_ui(tmp_path):
    """`dagster dev` over a pipelines folder (the two demo files and a broken one) that has
    trained both demo pipelines (champions) and blocked a breast cancer file missing a column."""
    from ml_assets.environment import BUNDLED_PIPELINES
    from ml_assets.registry.mlflow_wiring import RegisteredModel
    from ml_assets.storage import VersionedStore

    pipelines = tmp_path / "our_pipelines"
    pipelines.mkdir()
    for demo_file in BUNDLED_PIPELINES.glob("*.yaml"):
        (pipelines / demo_file.name).write_text(demo_file.read_text())
    (pipelines / "broken.yaml").write_text(BROKEN)
    dev = DagsterDev(tmp_path, {"ML_ASSETS_PIPELINES": str(pipelines)})
    try:
        wait_for(lambda: urllib.request.urlopen(f"{dev.url}/server_info", timeout=2).status == 200,
                 120, "the Dagster webserver")
        demo = subprocess.run([str(BIN / "ml-assets"), "demo"], cwd=tmp_path, env=dev.env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert demo.returncode == 0, demo.stderr
        home = tmp_path / "home"
        instance = dev.instance()

        def finished_runs(key):
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
            return [r for r in runs if r.is_finished]

        def champion_trained(pipeline: str) -> str:
            """The demo file's data version, once its sensor-requested run made it champion."""
            store = VersionedStore(home / "store", pipeline)
            # Watched through the Dagster instance, not the MLflow store: a test polling a
            # fresh MLflow sqlite file races the run that creates its tables.
            key = wait_for(lambda: next(iter(store.versions()), None), 120,
                           f"the {pipeline} demo file to become a data version")
            # both pipelines train at once: a validation run each, then the run of the rest
            [run] = wait_for(lambda: [r for r in finished_runs(key) if r.tags.get("ml_assets/stage") == "train"],
                             420, f"the sensor's training run of {key}", interval=2)
            assert run.status == dg.DagsterRunStatus.SUCCESS, dev.log_text()[-3000:]
            assert run.job_name == DagsterNames.of(pipeline).job
            registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", pipeline)
            assert registry.champion()["data_version"] == key
            return key

        good = champion_trained(PIPELINE)
        other_good = champion_trained(OTHER)

        import pandas as pd

        landing = home / "landing" / PIPELINE  # a pipeline of a folder lands in its own subfolder
        bad_rows = pd.read_csv(landing / "breast_cancer.csv").head(120).drop(columns=["mean_area"])
        (landing / "scanner_b.csv").write_text(bad_rows.to_csv(index=False))
        store = VersionedStore(home / "store", PIPELINE)
        bad = wait_for(lambda: next((k for k in store.versions() if k.startswith("scanner_b-")), None),
                       120, "scanner_b.csv to become a data version")
        [run] = wait_for(lambda: finished_runs(bad), 180, "the bad version's run to finish", interval=2)
        assert run.status == dg.DagsterRunStatus.FAILURE
        yield dev, pipelines, good, bad, other_good
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

    def graph_groups(self) -> dict[str, set[str]]:
        """{group: the asset names on the nodes drawn inside its box} of an expanded graph.
        A group's header carries its full name as a tooltip; a node belongs to the group
        whose box holds its centre."""
        boxes = self.page.locator("foreignObject").evaluate_all(
            "nodes => nodes.map(n => { const r = n.getBoundingClientRect();"
            " const tip = n.querySelector('[data-tooltip]');"
            " return {group: tip ? tip.getAttribute('data-tooltip') : null,"
            " label: ((n.firstElementChild && n.firstElementChild.innerText) || '')"
            ".trim().split('\\n')[0].trim(), x: r.x, y: r.y, w: r.width, h: r.height}; })")
        groups = [b for b in boxes if b["group"]]
        found: dict[str, set[str]] = {g["group"]: set() for g in groups}
        for node in boxes:
            if node["group"] or not node["label"]:
                continue
            cx, cy = node["x"] + node["w"] / 2, node["y"] + node["h"] / 2
            owners = [g["group"] for g in groups
                      if g["x"] <= cx <= g["x"] + g["w"] and g["y"] <= cy <= g["y"] + g["h"]]
            assert len(owners) == 1, f"node {node['label']!r} drawn in groups {owners}"
            found[owners[0]].add(_full_name(node["label"]))
        return found

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

    dev, pipelines, good, bad, other_good = trained_ui
    for old in ARTIFACTS.glob("*.png") if ARTIFACTS.exists() else []:
        old.unlink()
    with sync_playwright() as playwright:
        browser = Browser(playwright, dev.url)
        try:
            _asset_graph_and_lineage(browser)
            _evaluation_report(browser, good)
            _checks(browser, good, bad)
            _partitions(browser, good, bad)
            _staleness(browser, dev, pipelines, good, other_good)
            _broken_pipeline_file(browser, pipelines)
        finally:
            browser.close()
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == sorted(
        ["01_asset_graph.png", "02_lineage_downstream_of_features.png",
         "03_lineage_upstream_of_registered_model_version.png", "04_evaluation_report.png",
         "05_evaluation_plots.png", "06_data_contract_checks.png", "07_quality_gate_checks.png",
         "08_data_version_partitions.png", "08b_catalog_after_blocked_version.png", "09_runs.png",
         "10_model_unsynced_after_edit.png",
         "11_evaluation_report_unsynced_after_model.png", "12_invalid_pipeline_file_asset.png",
         "13_automation_with_invalid_pipeline_file_sensor.png", "14_invalid_pipeline_file_sensor.png"])


def _asset_graph_and_lineage(browser: Browser):
    page = browser.open("/asset-groups", "Global asset lineage")
    # one group per pipeline (and one for the files that could not be loaded), shown collapsed
    page.get_by_text("invalid_pipeline_files", exact=True).first.wait_for()
    # each pipeline's group also holds its scoring assets (partitioned by scoring batch)
    graph = set(ASSETS) | set(SCORING_ASSETS)
    expected = {PIPELINE: graph, OTHER: graph, "invalid_pipeline_files": {"broken"}}
    # "Expand all groups", by the keyboard shortcut the graph's menu shows beside it
    page.keyboard.press("Alt+KeyE")
    wait_for(lambda: browser.graph_groups() == expected, 30, "every group expanded", interval=0.5)
    browser.shot("01_asset_graph")

    browser.open(f"/assets/{PIPELINE}/features?view=lineage&lineageScope=downstream&lineageDepth=5",
                 "Downstream")
    wait_for(lambda: len(browser.graph_nodes()) >= 5, 30, "the downstream lineage graph", interval=0.5)
    # the registered model's lineage goes on to the batches it scores
    assert browser.graph_nodes() == {"features", "model", "drift_report", "evaluation_report",
                                     "registered_model_version", "predictions", "live_performance"}
    browser.shot("02_lineage_downstream_of_features")

    browser.open(f"/assets/{PIPELINE}/registered_model_version?view=lineage&lineageScope=upstream"
                 "&lineageDepth=5", "Upstream")
    wait_for(lambda: len(browser.graph_nodes()) >= 6, 30, "the upstream lineage graph", interval=0.5)
    assert browser.graph_nodes() == set(ASSETS) - {"drift_report"}
    browser.shot("03_lineage_upstream_of_registered_model_version")


def _evaluation_report(browser: Browser, good: str):
    page = browser.open(f"/assets/{PIPELINE}/evaluation_report?view=partitions&partition={good}", good)
    page.get_by_text("metric/roc_auc", exact=True).first.wait_for()
    text = browser.text()
    for name in ("metric/accuracy", "metric/roc_auc", "metric/f1", "metric/log_loss", "decision", "plots"):
        assert name in text, name
    roc_auc = float(re.search(r"metric/roc_auc\s+([0-9.]+)", text)[1])
    assert 0.95 < roc_auc <= 1.0
    # the decision's whole sentence, at the start of its cell ("not promoted: ..." is not it)
    assert re.search(r"(?:^|\s)promoted: no champion yet, and the challenger with roc_auc [0-9.]+ passed "
                     r"every gate\.", text), text
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
    page = browser.open(f"/assets/{PIPELINE}/{asset}?view=checks&checkDetail={check}", check)
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


def _partition_counts(browser: Browser, asset: str, bad: str) -> dict[str, int]:
    """The partition status counts an asset's Partitions tab shows: {"Failed": 0, ...}."""
    page = browser.open(f"/assets/{PIPELINE}/{asset}?view=partitions", "Partitions")
    page.get_by_text(bad, exact=True).first.wait_for()
    return {label: int(n) for label, n in
            re.findall(r"^(Failed|Materialized|Materializing|Missing) \((\d+)\)$", browser.text(), re.M)}


def _partitions(browser: Browser, good: str, bad: str):
    """The blocked version paints nothing red: no asset has a failed partition. raw_data and
    validated_data hold both versions (the blocked one with its failed check); every asset after
    them holds the good version and is missing the blocked one, which was never planned."""
    for asset in ASSETS:
        counts = _partition_counts(browser, asset, bad)
        validated = asset in ("raw_data", "validated_data")
        expected = {"Failed": 0, "Materialized": 2 if validated else 1, "Materializing": 0,
                    "Missing": 0 if validated else 1}
        assert counts == expected, (asset, counts)
        if asset == "registered_model_version":
            assert good in browser.text()
            browser.shot("08_data_version_partitions")
    page = browser.open("/assets", "Catalog")
    page.get_by_text(f"{PIPELINE} / validated_data", exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")
    browser.shot("08b_catalog_after_blocked_version")

    page = browser.open("/runs", "Runs")
    page.get_by_text("Failure", exact=False).first.wait_for()
    browser.shot("09_runs")


STALENESS = """query($partition: String!, $keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path }
  staleStatus(partition: $partition)
  staleCauses(partition: $partition) { reason key { path } } } }"""


def _stale_in_ui(dev: DagsterDev, partition: str, pipeline: str = PIPELINE) -> dict[str, list[str]]:
    """What the UI marks Unsynced for a data version of a pipeline:
    {asset: ["<slug>/<asset>: <reason>", ...]}; every one of the pipeline's assets answers.

    Asked of the webserver's GraphQL endpoint, as the UI's pages do."""
    names = DagsterNames.of(pipeline)
    keys = [{"path": [names.slug, asset]} for asset in ASSETS]
    request = urllib.request.Request(
        f"{dev.url}/graphql",
        data=json.dumps({"query": STALENESS, "variables": {"partition": partition, "keys": keys}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    nodes = json.loads(urllib.request.urlopen(request, timeout=60).read())["data"]["assetNodes"]
    assert sorted(node["assetKey"]["path"] for node in nodes) == sorted(k["path"] for k in keys)
    return {
        node["assetKey"]["path"][-1]: ["/".join(c["key"]["path"]) + f": {c['reason']}" for c in node["staleCauses"]]
        for node in nodes
        if node["staleStatus"] == "STALE"
    }


def _unsynced_tag(browser: Browser, asset: str, partition: str) -> bool:
    browser.open(f"/assets/{PIPELINE}/{asset}?view=partitions&partition={partition}", "Latest materialization")
    return "Unsynced" in browser.text()


def _staleness(browser: Browser, dev: DagsterDev, pipelines, good: str, other_good: str):
    """Edit one pipeline's model.params, reload: the UI marks its model Unsynced and nothing
    upstream nor in the other pipeline; once model is rematerialised, what follows it;
    `ml-assets run --changed` then reruns exactly that."""
    assert _stale_in_ui(dev, good) == {}
    assert _stale_in_ui(dev, other_good, OTHER) == {}
    pipeline_file = pipelines / f"{PIPELINE}.yaml"
    pipeline_file.write_text(
        pipeline_file.read_text() + "model:\n  params: {learning_rate: 0.05, max_iter: 200}\n")
    page = browser.open("/asset-groups", "Global asset lineage")
    page.get_by_role("button", name="Reload definitions").click()
    stale = wait_for(lambda: _stale_in_ui(dev, good), 60, "the reloaded definitions", interval=1)
    assert stale == {"model": [f"{PIPELINE}/model: has a new code version"]}
    assert _stale_in_ui(dev, other_good, OTHER) == {}
    assert _unsynced_tag(browser, "model", good)
    browser.shot("10_model_unsynced_after_edit")
    assert not _unsynced_tag(browser, "features", good)

    # Dagster marks what follows model once model has a new data version.
    materialize = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_assets.definitions",
         "--select", f"{PIPELINE}/model", "--partition", good],
        cwd=dev.root, env=dev.env, capture_output=True, text=True, timeout=300, check=False)
    assert materialize.returncode == 0, materialize.stderr[-3000:]
    assert _stale_in_ui(dev, good) == {
        "evaluation_report": [f"{PIPELINE}/model: has a new data version"],
        "registered_model_version": [f"{PIPELINE}/model: has a new data version"],
    }
    assert _unsynced_tag(browser, "evaluation_report", good)
    browser.shot("11_evaluation_report_unsynced_after_model")

    # Every pipeline, as a user runs it: the broken file beside them makes the exit 2 and is
    # named, and hides neither pipeline's result.
    changed = subprocess.run([str(BIN / "ml-assets"), "run", "--changed"], cwd=dev.root, env=dev.env,
                             capture_output=True, text=True, timeout=300, check=False)
    output = changed.stdout + changed.stderr
    assert changed.returncode == 2, output
    assert f"error: pipeline file not loaded: {pipelines / 'broken.yaml'}: {BROKEN_ERROR}" in changed.stderr, output
    ours, others = changed.stdout.split(f"=== {OTHER} ===")
    assert f"{good}  (breast_cancer.csv): 2 stale asset(s)" in ours, output
    # the steps of the run: exactly the two stale assets, redone
    steps = re.findall(r"^  (\w+) +(ok|BLOCKED|FAILED|skipped) ", ours, re.MULTILINE)
    assert steps == [("evaluation_report", "ok"), ("registered_model_version", "ok")], output
    assert "nothing stale: 1 data version(s) up to date" in others, output
    assert re.search(rf"^  {PIPELINE} +ok$", others, re.MULTILINE), output
    assert re.search(rf"^  {OTHER} +ok$", others, re.MULTILINE), output
    assert re.search(r"^  broken\.yaml +not loaded: invalid pipeline file$", others, re.MULTILINE), output
    assert _stale_in_ui(dev, good) == {}
    assert _stale_in_ui(dev, other_good, OTHER) == {}


def _broken_pipeline_file(browser: Browser, pipelines):
    """The broken file beside the two pipelines: an asset of the group invalid_pipeline_files
    whose description is the error, and a running sensor of its own saying the same."""
    page = browser.open("/assets/invalid_pipeline_files/broken", "Description")
    page.get_by_text("NOT LOADED", exact=False).first.wait_for()
    text = browser.text()
    assert f"NOT LOADED: {pipelines / 'broken.yaml'}: {BROKEN_ERROR}" in text, text
    assert "invalid_pipeline_files" in text and "Never materialized" in text
    browser.shot("12_invalid_pipeline_file_asset")

    page = browser.open("/automation", "broken__invalid_pipeline_file")
    listed = {line.strip() for line in browser.text().splitlines()}
    expected = {"broken__invalid_pipeline_file"} | {
        getattr(DagsterNames.of(p), sensor)
        for p in (PIPELINE, OTHER)
        for sensor in ("new_data_sensor", "drift_sensor", "run_failure_notifier", "weekly_retrain")
    }
    assert expected <= listed, expected - listed
    browser.shot("13_automation_with_invalid_pipeline_file_sensor")

    page.get_by_role("link", name="broken__invalid_pipeline_file").first.click()
    page.get_by_text("Pipeline file not loaded", exact=False).first.wait_for()
    page.wait_for_load_state("networkidle")
    text = browser.text()
    assert f"Pipeline file not loaded: {pipelines / 'broken.yaml'}: {BROKEN_ERROR}" in text, text
    assert "Running" in text
    browser.shot("14_invalid_pipeline_file_sensor")
