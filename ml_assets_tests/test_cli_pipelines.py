"""`ml-assets` over a folder of pipelines with a broken file among them: the good ones run and
report, the broken one is named with its file and key, and exit codes never hide either."""

import json

import yaml

from ml_assets_tests.conftest import DATASETS
from ml_assets_tests.test_cli import ALL_OK, cli, section, steps_of


def team(tmp_path):
    folder = tmp_path / "pipelines"  # ./pipelines/ is found without any variable
    folder.mkdir()
    for name in ("breast_cancer", "wine"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **DATASETS[name][1]}))
        landing = tmp_path / ".ml_assets" / "landing" / name
        landing.mkdir(parents=True)
        DATASETS[name][0]().to_csv(landing / "first.csv", index=False)
    (folder / "broken.yaml").write_text("name: churn\ntarget: churned\ntask: clasification\n")


def test_pipelines_lists_each_file_and_why_one_is_invalid(tmp_path):
    team(tmp_path)
    listed = cli(tmp_path, "pipelines")
    assert listed.returncode == 1
    folder, home = tmp_path / "pipelines", tmp_path / ".ml_assets"
    assert listed.stdout.splitlines() == [
        f"pipelines from the pipelines folder {folder}:",
        f"  breast_cancer            classification  {folder / 'breast_cancer.yaml'}",
        f"                           landing {home / 'landing' / 'breast_cancer'} (*.csv)",
        f"  INVALID {folder / 'broken.yaml'}",
        f"    {folder / 'broken.yaml'}: key 'task': expected one of 'classification' or 'regression', "
        "got 'clasification'",
        f"  wine                     classification  {folder / 'wine.yaml'}",
        f"                           landing {home / 'landing' / 'wine'} (*.csv)",
    ]
    rows = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(cli(tmp_path, "pipelines", "--json").stdout)["pipelines"]}
    assert rows["wine.yaml"]["valid"] and rows["wine.yaml"]["slug"] == "wine"
    assert rows["wine.yaml"]["landing_dir"] == str(tmp_path / ".ml_assets" / "landing" / "wine")
    assert not rows["broken.yaml"]["valid"]
    assert "expected one of 'classification' or 'regression', got 'clasification'" in rows["broken.yaml"]["error"]


def test_run_trains_every_good_pipeline_and_reports_the_broken_file(tmp_path):
    team(tmp_path)
    run = cli(tmp_path, "run")
    assert run.returncode == 2  # a pipeline file could not be loaded ...
    assert "broken.yaml: key 'task'" in run.stderr and "Traceback" not in run.stderr
    for name in ("breast_cancer", "wine"):  # ... and that hid neither good pipeline's result
        out = section(run.stdout, name)
        assert steps_of(out) == ALL_OK, out
        assert f"=> registered {name} version 1 and promoted to champion" in out
    assert "broken.yaml                    not loaded: invalid pipeline file" in run.stdout

    one = cli(tmp_path, "run", "--pipeline", "wine")
    assert one.returncode == 0 and "nothing new" in one.stdout and "breast_cancer" not in one.stdout

    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert [p["name"] for p in status["pipelines"]] == ["breast_cancer", "wine"]
    assert all(p["champion"]["version"] == 1 for p in status["pipelines"])
    [invalid] = status["invalid"]
    assert invalid["file"].endswith("broken.yaml") and "key 'task'" in invalid["error"]
    text = cli(tmp_path, "status").stdout
    assert "NOT LOADED" in text and "broken.yaml" in text

    single = json.loads(cli(tmp_path, "status", "--json", "--pipeline", "wine").stdout)
    assert single["name"] == "wine" and single["champion"]["version"] == 1


def test_commands_of_one_pipeline_ask_which_and_unknown_names_are_named(tmp_path):
    team(tmp_path)
    unnamed = cli(tmp_path, "contract", "show")
    assert unnamed.returncode == 2
    folder = tmp_path / "pipelines"
    assert unnamed.stderr == (f"error: 2 pipelines in the pipelines folder {folder} (breast_cancer, wine): "
                              "name one with --pipeline NAME\n")
    unknown = cli(tmp_path, "run", "--pipeline", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr == (f"error: no pipeline named 'nope' in the pipelines folder {folder}; "
                              "known: breast_cancer, wine\n")
    broken = cli(tmp_path, "status", "--pipeline", "churn")
    assert broken.returncode == 2
    assert broken.stderr == (f"error: no pipeline named 'churn' in the pipelines folder {folder}; "
                             "known: breast_cancer, wine; 'churn' is an invalid pipeline file here "
                             "(see `ml-assets pipelines`)\n")
