"""features and model: the feature table with its split, and the fitted scikit-learn Pipeline."""


import time

import dagster as dg

from ml_assets.graph import (
    DATA_CONTRACT,
    FEATURES,
    MODEL,
    VALIDATED_DATA,
)
from ml_assets.ingestion.assets import contract_path
from ml_assets.metadata import json_meta, settings_version
from ml_assets.pipelines import Pipeline
from ml_assets.selections import latest_check_passed

# 2: native categorical gradient boosting, categorical feature table, categories counted once
# 3: row identities in the feature table; the champion compared only on rows it never saw
CODE_VERSION = "3"


def refuse_if_contract_failed(context: dg.AssetExecutionContext) -> None:
    """Blocking checks stop downstream steps only within their own run. A later run that
    selects only the steps after validation (a retrain by sensor, schedule or click) must not
    use a version whose data contract failed, so features and model look the verdict up."""
    slug = context.asset_key.path[0]
    if latest_check_passed(context.instance, DATA_CONTRACT, context.partition_key, slug) is False:
        raise dg.Failure(
            description=f"refusing to train on data version {context.partition_key}: its data "
            f"contract ({DATA_CONTRACT.label}) failed",
            allow_retries=False,
        )


def build_training_assets(pipeline: Pipeline) -> list:
    settings, env = pipeline.settings, pipeline.env
    target = settings.target

    @dg.asset(
        **pipeline.asset_args(FEATURES),
        ins=pipeline.ins(VALIDATED_DATA),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'target', 'task', 'seed', 'test_size', 'id_columns')}",
        kinds={"pandas"},
        description="The feature table ready for training: feature columns (ids dropped), the "
        "target, the recorded train/test split and each row's identity (from the id columns, "
        "else the feature and label values), which keeps the champion from being judged on "
        "rows it was trained on.",
    )
    def features(context: dg.AssetExecutionContext, validated_data):
        import pandas as pd

        from ml_assets.core.columns import as_categories
        from ml_assets.core.modeling import SPLIT_COLUMN, split_rows
        from ml_assets.core.overlap import add_row_keys, identity_columns
        from ml_assets.ingestion.contract_file import load_roles

        refuse_if_contract_failed(context)
        roles = load_roles(contract_path(env, settings))
        # Text features as categoricals (validated_data stores them so already; a table
        # stored by an earlier code version may not). The model sees the same values.
        # A new frame of the columns we keep (the input stays as it was), renumbered from 0:
        # what reset_index(drop=True) gives, without copying a million rows once more.
        table = validated_data[[*roles.features, target]].copy(deep=False)
        table.index = pd.RangeIndex(len(table))
        table = as_categories(table, roles.categorical)
        table[SPLIT_COLUMN] = split_rows(
            table[target], settings.task, settings.test_size, settings.seed
        ).astype("category")
        # From validated_data, which still has the id columns the feature table drops.
        key_method, key_columns = identity_columns(
            settings.id_columns, validated_data.columns, [*roles.features, target]
        )
        add_row_keys(table, validated_data, key_method, key_columns)
        sizes = table[SPLIT_COLUMN].value_counts()
        metadata = {
            "dagster/row_count": len(table),
            "train_rows": int(sizes.get("train", 0)),
            "test_rows": int(sizes.get("test", 0)),
            "numeric_features": json_meta(list(roles.numeric)),
            "categorical_features": json_meta(list(roles.categorical)),
            "id_columns_dropped": json_meta(list(roles.ids)),
            "row_identity": key_method,
        }
        if settings.task == "classification":
            balance = table.groupby(SPLIT_COLUMN, observed=True)[target].value_counts().unstack(fill_value=0)
            metadata["class_balance_by_split"] = json_meta(
                {split: {str(k): int(v) for k, v in row.items()} for split, row in balance.iterrows()}
            )
        return dg.Output(table, metadata=metadata)

    @dg.asset(
        **pipeline.asset_args(MODEL),
        ins=pipeline.ins(FEATURES),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'task', 'seed', 'model')}",
        kinds={"scikitlearn"},
        description="The fitted scikit-learn Pipeline, preprocessing (imputation, encoding, "
        "scaling) included.",
    )
    def model(context: dg.AssetExecutionContext, features):
        from ml_assets.core.modeling import build_pipeline, fit_pipeline, train_test
        from ml_assets.ingestion.contract_file import load_roles

        refuse_if_contract_failed(context)
        roles = load_roles(contract_path(env, settings))
        X_train, y_train, _, _ = train_test(features, target)
        pipeline = build_pipeline(
            roles, settings.task, settings.model.estimator or "hist_gradient_boosting",
            settings.model.params, settings.seed
        )
        started = time.perf_counter()
        fit_pipeline(pipeline, X_train, y_train)
        fit_seconds = time.perf_counter() - started
        estimator = pipeline.named_steps["estimator"]
        return dg.Output(
            pipeline,
            metadata={
                "estimator": type(estimator).__name__,
                "params": json_meta(settings.model.params),
                "train_rows": len(X_train),
                "features": len(roles.features),
                "fit_seconds": round(fit_seconds, 3),
            },
        )

    return [features, model]
