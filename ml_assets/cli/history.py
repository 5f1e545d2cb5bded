"""`ml-assets history [--json] [--pipeline NAME]`: the promotion ledger of a pipeline,
oldest first, one line per record; a torn or unreadable line is reported on stderr."""

from __future__ import annotations

import json
import sys

from ml_assets.cli.common import EXIT_OK, load_pipeline


def cmd_history(args) -> int:
    # With several pipelines the one to show is named (as for the other decision commands).
    env, settings = load_pipeline(args.pipeline)
    from ml_assets.registry.ledger import ledger_of

    read = ledger_of(env.store_root, settings.name).read()
    for problem in read.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps({"pipeline": settings.name, "records": read.records}, indent=2,
                         ensure_ascii=False, default=str))
        return EXIT_OK
    if not read.records:
        print(f"no promotion recorded yet for {settings.name}")
    for entry in read.records:
        print(history_line(entry, settings.primary_metric))
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
