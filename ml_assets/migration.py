"""Upgrading a home written when a code location held one pipeline, whose Dagster names had
no prefix (assets `raw_data`, ..., partitions `data_version`, job `train_version`).

The store, the contract files and MLflow are keyed by the pipeline's name and need nothing.
The Dagster instance does: each version's partition is added under the pipeline's own
partitions, and its materialisations and latest check results are recorded again under the
prefixed keys (with their metadata, and a note of where they came from), so status, the UI
and the sensors see every version, its verdicts and its history. The old records stay.
Until a pipeline is migrated its sensors run nothing, so no version is trained twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from ml_assets.graph import ALL_ASSETS, CHECKS, DagsterNames, asset_key, check_key
from ml_assets.partitions import LEGACY_DATA_VERSION
from ml_assets.storage import VersionedStore

MIGRATE_COMMAND = "ml-assets migrate"
MIGRATED_FROM = "ml_assets/migrated_from"
_INPUT_TAG = "dagster/input_data_version/"
_POINTER_TAG = "dagster/input_event_pointer/"


@dataclass
class Migration:
    pipeline: str
    versions: list[str] = field(default_factory=list)
    materializations: int = 0
    checks: int = 0


def legacy_versions(instance, store: VersionedStore, names: DagsterNames) -> list[str]:
    """This pipeline's versions that are recorded only under the unprefixed names."""
    legacy = set(instance.get_dynamic_partitions(LEGACY_DATA_VERSION))
    if not legacy:
        return []
    current = set(instance.get_dynamic_partitions(names.partitions))
    return [key for key in store.versions() if key in legacy and key not in current]


def waiting_message(pipeline: str, count: int) -> str:
    return (f"pipeline {pipeline!r}: {count} data version(s) were recorded before pipelines were "
            f"named after their slug; run `{MIGRATE_COMMAND}` (nothing of this pipeline runs "
            "until then, so no version is trained twice)")


def migrate(instance, store: VersionedStore, names: DagsterNames, pipeline: str) -> Migration:
    """Record this pipeline's legacy versions under its own names. A version's partition is
    added last, so an interrupted migration is simply run again."""
    done = Migration(pipeline)
    for key in legacy_versions(instance, store, names):
        for asset in ALL_ASSETS:
            done.materializations += _copy_materializations(instance, asset, key, names)
        done.checks += _copy_latest_checks(instance, key, names)
        instance.add_dynamic_partitions(names.partitions, [key])
        done.versions.append(key)
    return done


def _copy_materializations(instance, asset: str, key: str, names: DagsterNames) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key(asset), asset_partitions=[key]),
        limit=10_000, ascending=True,
    ).records
    for record in records:
        old = record.asset_materialization
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=names.key(asset),
                partition=key,
                description=old.description,
                metadata={**old.metadata, MIGRATED_FROM: f"{asset} (run {record.run_id})"},
                tags=_prefixed_tags(old.tags or {}, names),
            )
        )
    return len(records)


def _prefixed_tags(tags: dict, names: DagsterNames) -> dict:
    """The code and data versions kept (staleness reads them), inputs renamed to the prefixed
    keys; pointers to the old input events dropped (they point at the old keys' records)."""
    out = {}
    for tag, value in tags.items():
        if tag.startswith(_POINTER_TAG):
            continue
        if tag.startswith(_INPUT_TAG):
            upstream = tag.removeprefix(_INPUT_TAG)
            tag = _INPUT_TAG + names.key(upstream).to_user_string()
        out[tag] = value
    return out


def _copy_latest_checks(instance, key: str, names: DagsterNames) -> int:
    from ml_assets.selections import execution_data
    from ml_assets.private_apis import PartitionKeyFilter

    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key(check) for check in CHECKS], partition_filter=PartitionKeyFilter(key=key)
    )
    copied = 0
    for check in CHECKS:
        data = execution_data(records.get(check_key(check)))
        if not isinstance(data, dg.AssetCheckEvaluation):
            continue
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=names.key(check.asset),
                check_name=check.name,
                passed=data.passed,
                metadata=dict(data.metadata),
                severity=data.severity,
                description=data.description,
                blocking=data.blocking,
                partition=key,
            )
        )
        copied += 1
    return copied
