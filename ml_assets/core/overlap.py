"""Row identities, and the rows on which a champion is scored: never rows it was trained on.

Data versions are often cumulative snapshots ("all customers to date"): a champion trained on
an earlier version has seen many rows of a later one, and scored on them it wins every
comparison. Each row of a feature table carries one uint64 identity (`ROW_KEY_COLUMN`), from
the id columns the pipeline file names or else from the row's feature and label values; a
later version's rows whose identity is among the champion's training rows are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.core.modeling import BOOKKEEPING_COLUMNS, ROW_KEY_COLUMN, SPLIT_COLUMN

# How a table's identities were computed, kept in its attrs (Parquet stores them with it): two
# tables' stored identities are comparable only when all three agree.
METHOD_ATTR = "row_key_method"
COLUMNS_ATTR = "row_key_columns"
SCHEME_ATTR = "row_key_scheme"
# Raised whenever the normalisation below changes, so older stored identities are not trusted.
SCHEME = 1
BY_VALUES = "feature and label values"
HELD_OUT, LABELLED = "held-out rows", "labelled rows"

# The hash of a missing value: equal for every missing value (None, NaN, NA) of any column.
MISSING = np.uint64(0x9E3779B97F4A7C15)
# Integers beyond 2**53 have no exact float64; they are hashed by their exact value instead
# (long numeric ids that differ in their last digits would otherwise be one row), salted apart.
EXACT_FLOAT_LIMIT = 2**53
BIG_INTEGER_SALT = np.uint64(0xC2B2AE3D27D4EB4F)


# --------------------------------------------------------------------------- identities


def by_id_columns(columns: Sequence[str]) -> str:
    return "id columns " + ", ".join(columns)


def identity_columns(
    id_columns: Sequence[str], table_columns: Sequence[str], value_columns: Sequence[str]
) -> tuple[str, list[str]]:
    """(method, columns): the id columns when the pipeline file names them and the table has
    every one of them; otherwise the feature and label columns."""
    ids = list(id_columns)
    present = set(table_columns)
    if ids and all(c in present for c in ids):
        return by_id_columns(ids), ids
    return BY_VALUES, list(value_columns)


def row_keys(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One uint64 per row of `table`, from `columns` (their order does not matter).

    Equal for rows whose values are equal however pandas read each file: numbers as float64
    (1, 1.0 and the text "1" are the same value), text and categories by value, missing values
    equal to each other.
    """
    names = sorted(dict.fromkeys(columns), key=str)
    if not names:
        raise ValueError("row identities need at least one column")
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise ValueError(f"row identities: the table has no column {missing[0]!r}")
    return _combine([_column_hashes(table[name]) for name in names], len(table))


