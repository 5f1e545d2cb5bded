"""Python's garbage collector during runs: a frozen heap, cheap collections, a fast exit.

A run's process holds millions of long-lived objects (Dagster, Great Expectations, MLflow,
scikit-learn, pydantic models), and every full collection walks them all: 0.2-0.3 s each in a
process that has imported them, several times a run, and once more while the interpreter
shuts down (1.1 s of a 10k-row `ml-assets run` went to its exit). Python's `gc.freeze` is made
for this: frozen objects are left out of every collection (they are still freed as soon as
nothing refers to them). So:

- while `ml-assets run` imports its libraries, there are no automatic collections, and what
  it imported is frozen (`importing`);
- when a run starts, the heap is frozen and full collections made rarer (`run_starts`);
- when a step starts, what the step before it left behind is collected, then frozen
  (`step_starts`), when the previous step grew the process by a large table's worth. Dagster's step context and a step's inputs refer to each other, so a step's
  input table lives on after the step, in a reference cycle; that cycle was made during the
  step, so a collection of the objects made since the last freeze finds it in milliseconds
  where a full one takes tenths of a second, and the table goes with it;
- when a run ends, the heap is thawed (`run_ends`): a process that goes on (a test session, a
  notebook) gets its garbage collected as usual;
- when a process that ran steps exits, the heap is frozen once more (`freeze_at_exit`), so the
  interpreter's last collections skip it; atexit handlers, flushing and module teardown still
  happen as usual.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator

_frozen = False  # our freeze is in force (a freeze made by other code is not ours to undo)
_step: object = None  # the step whose start was seen last
_exit_hook = False
_thresholds: list[int] = []  # the collector's thresholds before the run
RUN_OLDEST_THRESHOLD_FACTOR = 10


def heap_frozen() -> bool:
    return _frozen


def freeze_at_exit() -> None:
    """Let this process exit without its final collections walking the heap (once)."""
    global _exit_hook
    if not _exit_hook:
        atexit.register(gc.freeze)
        _exit_hook = True


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Automatic collections off while a process imports its libraries, then what it imported
    frozen. Imports make millions of objects that live as long as the process, and each
    automatic full collection on the way walks all of them again (0.3 s of the start-up of a
    10k-row `ml-assets run`); garbage made meanwhile is collected once the run has ended."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def run_starts() -> None:
    """A run starts in this process: take everything alive now out of the collections."""
    global _frozen, _step
    _step = None
    freeze_at_exit()
    if not _frozen:
        _thresholds[:] = gc.get_threshold()
        young, middle, oldest = _thresholds
        # Python runs a full collection when objects promoted to the oldest generation
        # outnumber a quarter of those it held after the last one; with the heap frozen, that
        # count is near zero, so every tenth middle collection became a full one, walking
        # everything made since the last freeze (a library imported by the step: many times
        # over). Ten times rarer during a run; a step start collects what matters.
        gc.set_threshold(young, middle, oldest * RUN_OLDEST_THRESHOLD_FACTOR)
    _frozen = True
    gc.freeze()
    global _resident_at_freeze
    _resident_at_freeze = _resident_bytes()


def step_starts(step: object, release: bool | None = None) -> None:
    """A step of the run starts: collect what the previous step left, then freeze what is
    alive. Only the first call of a step collects, and only when there is much to `release`
    (by default: the process grew by LARGE_GROWTH_BYTES since the last freeze, a large table's
    worth): small leftovers wait for the run's end, and the collection, which walks every
    object made since the last freeze (a library imported by the previous step: tenths of a
    second), is not worth it."""
    global _step, _resident_at_freeze
    if not _frozen:
        return  # not inside a run that froze the heap
    if step != _step:
        _step = step
        if release is None:
            release = _resident_bytes() - _resident_at_freeze >= LARGE_GROWTH_BYTES
        if release:
            gc.collect()  # only the objects made since the last freeze
            give_back_freed_memory()
    gc.freeze()
    _resident_at_freeze = _resident_bytes()


# A step that grew the process this much (a table of a million rows or so) is worth a
# collection to free what it left once it is garbage.
LARGE_GROWTH_BYTES = 32 * 1024 * 1024
_resident_at_freeze = 0


def _resident_bytes() -> int:
    """This process's resident memory (Linux's /proc; elsewhere 0: never a collection)."""
    import os

    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run_ends() -> None:
    """End the run's freeze: every object is the collector's again."""
    global _frozen, _step
    if _frozen and _thresholds:
        gc.set_threshold(*_thresholds)
    _frozen, _step = False, None
    gc.unfreeze()


def give_back_freed_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them for reuse otherwise): after a
    step's table is freed, the next one is read into memory the system can see as free."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do
