"""`ml-assets demo`: write the bundled table, and further plausible or drifted versions of it,
into the landing folder."""

from __future__ import annotations

from ml_assets.cli.common import EXIT_OK, load_pipeline


def cmd_demo(args) -> int:
    env, settings = load_pipeline()
    from ml_assets.demo import simulator

    if args.if_empty and simulator.landing_has_data(env.landing_dir, settings.landing_glob):
        print(f"nothing written: {env.landing_dir} already holds data")
        return EXIT_OK
    written = []
    base = simulator.write_base(env.landing_dir)
    if base:
        written.append(base)
    if args.versions:
        written += simulator.write_versions(env.landing_dir, args.versions, args.drift)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing written: {env.landing_dir} already holds the demo table")
    return EXIT_OK
