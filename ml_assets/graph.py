"""The asset graph's names in one place: the assets, their lineage order, the selections runs
ask for, the checks with the asset each belongs to and whether it blocks, and the Dagster keys.

No Dagster import at module level: the CLI reads these names before it decides to load Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

RAW_DATA = "raw_data"
VALIDATED_DATA = "validated_data"
FEATURES = "features"
DRIFT_REPORT = "drift_report"
MODEL = "model"
EVALUATION_REPORT = "evaluation_report"
REGISTERED_MODEL_VERSION = "registered_model_version"
# Partitioned by scoring batch, not by data version: the production loop after registration.
PREDICTIONS = "predictions"
LIVE_PERFORMANCE = "live_performance"
SCORING_ASSETS = (PREDICTIONS, LIVE_PERFORMANCE)

# What every new version gets: ingested, validated, its features built, checked for drift.
INGEST_ASSETS = (RAW_DATA, VALIDATED_DATA, FEATURES, DRIFT_REPORT)
# What a retraining (drift_sensor, weekly_retrain, retrain.policy every_version) adds.
TRAIN_ASSETS = (MODEL, EVALUATION_REPORT, REGISTERED_MODEL_VERSION)
# Every asset, in lineage order (each after the assets it reads): the order of `ml-assets run`'s
# step lines, of `ml-assets run --changed`'s walk, and the selection of a whole run.
ALL_ASSETS = INGEST_ASSETS + TRAIN_ASSETS
# A version's first run reads and validates only. The UI paints an asset as failed when the
# latest run that planned it failed, so a version its data contract blocks must plan nothing
# downstream; the rest of the version is requested in a second run once the contract passed.
VALIDATE_ASSETS = (RAW_DATA, VALIDATED_DATA)
# The run tag that tells the two apart: "validate", then "train".
STAGE_TAG = "ml_assets/stage"
VALIDATE_STAGE = "validate"
TRAIN_STAGE = "train"


def after_validation(assets) -> tuple[str, ...]:
    """The assets of `assets` that a version's second run materialises (its first run
    materialised VALIDATE_ASSETS), in lineage order."""
    return tuple(a for a in ALL_ASSETS if a in assets and a not in VALIDATE_ASSETS)


@dataclass(frozen=True)
class Check:
    """An asset check: the asset it belongs to, its name, and whether a failure stops the run
    (a check that does not block reports a failure with severity WARN)."""

    asset: str
    name: str
    blocking: bool

    @property
    def label(self) -> str:
        """How a user reads it: "validated_data:data_contract"."""
        return f"{self.asset}:{self.name}"


READABLE_TABLE = Check(RAW_DATA, "readable_table", blocking=True)
DATA_CONTRACT = Check(VALIDATED_DATA, "data_contract", blocking=True)
DATA_CHANGES = Check(VALIDATED_DATA, "data_changes", blocking=False)
QUALITY_GATE = Check(EVALUATION_REPORT, "quality_gate", blocking=True)
CHAMPION_COMPARISON = Check(EVALUATION_REPORT, "champion_comparison", blocking=False)
CHECKS = (READABLE_TABLE, DATA_CONTRACT, DATA_CHANGES, QUALITY_GATE, CHAMPION_COMPARISON)


def slug_of(name: str) -> str:
    """A pipeline's Dagster name: its `name` with every character outside [A-Za-z0-9_] as `_`
    (Dagster's job and sensor names allow no other; asset key parts are safest in the same)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass(frozen=True)
class DagsterNames:
    """Everything one pipeline makes in Dagster is named after its slug, so that no two
    pipelines of one code location collide: keys `<slug>/raw_data`, group `<slug>`,
    partitions `<slug>__data_version`, job, sensors and schedule `<slug>__...`."""

    slug: str

    @classmethod
    def of(cls, pipeline_name: str) -> DagsterNames:
        return cls(slug_of(pipeline_name))

    @property
    def group(self) -> str:
        return self.slug

    @property
    def partitions(self) -> str:
        return f"{self.slug}__data_version"

    @property
    def job(self) -> str:
        return f"{self.slug}__train_version"

    @property
    def scoring_partitions(self) -> str:
        return f"{self.slug}__scoring_batch"

    @property
    def score_job(self) -> str:
        return f"{self.slug}__score_batch"

    @property
    def live_job(self) -> str:
        return f"{self.slug}__measure_live_performance"

    @property
    def decide_job(self) -> str:
        """approve / reject / rollback from the UI's launchpad."""
        return f"{self.slug}__decide_version"

    @property
    def scoring_sensor(self) -> str:
        return f"{self.slug}__scoring_sensor"

    @property
    def labels_sensor(self) -> str:
        return f"{self.slug}__labels_sensor"

    @property
    def decay_sensor(self) -> str:
        return f"{self.slug}__decay_sensor"

    @property
    def new_data_sensor(self) -> str:
        return f"{self.slug}__new_data_sensor"

    @property
    def drift_sensor(self) -> str:
        return f"{self.slug}__drift_sensor"

    @property
    def run_failure_notifier(self) -> str:
        return f"{self.slug}__run_failure_notifier"

    @property
    def weekly_retrain(self) -> str:
        return f"{self.slug}__weekly_retrain"

    @property
    def jobs(self) -> tuple[str, ...]:
        """Every job of the pipeline, the training job first."""
        return (self.job, self.decide_job, self.score_job, self.live_job)

    @property
    def sensors(self) -> tuple[str, ...]:
        return (self.new_data_sensor, self.drift_sensor, self.run_failure_notifier,
                self.scoring_sensor, self.labels_sensor, self.decay_sensor)

    def key(self, asset: str) -> dg.AssetKey:
        return asset_key(asset, self.slug)

    def keys(self, assets: Iterable[str]) -> list[dg.AssetKey]:
        return asset_keys(assets, self.slug)

    def check_key(self, check: Check) -> dg.AssetCheckKey:
        return check_key(check, self.slug)


def asset_key(name: str, prefix: str | None = None) -> dg.AssetKey:
    """The Dagster key of an asset of the graph; under a pipeline's slug as `prefix`."""
    import dagster as dg

    return dg.AssetKey([prefix, name] if prefix else [name])


def asset_keys(names: Iterable[str], prefix: str | None = None) -> list[dg.AssetKey]:
    return [asset_key(name, prefix) for name in names]


def check_key(check: Check, prefix: str | None = None) -> dg.AssetCheckKey:
    import dagster as dg

    return dg.AssetCheckKey(asset_key(check.asset, prefix), check.name)


def check_spec(check: Check, description: str, prefix: str | None = None, **spec) -> dg.AssetCheckSpec:
    """The spec of a check as its asset declares it: name, asset and blocking from here."""
    import dagster as dg

    return dg.AssetCheckSpec(
        check.name, asset=asset_key(check.asset, prefix), blocking=check.blocking,
        description=description, **spec,
    )
