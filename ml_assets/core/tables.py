"""Reading a landed file as a table, with a clear reason when it cannot be read.

Policy (README.md, "Messy data"): the delimiter is sniffed (`,` `;` tab `|`); gzip content is
read whatever the file is called; blank cells are missing values; a text column whose
non-blank cells are (nearly) all numbers is read as numeric, so a stray blank such as " "
does not turn a numeric column into text.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
NUMERIC_SHARE = 0.95  # share of non-blank cells that must parse as numbers
NA_VALUES = ["", " ", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-"]


class TableReadError(ValueError):
    """The file is not a table we can read; str() says why, for the user."""


def _is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def _is_parquet(head: bytes) -> bool:
    return head[:4] == b"PAR1"


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _coerce_numeric_text(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns that are numbers with a few stray cells (" ", "?") become numeric.

    Works on each column's distinct values (one factorize), weighted by how often each occurs:
    a text column of a million rows and a dozen categories costs milliseconds, not seconds.
    """
    for column in df.columns:
        series = df[column]
        if series.dtype != object:
            continue
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        if len(uniques) == 0:
            continue
        text = pd.Series(uniques, dtype=object).astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        nonblank = (text != "").to_numpy()
        if counts[nonblank].sum() == 0:
            continue
        share = counts[nonblank & numbers.notna().to_numpy()].sum() / counts[nonblank].sum()
        if share >= NUMERIC_SHARE:
            values = numbers.to_numpy()
            if (codes < 0).any():
                values = values.astype(float)
                df[column] = np.where(codes >= 0, values[np.maximum(codes, 0)], np.nan)
            else:
                df[column] = values[codes]
    return df


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (plain or gzip) or Parquet file; raise TableReadError with the reason."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise TableReadError(f"cannot open the file: {exc.strerror or exc}") from None
    if not head:
        raise TableReadError("the file is empty (0 bytes)")

    if _is_parquet(head):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types; the reason is what matters
            raise TableReadError(f"not a readable Parquet file: {exc}") from None
    else:
        compression = None
        if _is_gzip(head):
            compression = "gzip"
            import gzip

            try:
                with gzip.open(path, "rb") as fh:
                    head = fh.read(SNIFF_BYTES)
            except (OSError, EOFError) as exc:
                raise TableReadError(f"a gzip file that cannot be decompressed: {exc}") from None
        if b"\x00" in head:
            raise TableReadError("binary content, not a text table (NUL bytes found)")
        try:
            sample = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A sample cut mid-character is fine; anything earlier is not UTF-8 text.
            if exc.start < len(head) - 4:
                raise TableReadError(
                    f"not UTF-8 text (invalid byte at offset {exc.start})"
                ) from None
            sample = head[: exc.start].decode("utf-8")
        delimiter = _sniff_delimiter(sample)
        try:
            df = pd.read_csv(
                path,
                sep=delimiter,
                compression=compression,
                na_values=NA_VALUES,
                keep_default_na=True,
                skipinitialspace=True,
                encoding="utf-8",
                low_memory=False,
            )
        except pd.errors.EmptyDataError:
            raise TableReadError("no header and no rows") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0]
            raise TableReadError(f"not a well-formed CSV table: {reason}") from None
        df = _coerce_numeric_text(df)

    df.columns = [str(c).strip() for c in df.columns]
    if len(df.columns) < 2:
        raise TableReadError(
            f"only one column ({df.columns[0]!r}) was found; expected a table with a "
            f"delimiter among {', '.join(repr(d) for d in DELIMITERS)}"
        )
    if df.columns.duplicated().any():
        dupes = sorted(set(df.columns[df.columns.duplicated()]))
        raise TableReadError(f"duplicate column names: {dupes}")
    if df.empty:
        raise TableReadError(f"a header ({len(df.columns)} columns) but no rows")
    return df

