"""The `data_version` dynamic partitions: one partition per content-hashed data snapshot."""

import dagster as dg

DATA_VERSION = "data_version"

data_version_partitions = dg.DynamicPartitionsDefinition(name=DATA_VERSION)
