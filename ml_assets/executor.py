"""The code location's default executor: Dagster's multi_or_in_process_executor, with
in-process as the default instead of multiprocess, and the one seam where ml_assets.heap
learns that a run and its steps start (cheaper garbage collection; `benchmarks/tuning.py`
measures what it saves)."""

from __future__ import annotations

import dagster as dg

from ml_assets import heap


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

    @dg.executor(
        name="in_process_or_multiprocess",
        config_schema=dg.Field(
            dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
            default_value={"in_process": {}},
        ),
    )
    def in_process_or_multiprocess(init_context) -> dg.Executor:
        inner = dg.multi_or_in_process_executor.executor_creation_fn(init_context)
        in_process = "in_process" in init_context.executor_config
        return _HeapTuned(inner) if in_process else inner

    return in_process_or_multiprocess


class _HeapTuned(dg.Executor):
    """The in-process executor, telling ml_assets.heap when the run and each step start.

    Steps run in this process one after another, lazily: the next step begins only when its
    start event is taken from the inner executor, so the collection happens between steps.
    """

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        heap.run_starts()
        try:
            for event in self._inner.execute(plan_context, execution_plan):
                if event.is_step_start:
                    heap.step_starts(event.step_key)
                yield event
        finally:
            heap.run_ends()
