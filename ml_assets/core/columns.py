"""Column roles: which columns are numeric features, categorical features, ids or the target.

Roles are inferred once, from the first accepted data version, and then kept in the data
contract file so every later version is read the same way (README.md, "Messy data"):

- declared `id_columns` are ids;
- a column named like an id (`id`, `*_id`, `*Id`, `uuid`, ...) whose values are unique is an id;
- a text column with more than `max_categories` distinct values that are mostly unique per row
  is an id-like free-text column (names, e-mails): kept out of the model and of drift;
- other text or boolean columns are categorical, numeric columns are numeric.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import pandas as pd

ID_NAME = re.compile(r"(^|[_\-\s])(id|uuid|guid|key)$|^id[_\-\s]", re.IGNORECASE)
CAMEL_ID_NAME = re.compile(r"[a-z](Id|ID)$")  # customerID, PassengerId; case matters here
UNIQUE_SHARE_FOR_TEXT_ID = 0.5


@dataclass(frozen=True)
class ColumnRoles:
    target: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> ColumnRoles:
        return cls(
            target=data["target"],
            numeric=tuple(data.get("numeric", ())),
            categorical=tuple(data.get("categorical", ())),
            ids=tuple(data.get("ids", ())),
            notes=dict(data.get("notes", {})),
        )


def _looks_like_id_name(name: str) -> bool:
    name = name.strip()
    return bool(ID_NAME.search(name) or CAMEL_ID_NAME.search(name))


def infer_roles(
    df: pd.DataFrame,
    target: str,
    id_columns: list[str] | tuple[str, ...] = (),
    max_categories: int = 50,
) -> ColumnRoles:
    numeric: list[str] = []
    categorical: list[str] = []
    ids: list[str] = []
    notes: dict[str, str] = {}
    declared = set(id_columns)
    for column in df.columns:
        if column == target:
            continue
        series = df[column]
        if column in declared:
            ids.append(column)
            notes[column] = "id column (declared in id_columns)"
            continue
        non_null = series.dropna()
        unique = non_null.nunique()
        all_unique = len(non_null) > 1 and unique == len(non_null)
        is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(
            series
        )
        if _looks_like_id_name(column) and all_unique and (
            not is_number or pd.api.types.is_integer_dtype(series)
        ):
            ids.append(column)
            notes[column] = "id column (named like an id, one distinct value per row)"
        elif is_number:
            numeric.append(column)
        elif unique > max_categories and unique >= UNIQUE_SHARE_FOR_TEXT_ID * len(non_null):
            ids.append(column)
            notes[column] = (
                f"free text or id ({unique} distinct values in {len(non_null)} rows): "
                "not used as a feature"
            )
        else:
            categorical.append(column)
    return ColumnRoles(
        target=target,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        ids=tuple(ids),
        notes=notes,
    )


def as_categories(table, columns):
    """`table` with those of `columns` that hold text as pandas categoricals: one small code
    per row instead of a Python string (a third of the memory on a million rows, and Parquet
    writes and reads them several times faster); the values are the same. Returns `table`
    itself when there is nothing to convert."""
    text = [c for c in columns if c in table and table[c].dtype == object]
    return table.astype(dict.fromkeys(text, "category")) if text else table
