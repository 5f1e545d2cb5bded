"""The versioned store: content-hashed keys, duplicates, immutability, atomic artifacts."""

import os
import threading

import pandas as pd
import pytest

from ml_assets.core.hashing import sha256_file, version_key
from ml_assets.storage import (
    StoreError,
    VersionedStore,
    load_frame_shared,
    load_model,
    RecentFrame,
    save_frame,
    save_model,
)


def test_version_key_follows_the_contract():
    sha = "ab" * 32
    assert version_key("Churn Data (v2).csv", sha) == "churn_data__v2_-" + sha[:12]
    assert version_key("été.parquet", sha) == "_t_-" + sha[:12]


def test_scan_registers_new_files_once_and_skips_duplicates(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("x,y\n1,2\n")
    store = VersionedStore(tmp_path / "store", "p")
    first = store.scan_landing(landing, "*.csv")
    assert [r.source_name for r in first.new] == ["a.csv"]
    key = first.new[0].key
    snapshot = store.snapshot_path(key)
    assert snapshot.read_bytes() == (landing / "a.csv").read_bytes()
    assert key.endswith(sha256_file(landing / "a.csv")[:12])

    (landing / "copy.csv").write_bytes((landing / "a.csv").read_bytes())
    second = store.scan_landing(landing, "*.csv")
    assert second.new == [] and key in second.duplicates[0].reason
    assert store.scan_landing(landing, "*.csv").new == []  # nothing re-registered
    assert (landing / "a.csv").exists() and (landing / "copy.csv").exists()  # landing untouched
    assert len(store.versions()) == 1


def test_known_files_are_never_read_again(tmp_path, monkeypatch):
    """The landing index (size, mtime) keeps every scan from re-reading files it has seen:
    only a new file, or one whose size or mtime changed, is copied and hashed."""
    import ml_assets.storage as storage

    landing = tmp_path / "landing"
    landing.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (landing / name).write_text(f"x,y\n1,{name}\n")
    store = VersionedStore(tmp_path / "store", "p")
    first = store.scan_landing(landing, "*.csv").new
    assert len(first) == 3
    key_of = {r.source_name: r.key for r in first}

    hashed = []
    real = storage.copy_and_hash

    def counting(source, target):
        hashed.append(source.name)
        return real(source, target)

    monkeypatch.setattr(storage, "copy_and_hash", counting)
    assert store.scan_landing(landing, "*.csv").new == []
    assert hashed == []  # three known files, none read

    (landing / "d.csv").write_text("x,y\n1,d\n")
    stat = (landing / "b.csv").stat()
    os.utime(landing / "b.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**10))  # mtime moved only
    result = store.scan_landing(landing, "*.csv")
    assert sorted(hashed) == ["b.csv", "d.csv"]
    assert [r.source_name for r in result.new] == ["d.csv"]
    # b: same bytes, no new version
    assert result.duplicates[0].reason == f"same bytes as data version {key_of['b.csv']}"
    hashed.clear()
    assert store.scan_landing(landing, "*.csv").new == [] and hashed == []


def test_snapshot_survives_landing_edits_and_detects_tampering(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("x,y\n1,2\n")
    store = VersionedStore(tmp_path / "store", "p")
    key = store.scan_landing(landing, "*.csv").new[0].key
    (landing / "a.csv").write_text("x,y\n9,9\n")  # the user overwrites the file
    assert store.verify_snapshot(key).read_text() == "x,y\n1,2\n"
    new = store.scan_landing(landing, "*.csv").new
    assert len(new) == 1 and new[0].key != key  # new bytes, new version

    snapshot = store.snapshot_path(key)
    os.chmod(snapshot, 0o644)
    snapshot.write_text("x,y\n6,6\n")
    with pytest.raises(StoreError, match="modified"):
        store.verify_snapshot(key)


def test_symlink_out_of_landing_is_refused(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    (landing / "link.csv").symlink_to(outside)
    scan = VersionedStore(tmp_path / "store", "p").scan_landing(landing, "*.csv")
    assert scan.new == []
    assert scan.refused[0].reason == f"a symlink pointing outside the landing folder ({outside.resolve()})"


def test_concurrent_scans_register_each_version_once(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    for i in range(5):
        pd.DataFrame({"x": range(i + 2), "y": 1}).to_csv(landing / f"f{i}.csv", index=False)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(VersionedStore(tmp_path / "store", "p").scan_landing(landing, "*.csv"))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.new) for r in results) == 5
    assert len(VersionedStore(tmp_path / "store", "p").versions()) == 5


def test_model_checksum_is_verified_before_load(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "model.skops"
    save_model(path, model)
    assert load_model(path).predict([[3.0]])[0] == 1
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum mismatch"):
        load_model(path)


def test_a_frame_is_handed_on_only_while_its_file_is_unchanged(tmp_path):
    path, other = tmp_path / "features.parquet", tmp_path / "validated_data.parquet"
    frame = pd.DataFrame({"x": [1.0, 2.0], "plan": pd.Categorical(["a", "b"])})
    save_frame(path, frame)
    save_frame(other, frame.head(1))
    recent = RecentFrame()  # an IO manager's own
    recent.put(path, frame)
    # the next step of the run gets the very frame the previous one wrote
    assert load_frame_shared(path, recent) is frame
    # another file is read from disk, and replaces the one held
    assert len(load_frame_shared(other, recent)) == 1
    assert recent.get(path) is None
    # a file rewritten by another run is read again, never the stale frame
    recent.put(path, frame)
    save_frame(path, frame.assign(x=[9.0, 9.0]))
    reread = load_frame_shared(path, recent)
    assert reread is not frame and reread["x"].tolist() == [9.0, 9.0]
    assert reread["plan"].dtype == "category"
    path.unlink()
    assert recent.get(path) is None
