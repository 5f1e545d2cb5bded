"""`ml-assets pipelines`: every pipeline file, its name, slug and landing folder, or why it
could not be loaded."""

from __future__ import annotations

import json

from ml_assets.cli.common import EXIT_BLOCKED, EXIT_OK, load_catalog


def cmd_pipelines(args) -> int:
    _, catalog = load_catalog()
    rows = [
        {
            "file": str(p.source),
            "name": p.name,
            "slug": p.slug,
            "task": p.settings.task,
            "landing_dir": str(p.env.landing_dir),
            "landing_glob": p.settings.landing_glob,
            "valid": True,
            "error": None,
        }
        for p in catalog.pipelines
    ] + [
        {"file": str(i.path), "name": i.name, "slug": None, "task": None, "landing_dir": None,
         "landing_glob": None, "valid": False, "error": i.error}
        for i in catalog.invalid
    ]
    rows.sort(key=lambda row: row["file"])
    if args.json:
        print(json.dumps({"source": catalog.source, "pipelines": rows}, indent=2))
    else:
        print(f"pipelines from {catalog.source}:")
        for row in rows:
            if row["valid"]:
                print(f"  {row['name']:<24} {row['task']:<15} {row['file']}\n"
                      f"  {'':<24} landing {row['landing_dir']} ({row['landing_glob']})")
            else:
                print(f"  INVALID {row['file']}\n    " + row["error"].replace("\n", "\n    "))
    return EXIT_BLOCKED if catalog.invalid else EXIT_OK
