"""The bad-input corpus: files that land after a good version, each with its expected outcome.

An outcome is one of:
  ("accepted",)                      a plausible version: it trains (promoted or not)
  ("blocked", check, reason)         the named blocking check fails, and `reason` is what its
                                     message says went wrong (each failed expectation of the
                                     data contract: exactly this one)
  ("refused", reason)                never registered, and `reason` is why the scan refused it
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
        Case("empty.csv", lambda p, b: p.write_bytes(b""), ("blocked", "readable_table", "could not be read as a table: the file is empty (0 bytes)")),
        Case("header only.csv", lambda p, b: p.write_text(",".join(base.columns) + "\n"),
             ("blocked", "readable_table", "could not be read as a table: a header (32 columns) but no rows")),
        Case("random bytes.csv", lambda p, b: p.write_bytes(rng.bytes(20_000)),
             ("blocked", "readable_table",
              "could not be read as a table: binary content, not a text table (NUL bytes found)")),
        Case("gzipped.csv", lambda p, b: p.write_bytes(gzip.compress(fresh.head(300).to_csv(index=False).encode())),
             ("accepted",)),
        Case("semicolons.csv", _csv(fresh.sample(400, random_state=1), sep=";"), ("accepted",)),
        Case("no target.csv", _csv(fresh.drop(columns=["diagnosis"])),
             ("blocked", "data_contract", "target column 'diagnosis' is missing")),
        Case("empty target.csv", _csv(changed(lambda d: d.__setitem__("diagnosis", np.nan))),
             ("blocked", "data_contract", "target 'diagnosis': 100.0% of labels are missing (allowed: 20.0%)")),
        Case("new class.csv", _csv(changed(new_class)), ("blocked", "data_contract",
                                                         "target 'diagnosis': unexpected values ['inconclusive'] in 25 rows "
                                                         "(4.4%; allowed: none)")),
        Case("renamed column.csv", _csv(fresh.rename(columns={"mean_texture": "texture_mean"})),
             ("blocked", "data_contract", "column 'mean_texture' is missing")),
        Case("extra column.csv", _csv(changed(lambda d: d.insert(3, "scanner", "B-12"))), ("accepted",)),
        Case("text in numbers.csv",
             _csv(changed(lambda d: d.__setitem__("mean_smoothness", "pending review"))),
             ("blocked", "data_contract", "mean_smoothness: 100.0% of values are not numbers (the column is "
                                          "read as text), e.g. 'pending review'")),
        Case("absurd values.csv",
             _csv(changed(lambda d: d.__setitem__("mean_area", d["mean_area"] * 1e9))),
             ("blocked", "data_contract", "mean_area: 100.0% of values outside [0, 2.501e+04] (allowed: 1.0%), "
                                          "e.g. 3.704e+11, 3.675e+11, 3.746e+11")),
        Case("mostly empty.csv", _csv(changed(mostly_empty)),
             ("blocked", "data_contract", "worst_radius: 75.0% of values are missing (allowed: 50.0%)")),
        Case("single row.csv", _csv(fresh.head(1)), ("blocked", "data_contract", "the table has 1 row; expected at least 30")),
        Case("Données [été] (v2).csv", _csv(fresh.sample(450, random_state=2)), ("accepted",)),
        Case("symlink.csv", symlink, ("refused", "a symlink pointing outside the landing folder "
                                          f"({(outside / 'outside.csv').resolve()})")),
        Case("large.csv", _csv(pd.concat([make_version(base, seed=s, drift=False) for s in range(20, 30)],
                                         ignore_index=True)), ("accepted",)),
    ]
