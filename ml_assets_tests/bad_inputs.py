"""The bad-input corpus: files that land after a good version, each with its expected outcome.

An outcome is one of:
  ("accepted",)                      a plausible version: it trains (promoted or not)
  ("blocked", check, reason)         the named blocking check fails with `reason` in its message
  ("refused", reason)                never registered (the scan says why)
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.demo.simulator import make_version


@dataclass
class Case:
    name: str            # the file name dropped into the landing folder
    write: Callable[[Path, pd.DataFrame], None]
    outcome: tuple

    @property
    def kind(self) -> str:
        return self.outcome[0]


def _csv(df: pd.DataFrame, **kwargs) -> Callable[[Path, pd.DataFrame], None]:
    return lambda path, base: df.to_csv(path, index=False, **kwargs)


def new_class(df: pd.DataFrame) -> None:
    df["diagnosis"] = np.where(np.arange(len(df)) < 25, "inconclusive", df["diagnosis"])


def mostly_empty(df: pd.DataFrame) -> None:
    """Three cells in four blank in a column that had none: breakage, not a change."""
    df["worst_radius"] = df["worst_radius"].where(np.arange(len(df)) % 4 == 3)


def corpus(base: pd.DataFrame, outside: Path) -> list[Case]:
    """`base` is the good table (breast cancer); `outside` a folder outside the landing one."""
    fresh = make_version(base, seed=11, drift=False)  # new plausible rows
    rng = np.random.default_rng(0)

    def changed(fn) -> pd.DataFrame:
        df = fresh.copy()
        fn(df)
        return df

    def symlink(path: Path, _):
        target = outside / "outside.csv"
        fresh.to_csv(target, index=False)
        path.symlink_to(target)

    return [
        Case("empty.csv", lambda p, b: p.write_bytes(b""), ("blocked", "readable_table", "empty")),
        Case("header only.csv", lambda p, b: p.write_text(",".join(base.columns) + "\n"),
             ("blocked", "readable_table", "no rows")),
        Case("random bytes.csv", lambda p, b: p.write_bytes(rng.bytes(20_000)),
             ("blocked", "readable_table", "not")),
        Case("gzipped.csv", lambda p, b: p.write_bytes(gzip.compress(fresh.head(300).to_csv(index=False).encode())),
             ("accepted",)),
        Case("semicolons.csv", _csv(fresh.sample(400, random_state=1), sep=";"), ("accepted",)),
        Case("no target.csv", _csv(fresh.drop(columns=["diagnosis"])),
             ("blocked", "data_contract", "column 'diagnosis' is missing")),
        Case("empty target.csv", _csv(changed(lambda d: d.__setitem__("diagnosis", np.nan))),
             ("blocked", "data_contract", "diagnosis")),
        Case("new class.csv", _csv(changed(new_class)), ("blocked", "data_contract", "inconclusive")),
        Case("renamed column.csv", _csv(fresh.rename(columns={"mean_texture": "texture_mean"})),
             ("blocked", "data_contract", "column 'mean_texture' is missing")),
        Case("extra column.csv", _csv(changed(lambda d: d.insert(3, "scanner", "B-12"))), ("accepted",)),
        Case("text in numbers.csv",
             _csv(changed(lambda d: d.__setitem__("mean_smoothness", "pending review"))),
             ("blocked", "data_contract", "mean_smoothness")),
        Case("absurd values.csv",
             _csv(changed(lambda d: d.__setitem__("mean_area", d["mean_area"] * 1e9))),
             ("blocked", "data_contract", "mean_area")),
        Case("mostly empty.csv", _csv(changed(mostly_empty)),
             ("blocked", "data_contract", "worst_radius: 75.0% of values are missing")),
        Case("single row.csv", _csv(fresh.head(1)), ("blocked", "data_contract", "1 row")),
        Case("Données [été] (v2).csv", _csv(fresh.sample(450, random_state=2)), ("accepted",)),
        Case("symlink.csv", symlink, ("refused", "outside the landing folder")),
        Case("large.csv", _csv(pd.concat([make_version(base, seed=s, drift=False) for s in range(20, 30)],
                                         ignore_index=True)), ("accepted",)),
    ]
