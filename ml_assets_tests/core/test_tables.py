"""Reading landed files as tables: what is accepted, and the reason given for what is not."""

import gzip

import numpy as np
import pandas as pd
import pytest

from ml_assets.core.tables import TableReadError, read_table

GOOD = "id,age,plan,churn\n1,34,basic,no\n2,,premium,yes\n3,51,basic,no\n"


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_plain_csv_with_blank_numeric_cell(tmp_path):
    df = read_table(write(tmp_path, "a.csv", GOOD))
    assert df.shape == (3, 4)
    assert df["age"].dtype.kind == "f" and df["age"].isna().sum() == 1


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_delimiters_are_sniffed(tmp_path, sep):
    df = read_table(write(tmp_path, "a.csv", GOOD.replace(",", sep)))
    assert list(df.columns) == ["id", "age", "plan", "churn"]


def test_gzip_content_named_csv_is_read(tmp_path):
    df = read_table(write(tmp_path, "a.csv", gzip.compress(GOOD.encode())))
    assert df.shape == (3, 4)


def test_parquet(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}).to_parquet(path)
    assert read_table(path).shape == (2, 2)


def test_numeric_column_with_stray_blanks_stays_numeric(tmp_path):
    # The Telco churn file's TotalCharges has " " for new customers.
    text = "id,charges,churn\n" + "".join(f"{i},{i * 1.5},no\n" for i in range(40)) + "41, ,yes\n"
    df = read_table(write(tmp_path, "a.csv", text))
    assert df["charges"].dtype.kind == "f" and df["charges"].isna().sum() == 1


def test_text_numbers_are_judged_row_by_row_not_by_distinct_values(tmp_path):
    # "unknown" is one distinct value of two, but one row in 41: the column is numeric, and
    # numbers padded with spaces come out as the same integers
    rows = "".join(f"{i},\" {i % 2} \",{'unknown' if i == 40 else 7}\n" for i in range(41))
    df = read_table(write(tmp_path, "a.csv", "id,flag,score\n" + rows))
    assert df["flag"].dtype == np.int64 and df["flag"].tolist()[:3] == [0, 1, 0]
    assert df["score"].dtype.kind == "f" and df["score"].isna().sum() == 1
    # the other way round: mostly words with a few numbers stays text, untouched
    rows = "".join(f"{i},{'basic' if i % 3 else 12}\n" for i in range(30))
    df = read_table(write(tmp_path, "b.csv", "id,plan\n" + rows))
    assert df["plan"].dtype == object and df["plan"].iloc[1] == "basic"


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", "a,b,c\n", "no rows"),
        ("random.csv", np.random.default_rng(0).bytes(4096), "not"),
        ("one.csv", "just one column\nvalue\n", "only one column"),
        ("dupe.csv", "a,a\n1,2\n", None),
    ],
)
def test_unreadable_files_give_a_reason(tmp_path, name, data, reason):
    path = write(tmp_path, name, data)
    if reason is None:  # pandas renames duplicate headers (a.1): still a table
        assert read_table(path).shape == (1, 2)
        return
    with pytest.raises(TableReadError) as info:
        read_table(path)
    assert reason in str(info.value)
