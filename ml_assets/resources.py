"""Our resources: the versioned store, its IO manager, and read access to the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from pydantic import PrivateAttr

from ml_assets.storage import (
    RecentFrame,
    StoreError,
    VersionedStore,
    load_frame_shared,
    load_model,
    prepare_model_io,
    read_json,
    save_frame,
    save_model,
    write_json,
)


class StoreResource(dg.ConfigurableResource):
    """The versioned store (see ml_assets/storage.py): a folder per pipeline under `root`."""

    root: str

    def of(self, pipeline: str) -> VersionedStore:
        return VersionedStore(Path(self.root), pipeline)


def _pipeline_of(context: dg.OutputContext) -> str:
    """The pipeline an asset belongs to, from its definition metadata (one IO manager serves
    every pipeline of the code location)."""
    from ml_assets.pipelines import PIPELINE_METADATA

    name = (context.definition_metadata or {}).get(PIPELINE_METADATA)
    if name is None:
        raise StoreError(f"{context.asset_key.to_user_string()} has no {PIPELINE_METADATA!r} "
                         "metadata: it is not an asset of an ml_assets pipeline")
    return getattr(name, "value", name)


class VersionedStoreIOManager(dg.ConfigurableIOManager):
    """Keeps every asset value in the versioned store, keyed by data version.

    Frames go to Parquet (fast, typed, no pickle), reports to JSON, models to skops with a
    recorded sha256 that is verified before any load. A frame a step of this run just wrote
    or read is handed to the next step without reading it back (storage.RecentFrame).
    """

    root: str
    _recent: RecentFrame = PrivateAttr(default_factory=RecentFrame)

    def _store(self, context: dg.OutputContext) -> VersionedStore:
        return VersionedStore(Path(self.root), _pipeline_of(context))

    def setup_for_execution(self, context) -> None:
        prepare_model_io()

    def teardown_after_execution(self, context) -> None:
        self._recent.clear()  # the run's last table is not kept alive after it

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = context.partition_key
        name = context.asset_key.path[-1]
        store = self._store(context)
        try:
            import pandas as pd

            if isinstance(obj, pd.DataFrame):
                path = store.artifact_path(key, name, "parquet")
                self._recent.clear()
                save_frame(path, obj)
                self._recent.put(path, obj)
            elif isinstance(obj, dict):
                write_json(store.artifact_path(key, name, "json"), obj)
            else:
                digest = save_model(store.artifact_path(key, name, "skops"), obj)
                context.add_output_metadata({"model_sha256": digest})
        except OSError as exc:
            raise StoreError(
                f"cannot write {name} of {key} into the store {store.version_dir(key)}: "
                f"{exc.strerror or exc}"
            ) from None

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.partition_key
        name = context.upstream_output.asset_key.path[-1]
        store = self._store(context.upstream_output)
        path = store.find_artifact(key, name)
        if path is None:
            raise StoreError(
                f"{name} of data version {key} is not in the store ({store.version_dir(key)}); "
                f"materialise {name} for this version first"
            )
        if path.suffix == ".parquet":
            return load_frame_shared(path, self._recent)
        if path.suffix == ".json":
            return read_json(path)
        return load_model(path)


class SnapshotIOManager(dg.ConfigurableIOManager):
    """raw_data's IO manager: raw_data is the landed file, which the store already holds as
    the version's snapshot (its bytes unchanged, checksummed when it was registered).

    So nothing more is written: the parsed table as Parquet would only be a second copy (half
    a second for a million rows with text columns). The step after raw_data takes the frame
    raw_data just made in this process; a step in another process, or a later run, reads the
    snapshot again as raw_data did, after checking it still hashes to the registered sha256.
    """

    root: str
    _recent: RecentFrame = PrivateAttr(default_factory=RecentFrame)

    def _store(self, context: dg.OutputContext) -> VersionedStore:
        return VersionedStore(Path(self.root), _pipeline_of(context))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        self._recent.clear()
        self._recent.put(self._store(context).snapshot_path(context.partition_key), obj)

    def load_input(self, context: dg.InputContext) -> Any:
        from ml_assets.core.tables import TableReadError, read_table

        key = context.partition_key
        store = self._store(context.upstream_output)
        frame = self._recent.get(store.snapshot_path(key))
        if frame is not None:
            return frame
        self._recent.clear()
        path = store.verify_snapshot(key)
        try:
            frame = read_table(path)
        except TableReadError as exc:
            raise StoreError(f"raw_data of data version {key}: {path} cannot be read as a "
                             f"table: {exc}") from None
        self._recent.put(path, frame)
        return frame

    def teardown_after_execution(self, context) -> None:
        self._recent.clear()
