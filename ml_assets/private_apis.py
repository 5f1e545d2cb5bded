"""The private Dagster, Great Expectations and MLflow APIs ml_assets relies on, in one place.

Each entry says what it is for and which public way was missing. A name is imported when it is
first asked for (`from ml_assets.private_apis import PartitionKeyFilter`, inside the function
that needs it), so importing this module imports none of those libraries and the code location
loads as fast as without it. `ml_assets_tests/test_private_apis.py` resolves every entry against
the installed libraries: an upgrade that moves one fails there, naming the library, its version
and the name that moved, instead of deep inside a run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class PrivateApiMoved(ImportError):
    """A private name ml_assets relies on is not where it was: its library was upgraded.

    An ImportError, so code that already falls back to a public way when an import fails
    (the contract's validator) keeps doing so.
    """


def installed_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"


@dataclass(frozen=True)
class PrivateApi:
    """One private name: where it lives, who uses it, and what of it the code relies on."""

    distribution: str  # the installed distribution that provides it (for its version)
    module: str
    name: str  # an attribute of the module, dotted for an attribute of a class
    used_by: str  # where ml_assets uses it
    params: tuple[str, ...] = ()  # keyword parameters the code passes when calling it
    members: tuple[str, ...] = ()  # attributes of it the code uses

    @property
    def where(self) -> str:
        return f"{self.module}.{self.name}"

    def import_module(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise self.moved(f"{type(exc).__name__}: {exc}") from exc

    def resolve(self) -> Any:
        value = self.import_module()
        for part in self.name.split("."):
            if not hasattr(value, part):
                raise self.moved(f"{value!r} has no attribute {part!r}")
            value = getattr(value, part)
        return value

    def moved(self, reason: str) -> PrivateApiMoved:
        return PrivateApiMoved(
            f"{self.distribution} {installed_version(self.distribution)}: {self.where} is gone "
            f"({reason}). ml_assets uses it in {self.used_by}: find where this version keeps "
            "it and update ml_assets/private_apis.py"
        )

    def problems(self) -> list[str]:
        """What no longer holds against the installed library, one message each (none: all)."""
        try:
            value = self.resolve()
        except PrivateApiMoved as exc:
            return [str(exc)]
        found = []
        missing = [m for m in self.members if not hasattr(value, m)]
        if missing:
            found.append(f"attributes {missing}")
        accepted = _keywords(value)
        if accepted is not None:
            refused = [p for p in self.params if p not in accepted]
            if refused:
                found.append(f"keyword parameters {refused} (it takes {sorted(accepted)})")
        return [
            f"{self.distribution} {installed_version(self.distribution)}: {self.where} no "
            f"longer has the {what} that {self.used_by} relies on; update "
            "ml_assets/private_apis.py and that code"
            for what in found
        ]


def _keywords(value: Any) -> set[str] | None:
    """The keyword parameters a callable takes (None: it cannot say), with the fields of a
    record class whose constructor takes **kwargs (Dagster's @record classes)."""
    try:
        parameters = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        if not isinstance(value, type):
            return None
        for cls in value.__mro__:
            names |= set(getattr(cls, "__annotations__", {}))
    return names


# Names the code imports from here: `from ml_assets.private_apis import <name>`.
NAMES: dict[str, PrivateApi] = {
    # The config schemas of Dagster's own executor choice, so the code location's executor
    # offers the same `multiprocess` / `in_process` config as multi_or_in_process_executor
    # with in_process as the default. Public way missing: the executor exposes no way to
    # change its default, and the two schemas are not exported.
    "IN_PROC_CONFIG": PrivateApi(
        "dagster", "dagster._core.definitions.executor_definition", "IN_PROC_CONFIG",
        "ml_assets/definitions.py",
    ),
    "MULTI_PROC_CONFIG": PrivateApi(
        "dagster", "dagster._core.definitions.executor_definition", "MULTI_PROC_CONFIG",
        "ml_assets/definitions.py",
    ),
    # Checks the pipeline file's retrain.cron when the file is read, with the key in the
    # message. Public way missing: Dagster checks a cron only when a schedule is built.
    "is_valid_cron_string": PrivateApi(
        "dagster", "dagster._utils.schedules", "is_valid_cron_string", "ml_assets/config.py",
    ),
    # The latest execution of each check on one partition, in one query. Public way missing:
    # no public instance method reads check executions by partition.
    "PartitionKeyFilter": PrivateApi(
        "dagster", "dagster._core.event_api", "PartitionKeyFilter", "ml_assets/selections.py",
        params=("key",),
    ),
    # Staleness as the Dagster UI computes it (`ml-assets run --changed`). Public way
    # missing: Dagster answers "stale, and why" only in its UI and GraphQL API.
    "AssetGraphView": PrivateApi(
        "dagster", "dagster._core.asset_graph_view.asset_graph_view", "AssetGraphView",
        "ml_assets/cli/staleness.py", params=("temporal_context", "instance", "asset_graph"),
    ),
    "CachingStaleStatusResolver": PrivateApi(
        "dagster", "dagster._core.definitions.data_version", "CachingStaleStatusResolver",
        "ml_assets/cli/staleness.py", params=("instance", "asset_graph", "loading_context"),
        members=("get_status", "get_stale_root_causes"),
    ),
    "StaleStatus": PrivateApi(
        "dagster", "dagster._core.definitions.data_version", "StaleStatus",
        "ml_assets/cli/staleness.py", members=("STALE",),
    ),
    "TemporalContext": PrivateApi(
        "dagster", "dagster._core.definitions.temporal_context", "TemporalContext",
        "ml_assets/cli/staleness.py", params=("effective_dt", "last_event_id"),
    ),
    "get_current_datetime": PrivateApi(
        "dagster", "dagster._time", "get_current_datetime", "ml_assets/cli/staleness.py",
    ),
    # Opens the instance of a given DAGSTER_HOME in a process whose environment names another
    # one (tests open the home of the run they started). Public way missing:
    # DagsterInstance.get() reads only $DAGSTER_HOME.
    "InstanceRef": PrivateApi(
        "dagster", "dagster._core.instance.ref", "InstanceRef",
        "ml_assets_tests (test_faults.py, e2e/conftest.py, e2e/test_mlflow_server.py)",
        members=("from_dir",),
    ),
    # Checks a run config against an executor's own schema. Public way missing: the public
    # validate_run_config checks the run config of a whole job, not one executor's schema.
    "validate_config": PrivateApi(
        "dagster", "dagster._config", "validate_config",
        "ml_assets_tests/system/test_kubernetes.py",
    ),
    # What ValidationDefinition.run does inside, without storing the result in the context's
    # result store (a JSON serialisation of every result: 0.2-0.5 s per table); the contract
    # falls back to the public ValidationDefinition when this name is gone. Public way
    # missing: validating a batch without storing the result.
    "Validator": PrivateApi(
        "great_expectations", "great_expectations.validator.v1_validator", "Validator",
        "ml_assets/core/contract/validate.py",
        params=("batch_definition", "batch_parameters", "result_format"),
        members=("validate_expectation_suite",),
    ),
    # Turns off the tqdm bars ("Calculating Metrics") GX draws on stderr for every
    # validation. Public way missing: context.variables.progress_bars takes only this type.
    "ProgressBarsConfig": PrivateApi(
        "great_expectations", "great_expectations.data_context.types.base",
        "ProgressBarsConfig", "ml_assets/core/contract/suite.py",
        params=("globally", "metric_calculations"),
    ),
    # Builds a GX expectation from its JSON form (type, kwargs, meta, severity) as the
    # contract file holds it. Public way missing: the public expectation classes take each
    # type's own kwargs; the generic form is not part of GX's public API.
    "ExpectationConfiguration": PrivateApi(
        "great_expectations", "great_expectations.expectations.expectation_configuration",
        "ExpectationConfiguration", "ml_assets/core/contract/suite.py",
        params=("type", "kwargs", "meta", "severity"), members=("to_domain_obj",),
    ),
    # Whether MLflow started its telemetry client, to test that loading the code location
    # turns it off. Public way missing: MLFLOW_DISABLE_TELEMETRY turns it off, but nothing
    # public says whether the client started.
    "get_telemetry_client": PrivateApi(
        "mlflow", "mlflow.telemetry.client", "get_telemetry_client",
        "ml_assets_tests/test_library_settings.py",
    ),
}

# MLflow's cached map of every installed module to its distribution, and its inverse: emptied
# while a model is logged (see no_site_packages_scan, used by ml_assets/registry/registration.py).
MLFLOW_MODULES_TO_PACKAGES = PrivateApi(
    "mlflow", "mlflow.utils.requirements_utils", "_MODULES_TO_PACKAGES",
    "ml_assets/registry/registration.py (through no_site_packages_scan)",
)
MLFLOW_PACKAGES_TO_MODULES = PrivateApi(
    "mlflow", "mlflow.utils.requirements_utils", "_PACKAGES_TO_MODULES",
    "ml_assets/registry/registration.py (through no_site_packages_scan)",
)

# Attributes the code uses on objects it gets through public APIs, not imported from here:
# listed so that the test checks them against the installed libraries too.
ATTRIBUTES: tuple[PrivateApi, ...] = (
    # Instance methods Dagster does not mark public. all_logs: a run's whole event log, in
    # order (the public fetch_* read one event type at a time); report_run_failed: marks a
    # run whose process died as failed, so it can be resumed; add_run_tags: marks a run a
    # gate blocked, so `ml-assets run` does not read its events again; event_log_storage: see
    # PartitionKeyFilter; from_ref: see InstanceRef. get_runs and get_run_ids have a public
    # form, get_run_records (records that wrap the same runs).
    PrivateApi(
        "dagster", "dagster", "DagsterInstance",
        "ml_assets/cli (run.py, status.py, run_summary.py), ml_assets/monitoring/sensors.py, "
        "ml_assets/selections.py and tests",
        members=("all_logs", "report_run_failed", "add_run_tags", "event_log_storage", "from_ref",
                 "get_runs", "get_run_ids"),
    ),
    # The storage method behind latest_check_executions (see PartitionKeyFilter).
    PrivateApi(
        "dagster", "dagster._core.storage.event_log.base",
        "EventLogStorage.get_latest_asset_check_execution_by_key", "ml_assets/selections.py",
        params=("check_keys", "partition_filter"),
    ),
    # The asset graph the stale-status resolver reads (see AssetGraphView).
    PrivateApi(
        "dagster", "dagster", "Definitions.resolve_asset_graph", "ml_assets/cli/staleness.py",
    ),
    # dagster-mlflow's run set-up, called when the registration step first needs the MLflow
    # run rather than when the resource is set up at the start of every Dagster run (which
    # left an empty FAILED MLflow run behind each blocked version). Public way missing:
    # ResourceDefinition.resource_fn is not marked public, and the resource has no lazy mode.
    PrivateApi(
        "dagster-mlflow", "dagster_mlflow", "mlflow_tracking.resource_fn",
        "ml_assets/registry/mlflow_wiring.py",
    ),
    MLFLOW_MODULES_TO_PACKAGES,
    MLFLOW_PACKAGES_TO_MODULES,
    # Where GX keeps the progress-bar setting (see ProgressBarsConfig).
    PrivateApi(
        "great_expectations", "great_expectations.data_context.data_context_variables",
        "DataContextVariables.progress_bars", "ml_assets/core/contract/suite.py",
    ),
)


def all_private_apis() -> list[PrivateApi]:
    return [*NAMES.values(), *ATTRIBUTES]


def __getattr__(name: str) -> Any:
    """A name of NAMES, imported from its library on first use (PEP 562)."""
    entry = NAMES.get(name)
    if entry is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = entry.resolve()
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *NAMES})


@contextlib.contextmanager
def no_site_packages_scan() -> Iterator[None]:
    """Skip the scan of every installed distribution that log_model makes (~2 s here).

    With pip_requirements given, MLflow infers nothing; it still maps every module of the
    environment to its distribution, only to warn when a pinned requirement is not the
    installed version, which cannot happen for pins read from this environment. An empty map
    makes MLflow look each requirement up by name (importlib.metadata.version), which is what
    our pins are. Restored afterwards, so nothing else in the process sees the empty map.
    Public way missing: log_model has no option to skip the scan.
    """
    ru = MLFLOW_MODULES_TO_PACKAGES.import_module()  # mlflow.utils.requirements_utils
    if getattr(ru, "_MODULES_TO_PACKAGES", False) is not None:
        yield  # already computed (or a future MLflow without this map): nothing to skip
        return
    ru._MODULES_TO_PACKAGES = {}
    try:
        yield
    finally:
        ru._MODULES_TO_PACKAGES = None
        ru._PACKAGES_TO_MODULES = None
