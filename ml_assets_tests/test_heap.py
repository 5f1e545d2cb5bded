"""The garbage collector during runs (ml_assets/heap.py): a step's leftovers are freed when the
next step starts, without a full collection; the heap is the collector's again after a run;
an exiting process freezes it so the interpreter's last collections skip it."""

import gc
import subprocess
import sys
import weakref

import dagster as dg
import pandas as pd

from ml_assets import heap
from ml_assets.executor import in_process_by_default
from ml_assets.partitions import data_version_partitions
from ml_assets.pipelines import PIPELINE_METADATA
from ml_assets.resources import VersionedStoreIOManager

PARTITIONS = data_version_partitions("heap__data_version")


class Table:
    """Stands for a big frame (weak-referenceable, tracked by the collector)."""


def test_what_a_step_left_in_a_reference_cycle_is_freed_when_the_next_step_starts():
    heap.run_starts()
    try:
        table = Table()
        gone = weakref.ref(table)
        heap.step_starts("validated_data")  # the table is older than this step: frozen now
        context = {"inputs": [table]}
        context["self"] = context  # the step's context and its inputs refer to each other
        del table, context
        assert gone() is not None  # only the cycle holds it, and no collection has run yet
        heap.step_starts("features", release=True)
        assert gone() is None
        assert heap.heap_frozen()
    finally:
        heap.run_ends()
    assert not heap.heap_frozen() and gc.get_freeze_count() == 0


def test_full_collections_are_rarer_during_a_run_only():
    before = gc.get_threshold()
    heap.run_starts()
    try:
        factor = heap.RUN_OLDEST_THRESHOLD_FACTOR
        assert gc.get_threshold() == (before[0], before[1], before[2] * factor)
        heap.run_starts()  # a second set-up in the same run (another IO manager) changes nothing
        assert gc.get_threshold()[2] == before[2] * factor
    finally:
        heap.run_ends()
    assert gc.get_threshold() == before


def test_small_leftovers_wait_for_the_end_of_the_run():
    heap.run_starts()
    try:
        table = Table()
        gone = weakref.ref(table)
        heap.step_starts("validated_data")
        context = {"inputs": [table]}
        context["self"] = context
        del table, context
        heap.step_starts("features", release=False)  # not worth a collection
        assert gone() is not None
    finally:
        heap.run_ends()
    gc.collect()
    assert gone() is None


def test_imports_run_without_automatic_collections_and_end_frozen():
    assert gc.isenabled()
    with heap.importing():
        assert not gc.isenabled()
        imported = Table()
    try:
        assert gc.isenabled() and gc.get_freeze_count() > 0
        assert not any(o is imported for o in gc.get_objects())  # frozen: not the collector's
    finally:
        gc.unfreeze()


def test_a_step_that_grew_the_process_by_a_large_table_is_collected_after():
    # Memory that earlier tests in this process freed, but that the allocator kept resident,
    # would hold the table without the process growing: hand it back first, as a fresh
    # run's process would not have it.
    heap.give_back_freed_memory()
    heap.run_starts()
    try:
        heap.step_starts("features")
        table = [bytearray(1024) for _ in range(heap.LARGE_GROWTH_BYTES // 1024 + 4096)]
        gone = weakref.ref(leftover := Table())
        leftover.rows = table
        cycle = {"inputs": [leftover]}
        cycle["self"] = cycle
        del table, leftover, cycle
        heap.step_starts("model")  # grew by more than LARGE_GROWTH_BYTES: collected
        assert gone() is None
    finally:
        heap.run_ends()


def test_a_step_start_outside_a_run_leaves_the_heap_alone():
    heap.step_starts("model")
    assert not heap.heap_frozen() and gc.get_freeze_count() == 0


def test_an_exiting_process_freezes_its_heap_before_the_interpreter_shuts_down():
    # atexit runs handlers last-registered-first: the probe registered before the hook runs
    # after it, and sees what the interpreter's final collections will see.
    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from ml_assets import heap\n"
        "heap.freeze_at_exit(); heap.freeze_at_exit()\n"
        "print('frozen before exit:', gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.split("\n")[:2] == ["frozen before exit: False", "frozen at exit: True"]


# A three-step graph through the real IO manager and the code location's executor under
# dg.execute_job (what ml-assets run and the run worker use; execute_in_process would keep
# every output for its result object). The table is large enough to be worth a collection.
ALIVE: dict[str, bool] = {}
FIRST_TABLE: list[weakref.ref] = []


@dg.asset(partitions_def=PARTITIONS, metadata={PIPELINE_METADATA: "heap"})
def first_table() -> pd.DataFrame:
    table = pd.DataFrame({"x": range(3_000_000), "y": ["a", "b"] * 1_500_000})
    FIRST_TABLE.append(weakref.ref(table))
    return table


@dg.asset(partitions_def=PARTITIONS, metadata={PIPELINE_METADATA: "heap"})
def second_table(first_table: pd.DataFrame) -> pd.DataFrame:
    return first_table.assign(z=first_table["x"] * 2)


@dg.asset(partitions_def=PARTITIONS, metadata={PIPELINE_METADATA: "heap"})
def third_step(second_table: pd.DataFrame) -> dict:
    ALIVE["first_table"] = FIRST_TABLE[-1]() is not None
    return {"rows": len(second_table)}


def heap_job():
    return dg.Definitions(
        assets=[first_table, second_table, third_step],
        jobs=[dg.define_asset_job("heap_job")],
        resources={"io_manager": VersionedStoreIOManager(root=heap_job.root)},
        executor=in_process_by_default(),  # the code location's own
    ).resolve_job_def("heap_job")


def test_a_run_frees_a_table_once_no_step_needs_it_and_thaws_the_heap(tmp_path, instance):
    heap_job.root = str(tmp_path / "store")
    instance.add_dynamic_partitions(PARTITIONS.name, ["v1"])
    with dg.execute_job(dg.reconstructable(heap_job), instance=instance,
                        tags={"dagster/partition": "v1"}) as result:
        assert result.success
    # second_table's step held first_table as its input; by the time third_step runs, that
    # step's context is gone and the table with it, though the heap was frozen all along
    assert ALIVE == {"first_table": False}
    assert not heap.heap_frozen() and gc.get_freeze_count() == 0
