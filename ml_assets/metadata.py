"""Helpers that turn results into Dagster metadata a person wants to read in the UI."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import dagster as dg


def settings_version(settings, *keys: str) -> str:
    """A short hash of the named pipeline-file keys, appended to an asset's code_version.

    Editing those keys (say `model.params`) changes the code version of exactly the assets
    that use them, so Dagster marks them, and only them, stale.
    """
    data = settings.model_dump(mode="json")
    picked = {k: data.get(k) for k in keys}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:8]


def json_meta(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


def column_schema(df) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()]
    )


def png_markdown(images: dict[str, bytes]) -> dg.MetadataValue:
    """PNG plots embedded in markdown, so the UI shows them without any file server."""
    parts = []
    for title, png in images.items():
        label = title.replace("_", " ")
        data = base64.b64encode(png).decode()
        parts.append(f"**{label}**\n\n![{label}](data:image/png;base64,{data})\n")
    return dg.MetadataValue.md("\n".join(parts))


def markdown_table(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "/")
