"""raw_data and validated_data, with their data-quality checks: breakage blocks, change is
reported (data_changes, a warning)."""


from pathlib import Path

import dagster as dg

from ml_assets.config import PipelineSettings
from ml_assets.environment import Environment
from ml_assets.graph import (
    DATA_CHANGES,
    DATA_CONTRACT,
    RAW_DATA,
    READABLE_TABLE,
    VALIDATED_DATA,
    check_spec,
)
from ml_assets.ingestion.contract_file import revision_on_disk
from ml_assets.metadata import column_schema, json_meta, settings_version
from ml_assets.pipelines import Pipeline
from ml_assets.resources import StoreResource

CODE_VERSION = "1"
# 2: contract-passing text features stored as categoricals
VALIDATED_CODE_VERSION = "2"


def contract_path(env: Environment, settings: PipelineSettings) -> Path:
    return env.contracts_dir / f"{settings.name}.json"


def build_ingestion_assets(pipeline: Pipeline) -> list:
    settings, env = pipeline.settings, pipeline.env
    @dg.asset(
        **pipeline.asset_args(RAW_DATA),
        code_version=CODE_VERSION,
        kinds={"pandas"},
        io_manager_key="snapshot_io_manager",  # stored as the snapshot itself, not re-written
        description="The landed file, copied unchanged into the versioned store; its sha256 is "
        "its data version.",
        check_specs=[
            check_spec(
                READABLE_TABLE,
                prefix=pipeline.slug, partitions_def=pipeline.partitions,
                description="The file can be read as a table with a header and rows.",
            )
        ],
    )
    def raw_data(context: dg.AssetExecutionContext, store: StoreResource):
        import pandas as pd

        from ml_assets.core.tables import TableReadError, read_table

        key = context.partition_key
        versioned = store.of(settings.name)
        record = versioned.version(key)
        snapshot = versioned.verify_snapshot(key)
        base = {
            "file": record.source_name,
            "landing_path": record.source_path,
            "snapshot": dg.MetadataValue.path(str(snapshot)),
            "sha256": record.sha256,
            "size_bytes": record.size,
            "registered_at": record.registered_at,
        }
        try:
            df = read_table(snapshot)
            error = None
        except TableReadError as exc:
            df, error = pd.DataFrame(), str(exc)
        metadata = dict(base)
        if error is None:
            metadata.update(
                {
                    "dagster/row_count": len(df),
                    "columns": len(df.columns),
                    "dagster/column_schema": column_schema(df),
                }
            )
        else:
            metadata["read_error"] = error
        yield dg.Output(df, data_version=dg.DataVersion(record.sha256), metadata=metadata)
        yield dg.AssetCheckResult(
            check_name=READABLE_TABLE.name,
            passed=error is None,
            description=(
                f"{len(df)} rows x {len(df.columns)} columns"
                if error is None
                else f"{record.source_name} (data version {key}) could not be read as a "
                f"table: {error}"
            ),
            metadata={"file": record.source_name, "reason": error or "readable"},
        )

    @dg.asset(
        **pipeline.asset_args(VALIDATED_DATA),
        ins=pipeline.ins(RAW_DATA),
        # -r<N>: the contract revision, so accepting a widened contract marks validated_data stale
        code_version=f"{VALIDATED_CODE_VERSION}-{settings_version(settings, 'target', 'task', 'id_columns', 'contract')}"
        f"-r{revision_on_disk(contract_path(env, settings))}",
        kinds={"pandas", "great_expectations"},
        description="Rows that passed the data contract (Great Expectations suite); rows with a "
        "missing label are dropped and counted.",
        check_specs=[
            check_spec(
                DATA_CONTRACT,
                prefix=pipeline.slug, partitions_def=pipeline.partitions,
                description="The Great Expectations data contract, its breakage (expectations "
                "of severity 'critical'): row count, columns, types, columns gone mostly empty, "
                "values off by orders of magnitude or of a sign never seen, target values.",
            ),
            check_spec(
                DATA_CHANGES,
                prefix=pipeline.slug, partitions_def=pipeline.partitions,
                description="Change from the data contract (its expectations of severity "
                "'warning'): values outside the observed range, emptier columns, new "
                "categories. Reported as a warning, never blocking.",
            ),
        ],
    )
    def validated_data(context: dg.AssetExecutionContext, raw_data):
        from ml_assets.core.contract import validate_table
        from ml_assets.core.contract.evolve import revision_of
        from ml_assets.ingestion.contract_file import contract_for_version

        key = context.partition_key
        contract, created = contract_for_version(raw_data, settings, contract_path(env, settings), key)
        result = validate_table(raw_data, contract)
        if created and result.success:
            from ml_assets.ingestion.contract_file import accept_contract

            accept_contract(contract, contract_path(env, settings), key)
            context.log.info(f"data contract inferred from {key} and saved to {contract_path(env, settings)}")

        labelled = raw_data[settings.target].notna() if settings.target in raw_data else None
        if labelled is None:
            cleaned = raw_data.iloc[0:0]
        elif labelled.all():
            cleaned = raw_data  # no copy of a table that loses no row
        else:
            cleaned = raw_data[labelled]
        if result.success:
            from ml_assets.core.columns import as_categories
            from ml_assets.core.contract import roles_from_contract

            # the contract's text features as categoricals, from here on downstream
            cleaned = as_categories(cleaned, roles_from_contract(contract).categorical)
        dropped = len(raw_data) - len(cleaned)
        metadata = {
            "dagster/row_count": len(cleaned),
            "dropped_rows_missing_label": dropped,
            "dagster/column_schema": column_schema(cleaned),
            # Only the columns with blanks: a list of thirty zeros hides the one that matters.
            "null_shares": json_meta(
                {c: round(float(v), 4) for c, v in raw_data.isna().mean().items() if v > 0}
            ),
            "contract_file": dg.MetadataValue.path(str(contract_path(env, settings))),
            "contract_revision": revision_of(contract),
            "changed_columns": json_meta(result.changed_columns),
        }
        if settings.task == "classification" and settings.target in cleaned:
            metadata["class_balance"] = json_meta(
                {str(k): int(v) for k, v in cleaned[settings.target].value_counts().items()}
            )
        yield dg.Output(cleaned, metadata=metadata)
        yield dg.AssetCheckResult(
            check_name=DATA_CONTRACT.name,
            passed=result.success,
            description=(
                f"all {result.evaluated} expectations passed"
                if result.success
                else f"data version {key}: " + result.describe()
            ),
            metadata=_contract_metadata(result),
        )
        yield dg.AssetCheckResult(
            check_name=DATA_CHANGES.name,
            passed=not result.changes,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"data version {key}: " + result.describe_changes(),
            metadata=_changes_metadata(result),
        )

    return [raw_data, validated_data]


