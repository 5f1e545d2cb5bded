"""Demo data: the bundled tables of the demo pipelines, and further plausible versions of them.

A new version is new rows, not a resample of old ones: each row interpolates between two rows
(as SMOTE does) plus a little noise, so a champion trained on an earlier version meets rows it
has never seen. For a classifier the two are rows of the same class; for a regressor, a row
and one of its nearest neighbours, the target interpolated with them. `drift=True` shifts some
measurements upward by one to two standard deviations: breast cancer's size measurements
(radius, perimeter, area, ...), as a new scanner's calibration would; diabetes' BMI, blood
pressure and four blood serum values, as patients from a heavier, less healthy population would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEMO_DIR = Path(__file__).parent


@dataclass(frozen=True)
class DemoTable:
    """A bundled table, as its demo pipeline (ml_assets/demo/pipelines/<name>.yaml) reads it."""

    name: str
    path: Path
    target: str
    task: str
    id_column: str
    drift_columns: re.Pattern


DEMO_TABLES = {
    "breast_cancer": DemoTable("breast_cancer", DEMO_DIR / "breast_cancer.csv", "diagnosis",
                               "classification", "patient_id",
                               re.compile(r"(radius|perimeter|area|texture|concav)")),
    # Six of the ten features: dataset drift needs half of them to move (drift.share).
    "diabetes": DemoTable("diabetes", DEMO_DIR / "diabetes.csv", "progression", "regression",
                          "visit_id", re.compile(r"^(bmi|bp|s1|s2|s5|s6)$")),
}
NEIGHBOURS = 5  # a regressor's row is interpolated towards one of its this many nearest rows
MOSTLY_WHOLE = 0.8  # a column with at least this share of whole numbers gets whole numbers
DEMO_NAME = "breast_cancer"
DEMO_TABLE = DEMO_TABLES[DEMO_NAME].path
DRIFT_COLUMNS = DEMO_TABLES[DEMO_NAME].drift_columns


def landing_has_data(landing_dir: Path, pattern: str = "*.csv") -> bool:
    return landing_dir.is_dir() and any(p.is_file() for p in landing_dir.glob(pattern))


def write_base(landing_dir: Path, table: DemoTable = DEMO_TABLES[DEMO_NAME]) -> Path | None:
    """Copy the bundled table into the landing folder unless it is already there."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    target = landing_dir / table.path.name
    if target.exists():
        return None
    target.write_bytes(table.path.read_bytes())
    return target


def make_version(base: pd.DataFrame, seed: int, drift: bool, target: str = "diagnosis",
                 table: DemoTable | None = None) -> pd.DataFrame:
    table = table or DEMO_TABLES[DEMO_NAME]
    rng = np.random.default_rng(seed)
    numeric = [c for c in base.columns if c not in (table.id_column, target)
               and pd.api.types.is_numeric_dtype(base[c])]
    categories = [c for c in base.columns if c not in (table.id_column, target, *numeric)]
    groups = base.groupby(target, sort=True) if table.task == "classification" else [(None, base)]
    parts = []
    for label, group in groups:
        interpolated = numeric if label is not None else [*numeric, target]
        values = group[interpolated].to_numpy(dtype=float)
        n = len(group)
        a = rng.integers(0, n, size=n)
        b = rng.integers(0, n, size=n) if label is not None else _neighbour_of(values, a, rng)
        t = rng.random((n, 1))
        rows = values[a] + t * (values[b] - values[a])
        rows += rng.normal(0, 0.03, rows.shape) * values.std(axis=0)
        frame = pd.DataFrame(np.clip(rows, 0, None), columns=interpolated)
        for column in categories:  # a category is copied from one of the two parents
            frame[column] = group[column].to_numpy()[a]
        if label is not None:
            frame[target] = label
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if drift:
        for column in numeric:
            if table.drift_columns.search(column):
                shift = rng.uniform(1.0, 2.0) * base[column].std()
                out[column] = out[column] + shift
    if pd.api.types.is_numeric_dtype(base[table.id_column]):
        ids = [seed * 100_000 + i for i in range(len(out))]
    else:
        ids = [f"P{seed:03d}{i:05d}" for i in range(len(out))]
    out.insert(0, table.id_column, ids)
    return _whole_numbers_kept(out, base, [*numeric, target])[base.columns]


