"""What is stale, and why: `ml-assets run --changed` (what `dvc repro` gives its users).

The same resolver the Dagster UI uses decides: an asset is stale when its code version changed
(the code, or the pipeline-file keys folded into it, see metadata.settings_version) or when an
upstream asset changed since it was materialised. Missing assets (a blocked version never
trained) are not stale: `--changed` never trains past a failed gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ml_assets.graph import ALL_ASSETS, DagsterNames


@dataclass
class StaleAsset:
    asset: str
    reasons: list[str]


def _resolver(instance, defs: dg.Definitions):
    from ml_assets.private_apis import (
        AssetGraphView,
        CachingStaleStatusResolver,
        TemporalContext,
        get_current_datetime,
    )

    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def stale_assets(instance, defs: dg.Definitions, partition: str, names: DagsterNames) -> list[StaleAsset]:
    """The stale assets of one data version of a pipeline, in graph order, each with its reasons.

    Dagster marks the asset whose code version changed; what lies downstream of it will get a
    new input when it is rematerialised, so it is stale too (the reason says which upstream).
    """
    from ml_assets.private_apis import StaleStatus

    resolver = _resolver(instance, defs)
    graph = defs.resolve_asset_graph()
    stale: list[StaleAsset] = []
    for name in ALL_ASSETS:  # in lineage order: a stale parent is seen before its children
        key = names.key(name)
        if not instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records:
            continue  # missing (e.g. behind a failed gate) is not stale
        stale_parents = [
            s.asset for s in stale if names.key(s.asset) in graph.get(key).parent_keys
        ]
        if stale_parents:
            stale.append(StaleAsset(name, [f"upstream {p} is rematerialised" for p in stale_parents]))
            continue
        if resolver.get_status(key, partition) != StaleStatus.STALE:
            continue
        reasons = []
        for cause in resolver.get_stale_root_causes(key, partition):
            where = cause.key.asset_key.path[-1]  # within one pipeline: its asset's name
            if cause.dependency is not None:
                reasons.append(f"{where}: {cause.reason} ({cause.dependency.asset_key.path[-1]})")
            else:
                reasons.append(f"{where}: {cause.reason}")
        stale.append(StaleAsset(name, sorted(set(reasons))))
    return stale