def _combine(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """One hash per row from one hash per column, order-sensitive: the arithmetic of
    `pd.util.hash_pandas_object` for a frame (CPython's tuple hash), without hashing each
    column's hashes once more."""
    out = np.full(rows, 0x345678, dtype=np.uint64)
    multiplier = np.uint64(1000003)
    for i, hashes in enumerate(columns):
        out ^= hashes
        out *= multiplier
        multiplier += np.uint64(82520 + 2 * (len(columns) - i))
    return out + np.uint64(97531)


def add_row_keys(table: pd.DataFrame, source: pd.DataFrame, method: str,
                 columns: Sequence[str]) -> pd.DataFrame:
    """`table` with ROW_KEY_COLUMN: the identities of `source`'s rows (the same rows, in the
    same order; `source` may hold columns `table` dropped, such as ids), and how they were
    computed in its attrs."""
    if len(source) != len(table):
        raise ValueError(f"row identities: {len(source)} source rows for {len(table)} table rows")
    table[ROW_KEY_COLUMN] = row_keys(source, columns)
    table.attrs.update({METHOD_ATTR: method, COLUMNS_ATTR: sorted(map(str, columns)),
                        SCHEME_ATTR: SCHEME})
    return table


def _column_hashes(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        if pd.api.types.is_integer_dtype(column):
            return _integer_hashes(column)
        return _number_hashes(column.to_numpy(dtype="float64", na_value=np.nan))
    # Text and categories: each distinct value is hashed once (a text column of a million rows
    # holds few distinct values), then spread over the rows.
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    unique_hashes = _value_hashes(np.asarray(uniques, dtype=object))
    out = np.full(len(codes), MISSING, dtype=np.uint64)
    present = codes >= 0
    out[present] = unique_hashes[codes[present]]
    return out


def _number_hashes(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype="float64") + 0.0  # -0.0 becomes 0.0
    missing = np.isnan(values)
    out = pd.util.hash_array(np.where(missing, 0.0, values))
    out[missing] = MISSING
    return out


def _integer_hashes(column: pd.Series) -> np.ndarray:
    missing = column.isna().to_numpy()
    if pd.api.types.is_unsigned_integer_dtype(column):
        exact = column.to_numpy(dtype="uint64", na_value=0)
        big = exact > EXACT_FLOAT_LIMIT
    else:
        exact = column.to_numpy(dtype="int64", na_value=0)
        big = np.abs(exact) > EXACT_FLOAT_LIMIT
    out = _number_hashes(np.where(missing, np.nan, exact.astype("float64")))
    if big.any():
        out[big] = pd.util.hash_array(exact[big]) ^ BIG_INTEGER_SALT
    return out


def _value_hashes(values: np.ndarray) -> np.ndarray:
    """Hashes of distinct non-missing values of a text column: those that read as numbers
    (a column read as text in one file and as numbers in another) hash as those numbers."""
    as_series = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(as_series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    is_number = ~np.isnan(numbers)
    out = np.empty(len(values), dtype=np.uint64)
    out[is_number] = _number_hashes(numbers[is_number])
    texts = as_series[~is_number].astype(str).to_numpy(dtype=object)
    out[~is_number] = pd.util.hash_array(texts) if len(texts) else np.empty(0, np.uint64)
    return out


# --------------------------------------------------------------------------- the fair rows


@dataclass(frozen=True)
class ComparisonRows:
    """Which rows in scope (a version's labelled held-out rows, or all its labelled rows, in
    table order) the champion may be scored on, and why the others were left out."""

    keep: np.ndarray  # bool per row in scope: True = scored
    scope: str  # HELD_OUT or LABELLED
    method: str | None  # how rows were matched; None when the champion's rows are unknown
    seen_by_champion: int  # rows left out: the champion was trained on them
    duplicates: int  # held-out rows left out: also in the challenger's own training split
    note: str = ""  # why values were matched, or why the champion's rows are unknown

    @property
    def compared(self) -> int:
        return int(self.keep.sum())

    @property
    def excluded(self) -> int:
        return self.seen_by_champion + self.duplicates

    @property
    def champion_rows_known(self) -> bool:
        return self.method is not None

    def too_few(self, min_rows: int) -> bool:
        """Too few rows left to judge the champion by (only when its rows are known)."""
        return self.champion_rows_known and self.compared < min_rows

    def excluded_text(self) -> str:
        """'224 excluded: rows the champion was trained on (matched by id columns id)'."""
        if not self.champion_rows_known:
            return "none excluded: " + self.note
        seen, dups = self.seen_by_champion, self.duplicates
        champion_words = "rows the champion was trained on"
        duplicate_words = "duplicates of the challenger's own training rows"
        if seen and dups:
            what = f"{self.excluded} excluded: {seen} {champion_words}, {dups} {duplicate_words}"
        elif seen:
            what = f"{seen} excluded: {champion_words}"
        elif dups:
            what = f"{dups} excluded: {duplicate_words}"
        else:
            what = "none excluded: none of them is a row the champion was trained on"
        how = f"matched by {self.method}" + (f"; {self.note}" if self.note else "")
        return f"{what} ({how})"

    def summary(self, verb: str = "compared on") -> str:
        """'compared on 903 held-out rows; 224 excluded: rows the champion was trained on
        (matched by id columns customer_id)'."""
        if not self.champion_rows_known:
            return (f"{verb} all {self.compared} {self.scope}: {self.note}, so rows the "
                    "champion was trained on could not be excluded")
        every = "all " if not self.excluded else ""
        return f"{verb} {every}{self.compared} {self.scope}; {self.excluded_text()}"

    def to_metadata(self) -> dict:
        return {
            "compared_rows": self.compared,
            "excluded_rows": self.excluded,
            "excluded_champion_training_rows": self.seen_by_champion,
            "excluded_duplicate_rows": self.duplicates,
            "match_method": self.method or "none",
            "note": self.note,
        }


def comparison_rows(features: pd.DataFrame, target: str, champion_table: pd.DataFrame | None,
                    unknown_reason: str = "") -> ComparisonRows:
    """The labelled held-out rows of `features` on which challenger and champion are compared.

    Left out: (a) the rows of `champion_table`'s training split (the champion's feature table,
    or just its training rows) and (b) held-out rows whose identity is also in `features`'
    own training split. Without a champion table every held-out row is kept and
    `unknown_reason` says why.
    """
    is_test = (features[SPLIT_COLUMN] == "test").to_numpy()
    in_scope = is_test & features[target].notna().to_numpy()
    if champion_table is None:
        return _unknown(int(in_scope.sum()), HELD_OUT, unknown_reason)
    ours, champion_training, method, note = _matching_keys(features, champion_table)
    keys = ours[in_scope]
    seen = _isin(keys, champion_training)
    duplicate = _isin(keys, ours[~is_test]) & ~seen
    return ComparisonRows(~(seen | duplicate), HELD_OUT, method, int(seen.sum()),
                          int(duplicate.sum()), note)


def unseen_rows(features: pd.DataFrame, target: str, champion_table: pd.DataFrame | None,
                unknown_reason: str = "") -> ComparisonRows:
    """The labelled rows of `features` (every split) the champion was not trained on: where
    its decay is judged."""
    in_scope = features[target].notna().to_numpy()
    if champion_table is None:
        return _unknown(int(in_scope.sum()), LABELLED, unknown_reason)
    ours, champion_training, method, note = _matching_keys(features, champion_table)
    seen = _isin(ours[in_scope], champion_training)
    return ComparisonRows(~seen, LABELLED, method, int(seen.sum()), 0, note)


def read_champion_training_rows(path: Path, features: pd.DataFrame) -> pd.DataFrame | None:
    """The training rows of the champion's stored feature table (None when there is none).

    When its stored identities can be matched with those of `features`, only the split and
    identity columns are read; otherwise the whole table (identities are then computed from
    feature and label values on both sides).
    """
    import pyarrow.parquet as pq

    if not Path(path).exists():
        return None
    if ROW_KEY_COLUMN in pq.read_schema(path).names:
        narrow = pd.read_parquet(path, columns=[SPLIT_COLUMN, ROW_KEY_COLUMN])
        if _stored_keys_comparable(features, narrow):
            return _training(narrow)
    return _training(pd.read_parquet(path))


def _training(table: pd.DataFrame) -> pd.DataFrame:
    train = table[(table[SPLIT_COLUMN] == "train").to_numpy()]
    train.attrs = dict(table.attrs)
    return train


def _unknown(rows: int, scope: str, reason: str) -> ComparisonRows:
    reason = reason or "the champion's training rows are unknown"
    return ComparisonRows(np.ones(rows, dtype=bool), scope, None, 0, 0, reason)


def _identity(table: pd.DataFrame) -> tuple | None:
    if ROW_KEY_COLUMN not in table.columns or METHOD_ATTR not in table.attrs:
        return None
    attrs = table.attrs
    return attrs.get(METHOD_ATTR), list(attrs.get(COLUMNS_ATTR) or []), attrs.get(SCHEME_ATTR)


def _stored_keys_comparable(ours: pd.DataFrame, theirs: pd.DataFrame) -> bool:
    mine = _identity(ours)
    return mine is not None and mine[2] == SCHEME and mine == _identity(theirs)


def _value_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in BOOKKEEPING_COLUMNS]


def _fallback_note(ours: pd.DataFrame, theirs: pd.DataFrame) -> str:
    """Why the stored identities could not be used."""
    mine, champions = _identity(ours), _identity(theirs)
    if champions is None:
        return ("the champion's feature table has no row identities (written before they "
                "were recorded)")
    if mine is None:
        return "this version's feature table has no row identities"
    if mine[2] != champions[2]:
        return "the champion's row identities were computed by another rule"
    if mine[0] != champions[0]:
        return f"the champion's rows were identified by {champions[0]}, these by {mine[0]}"
    return "the champion's rows were identified by other columns"


def _matching_keys(features: pd.DataFrame, champion_table: pd.DataFrame):
    """(identities of every row of `features`, identities of the champion's training rows,
    method, note): the stored identities when both sides computed them the same way,
    otherwise both computed from the feature and label columns the two tables share."""
    is_training = (champion_table[SPLIT_COLUMN] == "train").to_numpy()
    if _stored_keys_comparable(features, champion_table):
        ours = features[ROW_KEY_COLUMN].to_numpy(dtype=np.uint64)
        theirs = champion_table[ROW_KEY_COLUMN].to_numpy(dtype=np.uint64)[is_training]
        return ours, theirs, features.attrs[METHOD_ATTR], ""
    shared = set(_value_columns(champion_table))
    columns = [c for c in _value_columns(features) if c in shared]
    if not columns:
        raise ValueError("the champion's feature table shares no feature or label column with "
                         "this version's: its rows cannot be matched")
    theirs = row_keys(champion_table[is_training], columns)
    return (row_keys(features, columns), theirs, BY_VALUES,
            _fallback_note(features, champion_table))


def _isin(keys: np.ndarray, among: np.ndarray) -> np.ndarray:
    if len(keys) == 0 or len(among) == 0:
        return np.zeros(len(keys), dtype=bool)
    return pd.Series(keys, copy=False).isin(among).to_numpy()