def _neighbour_of(values: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each of `rows`, one of its NEIGHBOURS nearest other rows (standardised columns).

    Interpolating between any two rows would shrink every column's spread by about a fifth,
    which a two-sample drift test notices on a table this small: a plain version would then
    look drifted. Neighbours are close, so the spread stays."""
    from sklearn.neighbors import NearestNeighbors

    scaled = (values - values.mean(axis=0)) / np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
    _, nearest = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(scaled).kneighbors(scaled)
    nearest = nearest[:, 1:]  # the first is the row itself
    return nearest[rows, rng.integers(0, NEIGHBOURS, size=len(rows))]


def _whole_numbers_kept(out: pd.DataFrame, base: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Round generated values in columns that hold (mostly) whole numbers in the bundled table:
    an age of 47.3 years is implausible, and a column of whole numbers gone continuous looks
    drifted to a two-sample test."""
    for column in columns:
        values = base[column]
        if pd.api.types.is_numeric_dtype(values) and (values.dropna() % 1 == 0).mean() >= MOSTLY_WHOLE:
            out[column] = out[column].round().astype(values.dtype)
    return out


def write_versions(landing_dir: Path, count: int, drift: bool,
                   table: DemoTable = DEMO_TABLES[DEMO_NAME]) -> list[Path]:
    """Write `count` further versions, numbered after those already in the landing folder."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(table.path)
    existing = [int(m.group(1)) for p in landing_dir.glob(f"{table.name}_v*.csv")
                if (m := re.search(r"_v(\d+)", p.stem))]
    start = max(existing, default=1) + 1
    written = []
    for number in range(start, start + count):
        frame = make_version(base, seed=number, drift=drift, target=table.target, table=table)
        suffix = "_drift" if drift else ""
        path = landing_dir / f"{table.name}_v{number:03d}{suffix}.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        frame.to_csv(tmp, index=False, float_format="%.6g")
        tmp.rename(path)  # appears whole: a sensor tick never sees a half-written file
        written.append(path)
    return written


def shuffle_labels(table: pd.DataFrame, target: str, seed: int, share: float = 1.0) -> pd.DataFrame:
    """The table with the labels of `share` of its rows (all by default) permuted among those
    rows, with a fixed seed: the features stay, the link from features to label is cut. A
    version no model should be promoted on (a join gone wrong, labels from another table)."""
    out = table.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(out), size=int(round(share * len(out))), replace=False)
    column = out.columns.get_loc(target)
    out.iloc[rows, column] = rng.permutation(out.iloc[rows, column].to_numpy())
    return out


# --- the production loop: rows to score, and their labels delivered later ---
SCORE_SEED = 1000  # scoring batch k is generated with seed SCORE_SEED + k: its labels can be
# delivered later by generating it again


def scoring_batch(base: pd.DataFrame, number: int, table: DemoTable) -> pd.DataFrame:
    """Batch `number` of new rows as they reach the model: new ids, the target included (the
    caller drops it for the file to score and keeps it for the labels)."""
    return make_version(base, seed=SCORE_SEED + number, drift=False, target=table.target, table=table)


def shifted_labels(batch: pd.DataFrame, base: pd.DataFrame, table: DemoTable) -> pd.Series:
    """The batch's labels after the world changed: the same labels (same class shares, same
    target values), now ordered by the numeric feature that told least about the label in the
    bundled table. A model trained on the bundled table ranks them badly; a model retrained
    on the new labels learns them. No value is new, so the data contract still holds."""
    numeric = [c for c in base.columns if c not in (table.id_column, table.target)
               and pd.api.types.is_numeric_dtype(base[c])]
    if table.task == "classification":
        coded = (base[table.target] == sorted(base[table.target].unique())[-1]).astype(float)
    else:
        coded = base[table.target].astype(float)
    strength = {c: abs(np.corrcoef(base[c].astype(float), coded)[0, 1]) for c in numeric}
    feature = min(strength, key=lambda c: (strength[c], c))
    order = np.argsort(batch[feature].to_numpy(), kind="stable")
    labels = np.empty(len(batch), dtype=batch[table.target].dtype)
    labels[order] = np.sort(batch[table.target].to_numpy(), kind="stable")
    return pd.Series(labels, index=batch.index, name=table.target)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    tmp.rename(path)  # appears whole: a sensor tick never sees a half-written file
    return path


def write_scoring_batches(folder: Path, count: int, table: DemoTable) -> list[Path]:
    """Write `count` further scoring batches (the landing format without the target) into
    `folder`, numbered after those already there."""
    base = pd.read_csv(table.path)
    existing = [int(m.group(1)) for p in folder.glob(f"{table.name}_batch_*.csv")
                if (m := re.search(r"_batch_(\d+)", p.stem))] if folder.is_dir() else []
    start = max(existing, default=0) + 1
    return [
        _atomic_csv(scoring_batch(base, n, table).drop(columns=[table.target]),
                    folder / f"{table.name}_batch_{n:03d}.csv")
        for n in range(start, start + count)
    ]


def write_labels(scoring_folder: Path, labels_folder: Path, table: DemoTable,
                 shift: bool) -> list[Path]:
    """The labels (id column + target) of every demo scoring batch in `scoring_folder` that has
    none in `labels_folder` yet; `shift`: as the changed world labels them."""
    base = pd.read_csv(table.path)
    written = []
    for path in sorted(scoring_folder.glob(f"{table.name}_batch_*.csv")) if scoring_folder.is_dir() else []:
        match = re.search(r"_batch_(\d+)$", path.stem)
        out = labels_folder / f"{path.stem}_labels{'_shifted' if shift else ''}.csv"
        if not match or any(labels_folder.glob(f"{path.stem}_labels*.csv")):
            continue
        batch = scoring_batch(base, int(match.group(1)), table)
        labels = shifted_labels(batch, base, table) if shift else batch[table.target]
        written.append(_atomic_csv(pd.DataFrame({table.id_column: batch[table.id_column],
                                                 table.target: labels}), out))
    return written
