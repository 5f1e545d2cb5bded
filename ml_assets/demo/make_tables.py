"""Writes the bundled demo tables from the datasets in scikit-learn's wheel (nothing is
downloaded). Run once when a table changes: `python -m ml_assets.demo.make_tables`.

- `diabetes.csv`: 442 patients, ten baseline measurements (age, sex, BMI, blood pressure and
  six blood serum values, in their original units), the disease progression one year later
  as the target; `sex` as a real text category, and a `visit_id` to identify each row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_DIR = Path(__file__).parent


def diabetes_table():
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    df["sex"] = df["sex"].map({1.0: "female", 2.0: "male"})
    df.insert(0, "visit_id", np.arange(len(df)) + 5000)
    return df


def main() -> None:
    path = DEMO_DIR / "diabetes.csv"
    diabetes_table().to_csv(path, index=False, float_format="%.6g")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
