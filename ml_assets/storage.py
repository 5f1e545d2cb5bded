"""The versioned store: immutable data-version snapshots and everything derived from them.

Layout, one folder per pipeline so many pipelines can share a home::

    $ML_ASSETS_HOME/store/<pipeline>/
        versions.json                 registry of data versions (key -> sha256, source, time)
        landing_index.json            landing path -> (size, mtime, sha256): known files are never re-hashed
        run_requests.json             versions asked to run again (`ml-assets contract accept`)
        versions/<key>/source/<file>  the landed bytes, copied unchanged
        versions/<key>/<asset>.parquet | .json | .skops (+ .sha256)   derived artifacts
        scoring/, labels/             scoring batches and late labels, laid out as above
        ledger.jsonl                  the promotion ledger, one record per line, append-only

Writes are atomic (temporary file + rename) and registration holds a file lock, so two
processes scanning the same landing folder register each version once.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from ml_assets.core.hashing import copy_and_hash, sha256_file, version_key


class StoreError(RuntimeError):
    """The store cannot be written or read; str() names the path and the reason."""


@dataclass(frozen=True)
class VersionRecord:
    key: str
    sha256: str
    source_name: str
    source_path: str
    size: int
    registered_at: str
    # Why a version the pipeline made itself exists (e.g. "decay": the labelled live rows of a
    # decayed champion); None for a landed file, and in registries written before this field.
    trigger: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["trigger"] is None:
            del data["trigger"]  # a landed file's record reads as it always has
        return data


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    new: list[VersionRecord]
    duplicates: list[Skipped]
    refused: list[Skipped]
    unsettled: list[Skipped] = ()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp_path)` then rename over `path`; nothing half-written is ever seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True, default=str)))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


class VersionedStore:
    def __init__(self, root: Path, pipeline: str):
        self.root = Path(root)
        self.pipeline = pipeline
        self.base = self.root / pipeline

    # --- paths ---
    @property
    def versions_file(self) -> Path:
        return self.base / "versions.json"

    @property
    def landing_index_file(self) -> Path:
        return self.base / "landing_index.json"

    def version_dir(self, key: str) -> Path:
        return self.base / "versions" / key

    def artifact_path(self, key: str, name: str, ext: str) -> Path:
        return self.version_dir(key) / f"{name}.{ext}"

    def find_artifact(self, key: str, name: str) -> Path | None:
        for ext in ("parquet", "json", "skops"):
            path = self.artifact_path(key, name, ext)
            if path.exists():
                return path
        return None

    def _lock(self, name: str = ".lock") -> FileLock:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.base}: {exc.strerror or exc}") from None
        return FileLock(str(self.base / name), timeout=-1 if name == ".run.lock" else 600)

    def run_lock(self) -> FileLock:
        """Held by `ml-assets run` for its whole run: two runs on one store take turns."""
        return self._lock(".run.lock")

    # --- registry of data versions ---
    def versions(self) -> dict[str, VersionRecord]:
        raw = read_json(self.versions_file, {}) or {}
        return {key: VersionRecord(**rec) for key, rec in raw.items()}

    def version(self, key: str) -> VersionRecord | None:
        return self.versions().get(key)

    # --- which versions were handed to Dagster (a partition added, a run requested) ---
    @property
    def claimed_file(self) -> Path:
        return self.base / "claimed.json"

    def mark_claimed(self, keys: list[str]) -> None:
        """Remember that these versions have their partition and run; lets a no-op
        `ml-assets run` answer without loading Dagster."""
        if not keys:
            return
        with self._lock():
            claimed = set(read_json(self.claimed_file, []) or [])
            write_json(self.claimed_file, sorted(claimed | set(keys)))

    def unclaimed(self) -> list[str]:
        claimed = set(read_json(self.claimed_file, []) or [])
        return [key for key in self.versions() if key not in claimed]

    # --- runs asked for again (`ml-assets contract accept`), consumed once by the sensor or
    # by `ml-assets run`: whoever takes a request first runs it ---
    @property
    def run_requests_file(self) -> Path:
        return self.base / "run_requests.json"

    def _run_requests(self) -> list[dict]:
        try:
            data = read_json(self.run_requests_file, []) or []
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the run requests {self.run_requests_file}: {exc}") from None
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def request_run(self, run_key: str, data_version: str, **details: Any) -> bool:
        """Record a request to run `data_version` again; False if `run_key` was requested before."""
        with self._lock():
            requests = self._run_requests()
            if any(r.get("run_key") == run_key for r in requests):
                return False
            requests.append(
                {
                    "run_key": run_key,
                    "data_version": data_version,
                    "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    **details,
                    "consumed_by": None,
                    "consumed_at": None,
                }
            )
            try:
                write_json(self.run_requests_file, requests)
            except OSError as exc:
                raise StoreError(
                    f"cannot write the run request {self.run_requests_file}: {exc.strerror or exc}"
                ) from None
            return True

    def pending_run_requests(self) -> list[dict]:
        return [r for r in self._run_requests() if not r.get("consumed_by")]

    def take_run_requests(self, consumer: str) -> list[dict]:
        """The pending requests, oldest first, marked as consumed by `consumer` (kept as a record)."""
        with self._lock():
            requests = self._run_requests()
            taken = [r for r in requests if not r.get("consumed_by")]
            if not taken:
                return []
            now = datetime.now(UTC).isoformat(timespec="seconds")
            for request in taken:
                request.update(consumed_by=consumer, consumed_at=now)
            try:
                write_json(self.run_requests_file, requests)
            except OSError as exc:
                raise StoreError(
                    f"cannot update the run requests {self.run_requests_file}: {exc.strerror or exc}"
                ) from None
            return [dict(r) for r in taken]

    def snapshot_path(self, key: str) -> Path:
        record = self.version(key)
        if record is None:
            raise StoreError(f"data version {key!r} is not registered in {self.versions_file}")
        return self.version_dir(key) / "source" / record.source_name

    def scan_landing(self, landing_dir: Path, pattern: str, settle_seconds: float = 0.0) -> ScanResult:
        """Register every new file in `landing_dir` matching `pattern`, oldest first.

        A file modified less than `settle_seconds` ago is left for a later scan: it may still
        be being written (copied, uploaded), and a half-written file must not become a version.
        """
        landing_dir = Path(landing_dir)
        if not landing_dir.is_dir():
            return ScanResult([], [], [])
        landing_real = landing_dir.resolve()
        candidates, unsettled = [], []
        now_ns = time.time_ns()
        for path in landing_dir.glob(pattern):
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished, or a dangling symlink
            if not path.is_file():
                continue
            age = (now_ns - stat.st_mtime_ns) / 1e9
            if age < settle_seconds:
                unsettled.append(Skipped(str(path), f"still being written (modified {age:.1f}s ago)"))
                continue
            candidates.append((stat.st_mtime_ns, path.name, path, stat))
        candidates.sort()

        new: list[VersionRecord] = []
        duplicates: list[Skipped] = []
        refused: list[Skipped] = []
        with self._lock():
            index = read_json(self.landing_index_file, {}) or {}
            versions = self.versions()
            by_sha = {rec.sha256: rec.key for rec in versions.values()}
            changed = False
            for _, _, path, stat in candidates:
                entry = index.get(str(path))
                if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
                    continue  # known and unchanged: never re-hashed
                if path.is_symlink() and not path.resolve().is_relative_to(landing_real):
                    refused.append(
                        Skipped(str(path), f"a symlink pointing outside the landing folder ({path.resolve()})")
                    )
                    continue
                record, dup_of = self._register(path, versions, by_sha)
                index[str(path)] = {
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "sha256": record.sha256 if record else dup_of[1],
                }
                changed = True
                if record:
                    versions[record.key] = record
                    by_sha[record.sha256] = record.key
                    new.append(record)
                else:
                    duplicates.append(Skipped(str(path), f"same bytes as data version {dup_of[0]}"))
            try:
                if new:
                    write_json(self.versions_file, {k: r.to_dict() for k, r in versions.items()})
                if changed:
                    write_json(self.landing_index_file, index)
            except OSError as exc:
                raise StoreError(
                    f"cannot update the store's registry in {self.base}: {exc.strerror or exc}"
                ) from None
        return ScanResult(new, duplicates, refused, unsettled)

    def _register(self, path: Path, versions, by_sha) -> tuple[VersionRecord | None, tuple[str, str] | None]:
        staging = self.base / "staging"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=staging)
        except OSError as exc:
            raise StoreError(f"cannot write into the store at {staging}: {exc.strerror or exc}") from None
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            try:
                sha = copy_and_hash(path, tmp_path)
            except OSError as exc:
                raise StoreError(f"cannot copy {path} into the store at {staging}: {exc.strerror or exc}") from None
            if sha in by_sha:
                return None, (by_sha[sha], sha)
            key = version_key(path.name, sha)
            target = self.version_dir(key) / "source" / path.name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_path, target)
                os.chmod(target, 0o444)  # the snapshot is immutable
            except OSError as exc:
                raise StoreError(f"cannot write the snapshot {target}: {exc.strerror or exc}") from None
            record = VersionRecord(
                key=key,
                sha256=sha,
                source_name=path.name,
                source_path=str(path),
                size=target.stat().st_size,
                registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            return record, None
        finally:
            tmp_path.unlink(missing_ok=True)

    def register_generated(self, file_name: str, write: Callable[[Path], None],
                           trigger: str) -> tuple[VersionRecord, bool]:
        """Register a table the pipeline wrote itself (no landing file) as a data version:
        `write(path)` writes it, then it is keyed `<stem>-<sha12>` like a landed file, kept
        read-only and recorded with its `trigger`. (the record, True) when new; (the record of
        the version with the same bytes, False) when there is one already."""
        staging = self.base / "staging"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".generated.", dir=staging)
        except OSError as exc:
            raise StoreError(f"cannot write into the store at {staging}: {exc.strerror or exc}") from None
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            try:
                write(tmp_path)
                sha = sha256_file(tmp_path)
            except OSError as exc:
                raise StoreError(f"cannot write {file_name} into the store at {staging}: "
                                 f"{exc.strerror or exc}") from None
            with self._lock():
                versions = self.versions()
                same = next((r for r in versions.values() if r.sha256 == sha), None)
                if same is not None:
                    return same, False
                key = version_key(file_name, sha)
                target = self.version_dir(key) / "source" / file_name
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp_path, target)
                    os.chmod(target, 0o444)  # the snapshot is immutable
                    record = VersionRecord(
                        key=key, sha256=sha, source_name=file_name, source_path=str(target),
                        size=target.stat().st_size,
                        registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        trigger=trigger,
                    )
                    versions[key] = record
                    write_json(self.versions_file, {k: r.to_dict() for k, r in versions.items()})
                except OSError as exc:
                    raise StoreError(f"cannot register {target} in {self.versions_file}: "
                                     f"{exc.strerror or exc}") from None
                return record, True
        finally:
            tmp_path.unlink(missing_ok=True)

    def verify_snapshot(self, key: str) -> Path:
        """The snapshot's path, after checking its bytes still hash to the registered sha256."""
        record = self.version(key)
        if record is None:
            raise StoreError(f"data version {key!r} is not registered in {self.versions_file}")
        path = self.version_dir(key) / "source" / record.source_name
        if not path.exists():
            raise StoreError(f"the snapshot of {key} is missing from the store: {path}")
        actual = sha256_file(path)
        if actual != record.sha256:
            raise StoreError(
                f"the snapshot of {key} at {path} was modified: sha256 {actual[:12]} "
                f"!= registered {record.sha256[:12]}"
            )
        return path



