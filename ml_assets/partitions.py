"""The `data_version` dynamic partitions: one partition per content-hashed data snapshot."""

import warnings

import dagster as dg

DATA_VERSION = "data_version"

data_version_partitions = dg.DynamicPartitionsDefinition(name=DATA_VERSION)

# Checks are partitioned like their assets (a preview feature in Dagster 1.13), so the UI and
# `ml-assets status` show each data version's own check results. Known and deliberate: say so
# once here instead of on every load of the code location.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
warnings.filterwarnings("ignore", message="Parameter `data_version` of initializer `Output")
