"""Demo data: the bundled breast cancer table, and further plausible versions of it.

A new version is new rows, not a resample of old ones: each row interpolates between two
patients of the same diagnosis (as SMOTE does) plus a little noise, so a champion trained on
an earlier version meets rows it has never seen. `drift=True` shifts the measurements of
size (radius, perimeter, area) upward by one to two standard deviations, the kind of change a
new scanner calibration makes, so the champion's decision boundary no longer fits.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

DEMO_DIR = Path(__file__).parent
DEMO_TABLE = DEMO_DIR / "breast_cancer.csv"
DEMO_NAME = "breast_cancer"
DRIFT_COLUMNS = re.compile(r"(radius|perimeter|area|texture|concav)")


def landing_has_data(landing_dir: Path, pattern: str = "*.csv") -> bool:
    return landing_dir.is_dir() and any(p.is_file() for p in landing_dir.glob(pattern))


def write_base(landing_dir: Path) -> Path | None:
    """Copy the bundled table into the landing folder unless it is already there."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    target = landing_dir / DEMO_TABLE.name
    if target.exists():
        return None
    target.write_bytes(DEMO_TABLE.read_bytes())
    return target


def make_version(base: pd.DataFrame, seed: int, drift: bool, target: str = "diagnosis") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numeric = [c for c in base.columns if c not in ("patient_id", target)]
    parts = []
    for label, group in base.groupby(target, sort=True):
        values = group[numeric].to_numpy(dtype=float)
        n = len(group)
        a, b = rng.integers(0, n, size=n), rng.integers(0, n, size=n)
        t = rng.random((n, 1))
        rows = values[a] + t * (values[b] - values[a])
        rows += rng.normal(0, 0.03, rows.shape) * values.std(axis=0)
        frame = pd.DataFrame(np.clip(rows, 0, None), columns=numeric)
        frame[target] = label
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if drift:
        for column in numeric:
            if DRIFT_COLUMNS.search(column):
                shift = rng.uniform(1.0, 2.0) * base[column].std()
                out[column] = out[column] + shift
    out.insert(0, "patient_id", [f"P{seed:03d}{i:05d}" for i in range(len(out))])
    return out[base.columns]


def write_versions(landing_dir: Path, count: int, drift: bool) -> list[Path]:
    """Write `count` further versions, numbered after those already in the landing folder."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(DEMO_TABLE)
    existing = [int(m.group(1)) for p in landing_dir.glob(f"{DEMO_NAME}_v*.csv")
                if (m := re.search(r"_v(\d+)", p.stem))]
    start = max(existing, default=1) + 1
    written = []
    for number in range(start, start + count):
        frame = make_version(base, seed=number, drift=drift)
        suffix = "_drift" if drift else ""
        path = landing_dir / f"{DEMO_NAME}_v{number:03d}{suffix}.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        frame.to_csv(tmp, index=False, float_format="%.6g")
        tmp.rename(path)  # appears whole: a sensor tick never sees a half-written file
        written.append(path)
    return written
