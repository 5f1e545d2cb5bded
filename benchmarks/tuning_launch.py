"""`ml-assets` with the garbage-collector tuning and/or the recent-frame cache switched off, for
benchmarks/tuning.py: the same `ml_assets.cli.main` the console script calls, after patching.

    python benchmarks/tuning_launch.py [--no-heap | --heap-cli-only] [--no-cache] run

--no-heap   every function of `ml_assets.heap` does nothing (`importing` is an empty context)
--heap-cli-only  only the command line's part of it stays (`importing`, `freeze_at_exit`);
            what the executor calls during a run (`run_starts`, `step_starts`, `run_ends`,
            `give_back_freed_memory`) does nothing
--no-cache  the IO managers' `storage.RecentFrame` never hands a frame on, so every step reads
            its input back from the store (the snapshot is re-hashed and re-parsed, frames are
            read from Parquet)

Without flags nothing is patched: that is the "as is" variant, launched the same way so that
the variants differ only by the patch. On exit it prints one `TUNING_CHECK {json}` line on
stderr (which code ran, how many collections were frozen out, how many Parquet reads), so
the benchmark can check each patch took effect.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import sys

# Only these two small modules are imported before the CLI (no pandas, Dagster or
# scikit-learn), the same in every variant.
import ml_assets.heap
import ml_assets.storage


def _nothing(*args, **kwargs) -> None:
    return None


RUN_HOOKS = ("run_starts", "step_starts", "run_ends", "give_back_freed_memory")
FLAGS = ("--no-heap", "--heap-cli-only", "--no-cache")


def switch_run_hooks_off() -> None:
    """The heap tuning the IO managers do during a run: gone."""
    for name in RUN_HOOKS:
        setattr(ml_assets.heap, name, _nothing)


def switch_heap_off() -> None:
    switch_run_hooks_off()
    heap = ml_assets.heap
    heap.freeze_at_exit = _nothing
    heap.importing = contextlib.nullcontext
    heap.heap_frozen = lambda: False


class RefusedLookups:
    """Counts the lookups `RecentFrame.get` refused once the cache is switched off."""

    def __init__(self) -> None:
        self.lookups = 0


def switch_cache_off() -> RefusedLookups:
    """Every IO manager's RecentFrame answers "not held": each step reads its input back."""
    refused = RefusedLookups()

    def get(self, path):
        refused.lookups += 1
        return None

    ml_assets.storage.RecentFrame.get = get
    return refused


def count_parquet_reads() -> list[int]:
    """Count storage.load_frame calls (the Parquet reads), in every variant alike."""
    reads = [0]
    load_frame = ml_assets.storage.load_frame

    def counted(path):
        reads[0] += 1
        return load_frame(path)

    ml_assets.storage.load_frame = counted
    return reads


def main(argv: list[str]) -> int:
    heap = "off" if "--no-heap" in argv else "cli only" if "--heap-cli-only" in argv else "on"
    cache_on = "--no-cache" not in argv
    cli_argv = [a for a in argv if a not in FLAGS]
    reads = count_parquet_reads()
    stand_in = None if cache_on else switch_cache_off()
    if heap == "off":
        switch_heap_off()
    elif heap == "cli only":
        switch_run_hooks_off()

    def report() -> None:
        check = {
            "heap": heap,
            "cache": cache_on,
            "ml_assets": ml_assets.storage.__file__,
            "frozen_objects_at_exit": gc.get_freeze_count(),
            "parquet_reads": reads[0],
            "cache_lookups_refused": stand_in.lookups if stand_in else None,
            "io_manager_uses_stand_in": stand_in is not None and stand_in.lookups > 0,
        }
        print("TUNING_CHECK " + json.dumps(check), file=sys.stderr, flush=True)

    # Registered first, so it runs last: after heap.freeze_at_exit's freeze, when there is one.
    atexit.register(report)
    from ml_assets.cli import main as cli

    return cli(cli_argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
