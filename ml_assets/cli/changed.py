"""`ml-assets run --changed`: rematerialise exactly the assets a change of code or pipeline
file made stale, for every version, saying which and why."""

from __future__ import annotations

from ml_assets.cli.common import EXIT_OK
from ml_assets.cli.execute import execute, report_run
from ml_assets.graph import DagsterNames


def run_changed(env, settings, instance, store) -> int:
    """Rematerialise exactly the stale assets of every run version, and say which and why."""
    from ml_assets.cli.staleness import stale_assets
    from ml_assets.definitions import defs
    from ml_assets.monitoring.notifications import Notifier

    names = DagsterNames.of(settings.name)
    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    partitions = set(instance.get_dynamic_partitions(names.partitions))
    exit_code, fresh, redone = EXIT_OK, 0, 0
    for record in sorted(store.versions().values(), key=lambda r: (r.registered_at, r.key)):
        if record.key not in partitions:
            continue
        stale = stale_assets(instance, defs, record.key, names)
        if not stale:
            fresh += 1
            continue
        redone += 1
        print(f"\n{record.key}  ({record.source_name}): {len(stale)} stale asset(s)")
        for asset in stale:
            print(f"  {asset.asset:<26} stale: {'; '.join(asset.reasons)}")
        result = execute(instance, names.job, record.key, "changed",
                         asset_selection=names.keys(a.asset for a in stale))
        exit_code = max(exit_code, report_run(instance, result, record.key, record, settings, notifier))
    if redone:
        print(f"{redone} data version(s) rematerialised, {fresh} up to date")
    else:
        print(f"nothing stale: {fresh} data version(s) up to date")
    return exit_code
