"""The contract file's revisions: an inferred contract is revision 1, accepting a version keeps
the file it replaces as a numbered revision, a second accept of that version changes nothing,
and a refused accept writes nothing."""

from __future__ import annotations

import json

import pytest

from ml_assets.core.contract import ContractFileError
from ml_assets.core.contract.evolve import CannotWiden
from ml_assets.ingestion.contract_file import (
    UnknownRevision,
    accept_contract,
    accept_version,
    available_revisions,
    contract_for_version,
    load_revision,
    revision_on_disk,
    revision_path,
)
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project


@pytest.fixture
def inferred(tmp_path, monkeypatch):
    """A pipeline whose contract was inferred from the first 300 rows of breast cancer."""
    monkeypatch.setenv("ML_ASSETS_USER", "ana")
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    path = project.env.contracts_dir / "bc.json"
    first = breast_cancer().head(300)
    contract, created = contract_for_version(first, project.settings, path, "first-aaaaaaaaaaaa")
    assert created and accept_contract(contract, path, "first-aaaaaaaaaaaa")
    return project, path


def test_an_inferred_contract_is_revision_1_with_its_origin_in_the_history(inferred):
    _, path = inferred
    saved = json.loads(path.read_text())
    ours = saved["meta"]["ml_assets"]
    assert ours["revision"] == 1 and revision_on_disk(path) == 1
    [entry] = ours["history"]
    assert entry["revision"] == 1 and entry["by"] == "ana" and entry["widened"] == []
    assert entry["data_version"] == "first-aaaaaaaaaaaa"
    assert available_revisions(path) == {1: path}


def test_no_file_counts_as_the_revision_inference_will_write(tmp_path):
    assert revision_on_disk(tmp_path / "absent.json") == 1
    (tmp_path / "old.json").write_text(json.dumps({"name": "x", "expectations": [], "meta": {}}))
    assert revision_on_disk(tmp_path / "old.json") == 1  # written before revisions were kept


def test_accepting_keeps_the_previous_file_and_a_second_accept_changes_nothing(inferred):
    project, path = inferred
    before = path.read_bytes()
    slipped = breast_cancer().tail(269).copy()
    slipped["mean_area"] = slipped["mean_area"] * 1000

    outcome = accept_version(path, slipped, project.settings, "b-bbbbbbbbbbbb", "new scanner")
    assert not outcome.already_passes and outcome.revision == 2
    assert outcome.previous == revision_path(path, 1) == path.parent / "bc.revisions" / "1.json"
    assert outcome.previous.read_bytes() == before  # kept byte for byte
    assert [line.split(":")[0] for line in outcome.widened] == ["mean_area", "mean_area"]
    assert revision_on_disk(path) == 2
    assert available_revisions(path) == {1: outcome.previous, 2: path}
    assert load_revision(path, 1)["meta"]["ml_assets"]["revision"] == 1
    history = json.loads(path.read_text())["meta"]["ml_assets"]["history"]
    assert [h["revision"] for h in history] == [1, 2]
    assert history[1]["reason"] == "new scanner" and history[1]["data_version"] == "b-bbbbbbbbbbbb"

    current = path.read_bytes()
    again = accept_version(path, slipped, project.settings, "b-bbbbbbbbbbbb", "again")
    assert again.already_passes and again.revision == 2 and again.previous is None
    assert path.read_bytes() == current
    assert sorted(p.name for p in (path.parent / "bc.revisions").iterdir()) == ["1.json"]


def test_a_refused_accept_writes_nothing(inferred):
    project, path = inferred
    before = path.read_bytes()
    missing = breast_cancer().tail(269).drop(columns=["mean_area"])
    with pytest.raises(CannotWiden, match="column 'mean_area' is missing from b-cccccccccccc"):
        accept_version(path, missing, project.settings, "b-cccccccccccc")
    assert path.read_bytes() == before
    assert not (path.parent / "bc.revisions").exists()


def test_an_unknown_revision_names_the_ones_that_exist(inferred):
    _, path = inferred
    with pytest.raises(UnknownRevision, match=r"contract revision 3 does not exist for bc.json; revisions: 1$"):
        load_revision(path, 3)


def test_a_broken_contract_file_is_named_not_a_traceback(inferred):
    project, path = inferred
    path.write_text('{"name": "bc", "expectations": [')
    assert revision_on_disk(path) == 1
    with pytest.raises(ContractFileError, match="bc.json: not valid JSON at line 1"):
        accept_version(path, breast_cancer(), project.settings, "x-1")
