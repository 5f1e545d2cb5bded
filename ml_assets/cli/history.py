"""`ml-assets history [--json]`: the promotion ledger of a pipeline (or of every pipeline),
oldest first, one line per record; a torn or unreadable line is reported on stderr."""

from __future__ import annotations

import json
import sys

from ml_assets.cli.common import EXIT_OK, load_pipelines, report_invalid


def cmd_history(args) -> int:
    catalog, pipelines = load_pipelines(args.pipeline)
    if not args.pipeline:
        report_invalid(catalog)
    from ml_assets.registry.ledger import ledger_of

    histories = []
    for pipeline in pipelines:
        read = ledger_of(pipeline.env.store_root, pipeline.name).read()
        for problem in read.problems:
            print(f"warning: {problem}", file=sys.stderr)
        histories.append((pipeline, read.records))
    if args.json:
        if len(histories) == 1:
            out: dict = {"pipeline": histories[0][0].name, "records": histories[0][1]}
        else:
            out = {"pipelines": [{"name": p.name, "records": r} for p, r in histories]}
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return EXIT_OK
    for index, (pipeline, records) in enumerate(histories):
        if len(histories) > 1:
            print(("\n" if index else "") + f"=== {pipeline.name} ===")
        if not records:
            print(f"no promotion recorded yet for {pipeline.name}")
        for entry in records:
            print(history_line(entry, pipeline.settings.primary_metric))
    return EXIT_OK


def history_line(entry: dict, primary_metric: str) -> str:
    """"2026-12-04 10:02:11  promoted    v2  data 'x-abc'  roc_auc 0.991  by <actor>: <reason>"."""
    when = str(entry.get("time") or "").replace("T", " ").split("+")[0]
    version = entry.get("model_version")
    line = f"{when}  {entry.get('action', '?'):<12}{'-' if version is None else f'v{version}':<4}"
    if entry.get("data_version"):
        line += f"data {entry['data_version']!r}"
    metric = (entry.get("metrics") or {}).get(primary_metric)
    if metric is not None:
        line += f"  {primary_metric} {float(metric):.3f}"
    return f"{line}  by {entry.get('actor') or 'unknown'}: {entry.get('reason') or ''}".rstrip()
