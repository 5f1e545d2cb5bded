"""Our resources: the versioned store, its IO manager, and read access to the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.storage import (
    StoreError,
    VersionedStore,
    freeze_heap,
    load_frame_shared,
    load_model,
    read_json,
    recent_frame,
    save_frame,
    save_model,
    thaw_heap,
    write_json,
)


class StoreResource(dg.ConfigurableResource):
    """The versioned store of one pipeline (see ml_assets/storage.py)."""

    root: str
    pipeline: str

    @property
    def store(self) -> VersionedStore:
        return VersionedStore(Path(self.root), self.pipeline)


class VersionedStoreIOManager(dg.ConfigurableIOManager):
    """Keeps every asset value in the versioned store, keyed by data version.

    Frames go to Parquet (fast, typed, no pickle), reports to JSON, models to skops with a
    recorded sha256 that is verified before any load. A frame a step of this process just
    wrote or read is handed to the next step without reading it back (storage.RecentFrame).
    """

    root: str
    pipeline: str

    def _store(self) -> VersionedStore:
        return VersionedStore(Path(self.root), self.pipeline)

    def setup_for_execution(self, context) -> None:
        freeze_heap()  # see storage.freeze_heap: cheap garbage collections during the run

    def teardown_after_execution(self, context) -> None:
        recent_frame.clear()  # the next run in this process starts without this one's table
        thaw_heap()

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = context.partition_key
        name = context.asset_key.path[-1]
        store = self._store()
        try:
            import pandas as pd

            if isinstance(obj, pd.DataFrame):
                path = store.artifact_path(key, name, "parquet")
                recent_frame.clear()
                save_frame(path, obj)
                recent_frame.put(path, obj)
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
        freeze_heap()  # a step starts: what exists now is older than it
        key = context.partition_key
        name = context.upstream_output.asset_key.path[-1]
        store = self._store()
        path = store.find_artifact(key, name)
        if path is None:
            raise StoreError(
                f"{name} of data version {key} is not in the store ({store.version_dir(key)}); "
                f"materialise {name} for this version first"
            )
        if path.suffix == ".parquet":
            return load_frame_shared(path)
        if path.suffix == ".json":
            return read_json(path)
        return load_model(path)
