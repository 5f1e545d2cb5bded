"""The data contract: a Great Expectations 1.x suite per pipeline, kept as a JSON file.

The suite is built once, from the pipeline file and the schema of the first accepted data
version, saved where users can review and edit it, and evaluated on every data version
(dagster-ge does not support GX 1.x; this module is the small bridge, with no Dagster import).

Breakage (GX severity "critical": blocks the version):

- fewer than `contract.min_rows` rows;
- a feature column (numeric or categorical) or the target missing. Id columns are not
  required, and extra columns are accepted: the model ignores both;
- numeric features that are not numbers; a column mostly empty (over `breakage_null_share`)
  that was not;
- numeric values (and a regression target) beyond `breakage_magnitude` x the largest
  magnitude seen, or negative where none was (`breakage_negative`), for more than
  1 - `breakage_mostly` of the rows;
- the target: more than `max_missing_label_share` missing; for classification an unseen class,
  for regression values that are not numbers.

Change (severity "warning": reported, never blocks): values (mostly) outside the observed range
widened by `range_tolerance` x the span on each side, a column emptier than before by more than
`null_share_tolerance`, a categorical feature leaving its observed categories (when there were
at most `max_categories` of them). A contract file without severities (format 1) is all
critical, as GX's default.

Categorical columns and a classification target are compared as text on both sides
(`True`, `1`, `1.0` and `"1"` are read the same way as when the contract was built), so a
column that pandas reads as bool in one file and as text in the next is not a false alarm.

Great Expectations is imported only inside the functions that use it (it costs seconds).
"""

from __future__ import annotations
from ml_assets.core.contract.file import (
    check_contract,
    load_contract,
    roles_from_contract,
    save_contract,
)
from ml_assets.core.contract.infer import build_contract
from ml_assets.core.contract.suite import (
    META_KEY,
    NUMERIC_TYPES,
    ContractFileError,
    ContractResult,
    ExpectationFailure,
)
from ml_assets.core.contract.validate import validate_table

__all__ = [
    "META_KEY",
    "NUMERIC_TYPES",
    "ContractFileError",
    "ContractResult",
    "ExpectationFailure",
    "build_contract",
    "check_contract",
    "load_contract",
    "roles_from_contract",
    "save_contract",
    "validate_table",
]
