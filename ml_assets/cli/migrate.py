"""`ml-assets migrate`: bring a home written when a code location held one pipeline onto the
pipelines' own Dagster names (ml_assets/migration.py says what moves and what stays)."""

from __future__ import annotations

from ml_assets.cli.common import EXIT_OK, load_pipelines, open_instance


def cmd_migrate(args) -> int:
    from ml_assets.migration import migrate
    from ml_assets.storage import VersionedStore

    _, pipelines = load_pipelines(args.pipeline)
    instance = open_instance()
    for pipeline in pipelines:
        store = VersionedStore(pipeline.env.store_root, pipeline.name)
        done = migrate(instance, store, pipeline.names, pipeline.name)
        if done.versions:
            print(f"pipeline {pipeline.name!r}: {len(done.versions)} data version(s) moved under "
                  f"{pipeline.slug}/... ({done.materializations} materialisations, "
                  f"{done.checks} check results): {', '.join(done.versions)}")
        else:
            print(f"pipeline {pipeline.name!r}: nothing to migrate")
    return EXIT_OK
