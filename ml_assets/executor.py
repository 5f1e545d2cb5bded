"""The code location's default executor: Dagster's multi_or_in_process_executor, with
in-process as the default instead of multiprocess."""

import dagster as dg


def in_process_by_default() -> dg.ExecutorDefinition:
    """One process for the whole run: for a graph of seven steps, step subprocesses cost more
    than they save: each one imports the code location and its libraries again (`make bench`
    measures it side by side). A run can still choose multiprocess in its run config:

        execution:
          config:
            multiprocess:
              start_method: {forkserver: {}}
    """
    from ml_assets.private_apis import IN_PROC_CONFIG, MULTI_PROC_CONFIG

    return dg.multi_or_in_process_executor.configured(
        lambda config: config,
        name="in_process_or_multiprocess",
        config_schema=dg.Field(
            dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
            default_value={"in_process": {}},
        ),
    )
