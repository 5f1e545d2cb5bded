"""A pipeline's data-version partitions (`<slug>__data_version`): one dynamic partition per
content-hashed data snapshot."""

import warnings

import dagster as dg

# The partitions' name before pipelines were named after their slug (one pipeline per code
# location): what `ml-assets migrate` reads an older home's versions from.
LEGACY_DATA_VERSION = "data_version"


def data_version_partitions(partitions_name: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name)

# Checks are partitioned like their assets (a preview feature in Dagster 1.13), so the UI and
# `ml-assets status` show each data version's own check results. Known and deliberate: say so
# once here instead of on every load of the code location.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
warnings.filterwarnings("ignore", message="Parameter `data_version` of initializer `Output")
