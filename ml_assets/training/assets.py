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
from ml_assets.metadata import json_meta, markdown_table, png_markdown, settings_version
from ml_assets.pipelines import Pipeline
from ml_assets.resources import StoreResource
from ml_assets.selections import latest_check_passed

# 2: native categorical gradient boosting, categorical feature table, categories counted once
# 3: row identities in the feature table; the champion compared only on rows it never saw
# 4: the model is the best of several candidates, chosen by cross-validation
CODE_VERSION = "4"
# What the model step's search did, beside the version's artifacts: evaluation and
# registration read it (the model itself stays a plain scikit-learn Pipeline).
SEARCH_FILE = "model_search.json"


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
    pipeline_file = pipeline.source or "the pipeline file"

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
        "scaling) included: the best of the candidates by cross-validation on the training rows "
        "(model.candidates, model.search), refitted on all of them.",
    )
    def model(context: dg.AssetExecutionContext, features, store: StoreResource):
        from ml_assets.core.modeling import ModelSettingsError, train_test
        from ml_assets.core.search_plot import search_png
        from ml_assets.core.training import train_model
        from ml_assets.ingestion.contract_file import load_roles
        from ml_assets.storage import write_json

        refuse_if_contract_failed(context)
        roles = load_roles(contract_path(env, settings))
        X_train, y_train, _, _ = train_test(features, target)
        started = time.perf_counter()
        try:
            # The held-out rows never reach the search: only the training side is passed.
            pipeline, result = train_model(
                roles, X_train, y_train, task=settings.task, model_settings=settings.model,
                metric=settings.primary_metric, positive_label=settings.positive_label,
                seed=settings.seed,
            )
        except ModelSettingsError as exc:
            raise dg.Failure(description=f"{pipeline_file}: {exc}", allow_retries=False) from None
        seconds = time.perf_counter() - started
        write_json(store.of(settings.name).version_dir(context.partition_key) / SEARCH_FILE,
                   result.to_dict())
        metadata = {
            "estimator": result.chosen["estimator"],
            "candidate": result.chosen["candidate"],
            "chosen_because": result.chosen["reason"],
            "params": json_meta(result.chosen["params"]),
            "train_rows": len(X_train),
            "features": len(roles.features),
            "fit_seconds": round(seconds - result.seconds, 3),
        }
        if result.searched:
            metadata.update({
                "search_seconds": result.seconds,
                "search_budget_seconds": result.budget_seconds,
                "stopped_by_budget": result.stopped_by_budget,
                "search_rows": result.search_rows,
                "candidates_tried": len(result.candidates),
                "candidates": search_table(result),
                "search_plot": png_markdown({"model search": search_png(result)}),
            })
        return dg.Output(pipeline, metadata=metadata)

    return [features, model]


def search_table(result) -> dg.MetadataValue:
    """Every candidate of the search: its score, spread, fit time, rows and fate."""
    from ml_assets.core.search import display_score

    rows = [
        {
            "candidate": t.candidate,
            "estimator": t.estimator,
            "params": ", ".join(f"{k}={v}" for k, v in t.params.items()) or "defaults",
            f"cv {result.metric}": display_score(t, result.scoring),
            "± std": t.cv_std,
            "fit s": t.fit_seconds,
            "rows": t.rows,
            "status": t.status,
        }
        for t in result.candidates
    ]
    return markdown_table(rows, list(rows[0]))