def _contract_metadata(result) -> dict:
    meta = {
        "expectations_evaluated": result.evaluated,
        "expectations_failed": len(result.failures),
        "result": json_meta(result.to_metadata()),
    }
    if result.failures:
        meta["failures"] = _failure_table(result.failures)
    return meta


def _changes_metadata(result) -> dict:
    meta = {
        "changed_columns": json_meta(result.changed_columns),
        "changes": json_meta(
            [
                {
                    "column": f.column,
                    "expectation": f.expectation,
                    "summary": f.summary,
                    "observed": f.observed,
                    "expected": f.expected,
                }
                for f in result.changes
            ]
        ),
    }
    if result.changes:
        meta["changes_table"] = _failure_table(result.changes)
    return meta


def _failure_table(failures) -> dg.MetadataValue:
    """Failed expectations as a markdown table, with the example rows of the first that has any."""
    lines = ["| expectation | column | what was observed |", "|---|---|---|"]
    for f in failures:
        lines.append(f"| `{f.expectation}` | {f.column or ''} | {f.summary.replace('|', '/')} |")
    examples = next((f.examples for f in failures if f.examples), None)
    if examples:
        cols = list(examples[0])[:12]
        lines += ["", "Example rows:", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in examples[:5]:
            lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    return dg.MetadataValue.md("\n".join(lines))
