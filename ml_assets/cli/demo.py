"""`ml-assets demo`: write each demo pipeline's bundled table, and further plausible or drifted
versions of it, into that pipeline's landing folder; and rows to score and their late labels
into its scoring and labels folders."""

from __future__ import annotations

from ml_assets.cli.common import EXIT_OK, load_pipelines


def cmd_demo(args) -> int:
    from ml_assets.demo import simulator

    _, pipelines = load_pipelines(None)
    targets = [(p, simulator.DEMO_TABLES[p.name]) for p in pipelines if p.name in simulator.DEMO_TABLES]
    if not targets and len(pipelines) == 1:
        # One pipeline of the user's own: the breast cancer table, as a first thing to try.
        targets = [(pipelines[0], simulator.DEMO_TABLES[simulator.DEMO_NAME])]
    if not targets:
        print(f"nothing written: no pipeline here is a demo pipeline "
              f"({', '.join(simulator.DEMO_TABLES)})")
    for pipeline, table in targets:
        landing = pipeline.env.landing_dir
        if args.if_empty and simulator.landing_has_data(landing, pipeline.settings.landing_glob) \
                and not (args.score or args.labels or args.shifted_labels):
            print(f"nothing written: {landing} already holds data")
            continue
        written = []
        base = simulator.write_base(landing, table=table)
        if base:
            written.append(base)
        if args.versions:
            written += simulator.write_versions(landing, args.versions, args.drift, table=table)
        scoring, labels = _folder_of(pipeline, "scoring_glob"), _folder_of(pipeline, "labels_glob")
        if args.score:
            written += simulator.write_scoring_batches(scoring, args.score, table)
        if args.labels or args.shifted_labels:
            written += simulator.write_labels(scoring, labels, table, shift=args.shifted_labels)
        for path in written:
            print(f"wrote {path}")
        if not written:
            print(f"nothing written: {landing} already holds the demo table"
                  + (" and every scoring batch has its labels" if args.labels or args.shifted_labels else ""))
    return EXIT_OK


def _folder_of(pipeline, glob_key: str):
    """The folder a pipeline's `scoring_glob` / `labels_glob` reads ("score/*.csv" -> <landing>/score)."""
    from pathlib import PurePosixPath

    pattern = PurePosixPath(getattr(pipeline.settings, glob_key))
    parts = [p for p in pattern.parent.parts if not any(ch in p for ch in "*?[")]
    return pipeline.env.landing_dir.joinpath(*parts)