def scoring_store(store_root: Path, pipeline: str) -> VersionedStore:
    """A pipeline's scoring batches, registered like its data versions (content-hashed,
    immutable, deduplicated), under `<store>/<pipeline>/scoring/`: each batch's file in
    `versions/<batch>/source/`, its predictions beside it."""
    return VersionedStore(Path(store_root) / pipeline, "scoring")


def labels_store(store_root: Path, pipeline: str) -> VersionedStore:
    """A pipeline's files of late labels, registered the same way under
    `<store>/<pipeline>/labels/`."""
    return VersionedStore(Path(store_root) / pipeline, "labels")


# --- artifacts: frames as Parquet, reports as JSON, models as skops with a recorded checksum ---
TRUSTED_MODEL_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.", "scipy.")
# functools.partial wraps a function that skops lists (and we vet) on its own; histogram
# gradient boosting with categorical features keeps partial(sklearn...check_array).
TRUSTED_MODEL_TYPES = frozenset({"functools.partial"})


def save_frame(path: Path, df) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


class RecentFrame:
    """The frame an IO manager last wrote to or read from the store, for the next step.

    Under the in-process executor every step of a run shares one process and one IO manager,
    so the step after `features` can take the frame `features` just wrote instead of decoding
    the Parquet file again (each consumer of the features table did: model, evaluation_report,
    drift_report; `benchmarks/tuning.py` measures what that saves). The stored file stays the
    record; the frame is handed on only while that file is the one it was written to or read
    from (same inode, size and mtime: an atomic rewrite by another run changes the inode). One
    slot, so at most one table is kept alive; each IO manager holds its own and clears it when
    its run ends. Steps treat input frames as read-only, as they must under any IO manager
    that can hand one object to several consumers.
    """

    def __init__(self) -> None:
        self._entry: tuple[Path, tuple, Any] | None = None

    @staticmethod
    def _signature(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def put(self, path: Path, frame) -> None:
        self._entry = (path, self._signature(path), frame)

    def get(self, path: Path):
        if self._entry is None:
            return None
        held, signature, frame = self._entry
        if held != path or signature is None or signature != self._signature(path):
            return None
        return frame

    def clear(self) -> None:
        self._entry = None



def load_frame_shared(path: Path, recent: RecentFrame):
    """load_frame, or the frame `recent` holds of that same file."""
    frame = recent.get(path)
    if frame is None:
        recent.clear()  # the old table is not kept alive while the new one is read
        frame = load_frame(path)
        recent.put(path, frame)
    return frame


def load_frame(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


def prepare_model_io() -> None:
    """Import scipy before a run's other libraries, so that skops stays cheap to import.

    skops (save_model, load_model, and MLflow's log_model) finds the module of each of
    scipy's ufuncs, which name none, by scanning sys.modules in import order when it is first
    imported. In a run that imported Great Expectations and MLflow first, scipy sits behind
    4,000 other modules and the scan took 0.9 s instead of 0.4 s. Every run imports scipy
    anyway (scikit-learn needs it), so importing it first costs nothing more.
    """
    import scipy.special  # noqa: F401


def save_model(path: Path, model) -> str:
    """Save with skops (a format that does not run code on load) and record its sha256."""
    import skops.io as sio

    atomic_write(path, lambda p: sio.dump(model, p))
    digest = sha256_file(path)
    atomic_write(path.with_suffix(".sha256"), lambda p: p.write_text(digest + "\n"))
    return digest


def load_model(path: Path):
    """Load a model saved by save_model, refusing it if its bytes changed since."""
    import skops.io as sio

    recorded_file = path.with_suffix(".sha256")
    if not recorded_file.exists():
        raise StoreError(f"{path}: no recorded checksum ({recorded_file.name}); refusing to load")
    recorded = recorded_file.read_text().strip()
    actual = sha256_file(path)
    if actual != recorded:
        raise StoreError(
            f"{path}: checksum mismatch (sha256 {actual[:12]} != recorded {recorded[:12]}); refusing to load"
        )
    untrusted = sio.get_untrusted_types(file=path)
    unknown = [
        t for t in untrusted
        if not t.startswith(TRUSTED_MODEL_PREFIXES) and t not in TRUSTED_MODEL_TYPES
    ]
    if unknown:
        raise StoreError(f"{path}: contains types outside scikit-learn/numpy: {unknown}; refusing to load")
    return sio.load(path, trusted=untrusted)
