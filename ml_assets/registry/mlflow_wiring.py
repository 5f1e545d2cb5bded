"""The MLflow wiring, and the one place where dagster-mlflow's gaps are worked around.

dagster-mlflow's `mlflow_tracking` resource starts (or resumes, by the `dagster_run_id` tag)
one MLflow run per Dagster run. Its gaps, handled here:

1. It calls `mlflow.set_experiment(name)`, which would create the experiment with MLflow's
   default artifact root (`./mlruns` in whatever directory the process started in). We create
   the experiment first, with its artifacts under `$ML_ASSETS_HOME/mlartifacts`.
2. Its `end_mlflow_on_run_finished` hook is for op jobs; asset jobs never end the run, so it
   stays RUNNING forever. Only the registration step uses MLflow, and it ends the run itself
   (FINISHED, or FAILED on error: see `finish_mlflow_run`); the resource teardown below ends
   anything still open as FAILED, so no run dangles.
3. A retried step resumes the same MLflow run (by the id dagster-mlflow found or started, see
   `finish_mlflow_run`), so retries do not multiply runs.
4. It starts the MLflow run when the resource is set up, which the in-process executor does
   at the start of a Dagster run: a version blocked by its data contract or its quality gate
   left an empty FAILED MLflow run behind, and paid for importing MLflow. Here the MLflow run
   starts when the registration step first asks for it (`MlflowRun.handle`).

A tracking server that cannot be reached (refused, timed out) is a fault of its own: every
call to it goes through `reaching`, which has the step retried with exponential backoff
(ML_ASSETS_MLFLOW_RETRIES, ML_ASSETS_MLFLOW_RETRY_DELAY) and then fails it with one message
naming the tracking URI.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.environment import EnvironmentError_

from ml_assets.registry.registration import CHAMPION_ALIAS, MODEL_ARTIFACT  # noqa: F401 (re-exported)


class ModelIntegrityError(RuntimeError):
    """A registered model whose files do not match their recorded checksum: never retried."""


RETRIES_VARIABLE = "ML_ASSETS_MLFLOW_RETRIES"
RETRY_DELAY_VARIABLE = "ML_ASSETS_MLFLOW_RETRY_DELAY"


@dataclass(frozen=True)
class MlflowRetries:
    """How often a step that needs MLflow is tried again, and how long it waits before the
    first retry (doubled for each one after it)."""

    retries: int = 3
    delay: float = 2.0

    def wait_before(self, retry_number: int) -> float:
        """Seconds before retry `retry_number + 1` (0 is the first retry)."""
        return self.delay * 2**retry_number


def mlflow_retries(environ: Mapping[str, str] | None = None) -> MlflowRetries:
    """ML_ASSETS_MLFLOW_RETRIES and ML_ASSETS_MLFLOW_RETRY_DELAY, or their defaults."""
    env = os.environ if environ is None else environ
    default = MlflowRetries()
    raw_retries = env.get(RETRIES_VARIABLE) or str(default.retries)
    raw_delay = env.get(RETRY_DELAY_VARIABLE) or str(default.delay)
    try:
        retries = int(raw_retries)
        if retries < 0:
            raise ValueError
    except ValueError:
        raise EnvironmentError_(
            f"{RETRIES_VARIABLE}: expected a whole number of retries >= 0, got {raw_retries!r}"
        ) from None
    try:
        delay = float(raw_delay)
        if not delay >= 0:  # also refuses nan
            raise ValueError
    except ValueError:
        raise EnvironmentError_(
            f"{RETRY_DELAY_VARIABLE}: expected seconds >= 0, got {raw_delay!r}"
        ) from None
    return MlflowRetries(retries, delay)


# MLflow is a service: a transient failure (5xx, a locked sqlite file) is retried with
# exponential backoff and jitter before the run gives up. Every step that talks to it
# (evaluation, drift, registration) carries this policy. A server that cannot be reached at
# all is retried by `reaching` instead, which can say so in one line once it gives up.
_RETRIES = mlflow_retries()
MLFLOW_RETRY = dg.RetryPolicy(
    max_retries=_RETRIES.retries, delay=_RETRIES.delay, backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)


class TrackingServerUnreachable(RuntimeError):
    """The MLflow tracking server refused the connection or did not answer in time."""


def unreachable_reason(error: BaseException) -> str | None:
    """Why the tracking server could not be reached ("Connection refused"), when that is what
    `error` (or an exception it was raised from) says; None for any other error, an HTTP 5xx
    answer among them: a server that answers is reachable."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.Timeout):
            timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
            return f"no answer within MLFLOW_HTTP_REQUEST_TIMEOUT={timeout} s"
        if isinstance(current, requests.exceptions.ConnectionError):
            # "... [Errno 111] Connection refused')": the operating system's own words
            found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", str(current))
            return found.group(1).strip() if found else type(current).__name__
        # MLflow raises its own error while handling the requests one (implicit context)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


@contextmanager
def reaching(tracking_uri: str) -> Iterator[None]:
    """Calls to the tracking server: when it cannot be reached, a step is retried with
    exponential backoff (`mlflow_retries`) and then fails with one message naming the
    tracking URI; outside a step (a sensor, the CLI) the same message is raised at once."""
    try:
        yield
    except (dg.RetryRequested, dg.Failure, TrackingServerUnreachable):
        raise
    except Exception as exc:
        reason = unreachable_reason(exc)
        if reason is None:
            raise
        _give_up_or_retry(tracking_uri, reason)


def _give_up_or_retry(tracking_uri: str, reason: str) -> None:
    unreachable = f"MLflow tracking server {tracking_uri} unreachable"
    try:
        context = dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        raise TrackingServerUnreachable(f"{unreachable}: {reason}") from None
    settings = mlflow_retries()
    attempt = context.retry_number  # 0 for the first attempt
    if attempt < settings.retries:
        wait = settings.wait_before(attempt)
        context.log.warning(
            f"{unreachable} ({reason}); attempt {attempt + 1} of {settings.retries + 1}, "
            f"trying again in {wait:g} s"
        )
        # Dagster's own retry: the step is rescheduled, other steps go on meanwhile.
        raise dg.RetryRequested(max_retries=settings.retries, seconds_to_wait=wait) from (
            TrackingServerUnreachable(f"{unreachable}: {reason}")
        )
    seconds = _seconds_since_first_attempt(context)
    raise dg.Failure(
        description=f"{unreachable} after {attempt + 1} attempts over {seconds:.0f} s: {reason}",
        allow_retries=False,
    ) from None


def _seconds_since_first_attempt(context) -> float:
    step_key = context.op_execution_context.op_def.name  # an asset's step is its op
    starts = [
        entry.timestamp
        for entry in context.instance.all_logs(context.run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.step_key == step_key
    ]
    return time.time() - min(starts) if starts else 0.0


# Local sqlite tracking stores this process has seen created and migrated.
_READY_STORES: set[str] = set()
STORE_LOCK_SECONDS = 300


def ensure_tracking_store(tracking_uri: str) -> None:
    """Create a local sqlite tracking store, once per process, under a file lock.

    MLflow creates and migrates a sqlite database on first use. Two processes doing that at
    once (a run's first step while a sensor looks up the champion, or two runs) fail, and in
    3 of 4 tries here left the database broken for good ("table _alembic_tmp_latest_metrics
    already exists"). Tracking servers and server databases are created by their operators.
    """
    if tracking_uri in _READY_STORES or not tracking_uri.startswith("sqlite:///"):
        return
    from filelock import FileLock, Timeout
    from mlflow.tracking import MlflowClient

    database = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    lock: FileLock | None = FileLock(f"{database}.lock", timeout=STORE_LOCK_SECONDS)
    try:
        lock.acquire()
    except Timeout:  # an OSError too, but a held lock is not a read-only folder
        raise
    except OSError:
        lock = None  # a read-only folder: no process can create the database there either
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        # Both stores of the database: tracking and model registry.
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    finally:
        if lock is not None:
            lock.release()
    _READY_STORES.add(tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> str:
    from mlflow.tracking import MlflowClient

    ensure_tracking_store(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A tracking server decides where artifacts go (its --artifacts-destination); a local
    # store would otherwise put them in ./mlruns of whatever directory the process runs in.
    remote = tracking_uri.startswith(("http://", "https://", "databricks"))
    try:
        return client.create_experiment(name, artifact_location=None if remote else artifact_location)
    except Exception:
        # Another process created it between our look-up and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class MlflowRun:
    """dagster-mlflow's run handle, set up on first use instead of when the resource is.

    `handle(experiment)` creates the experiment (one per pipeline: the resource is shared by
    the code location's pipelines, so the step names it), then runs dagster-mlflow's
    `mlflow_tracking` set-up (start, or resume by the `dagster_run_id` tag). A set-up that
    failed is tried again by the next call, so a retried registration step starts afresh.
    """

    def __init__(self, context, tracking_uri: str, artifact_location: str):
        self._context = context
        self._tracking_uri = tracking_uri
        self._artifact_location = artifact_location
        self._handle: Any = None
        self._generator: Iterator[Any] | None = None

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    def handle(self, experiment: str):
        if self._handle is not None:
            return self._handle
        import mlflow
        from dagster_mlflow import mlflow_tracking

        # The first call of a run to the tracking server: where an unreachable one is reported.
        with reaching(self._tracking_uri):
            ensure_experiment(self._tracking_uri, experiment, self._artifact_location)
            generator = mlflow_tracking.resource_fn(_ExperimentContext(self._context, experiment))
            handle = next(generator)
        # dagster-mlflow records the run id only when it resumed a run; when it started one,
        # take it from the active run, so `finish_mlflow_run` continues that very run.
        if handle.mlflow_run_id is None and mlflow.active_run() is not None:
            handle.mlflow_run_id = mlflow.active_run().info.run_id
        self._generator, self._handle = generator, handle
        return handle

    def close(self) -> None:
        """End as FAILED what is still open.

        Only `finish_mlflow_run` uses the run, and it ends it FINISHED or FAILED itself; a run
        still open here was left by a set-up or a step that broke off in between. (A process
        that never asked for the run, such as `execute_job` setting the resources up again
        after the run to build its result, resumes nothing and ends nothing.)
        """
        if "mlflow" not in sys.modules:
            return  # never used: nothing to end, and no reason to import MLflow now
        import mlflow

        if mlflow.active_run() is not None:
            _end_active_run("FAILED")
        if self._generator is not None:
            self._generator.close()


def _end_active_run(status: str) -> None:
    """End the active MLflow run; a tracking server that cannot be reached keeps it RUNNING
    on its side, and nothing more can be done about that from here."""
    import mlflow

    try:
        mlflow.end_run(status=status)
    except Exception as exc:
        if unreachable_reason(exc) is None:
            raise


class _ExperimentContext:
    """The resource's init context as dagster-mlflow reads it, with the pipeline's experiment
    in its config (dagster-mlflow takes the experiment from the resource config alone)."""

    def __init__(self, context, experiment: str):
        self._context = context
        self.resource_config = {**context.resource_config, "experiment_name": experiment}

    def __getattr__(self, name: str):
        return getattr(self._context, name)


def build_mlflow_resource(tracking_uri: str, artifact_location: str):
    """dagster-mlflow's `mlflow_tracking`, configured, started on first use (`MlflowRun`)."""

    @dg.resource(
        # The subset of dagster-mlflow's config we use; its own schema lives in a module that
        # imports mlflow, which would cost every process loading the code location a second.
        config_schema={"mlflow_tracking_uri": str},
        description="dagster-mlflow's mlflow_tracking: one MLflow run per Dagster run, started "
        "by the registration step in the experiment of the run's pipeline",
    )
    def mlflow_run(context) -> Iterator[MlflowRun]:
        run = MlflowRun(context, tracking_uri, artifact_location)
        try:
            yield run
        finally:
            run.close()

    return mlflow_run.configured({"mlflow_tracking_uri": tracking_uri})


@contextmanager
def finish_mlflow_run(run: MlflowRun, experiment: str) -> Iterator[None]:
    """Run the block inside this Dagster run's MLflow run; end it FINISHED when the block
    succeeds, FAILED when it raises.

    A retried step may find its MLflow run already ended by the failed attempt (the resource
    is not set up again for a retry within the same process), so the run is resumed by id
    first: retries never start a second run.
    """
    import mlflow

    handle = run.handle(experiment)
    with reaching(run.tracking_uri):
        active = mlflow.active_run()
        if active is None or active.info.run_id != handle.mlflow_run_id:
            if active is not None:
                mlflow.end_run()
            mlflow.start_run(run_id=handle.mlflow_run_id)
        try:
            yield
        except BaseException:
            if mlflow.active_run() is not None:
                _end_active_run("FAILED")
            raise
        if mlflow.active_run() is not None:
            mlflow.end_run(status="FINISHED")


class ModelRegistry(dg.ConfigurableResource):
    """The MLflow model registry of the code location, shared by its pipelines: one
    registered model per pipeline (`model(name)`)."""

    tracking_uri: str

    def model(self, name: str) -> RegisteredModel:
        return RegisteredModel(self.tracking_uri, name)


@dataclass(frozen=True)
class RegisteredModel:
    """Read access to one pipeline's registered model: who is champion, and its model."""

    tracking_uri: str
    model_name: str

    def client(self):
        from mlflow.tracking import MlflowClient

        ensure_tracking_store(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def champion(self) -> dict | None:
        """{version, data_version, run_id, metrics} of the `champion` alias, or None."""
        from mlflow.exceptions import MlflowException

        try:
            with reaching(self.tracking_uri):
                mv = self.client().get_model_version_by_alias(self.model_name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or (
                "not found" in str(exc).lower() or "does not exist" in str(exc).lower()
            ):
                return None
            raise
        metrics = {
            k.removeprefix("metric."): float(v)
            for k, v in mv.tags.items()
            if k.startswith("metric.")
        }
        return {
            "version": int(mv.version),
            "data_version": mv.tags.get("data_version"),
            "run_id": mv.run_id,
            "metrics": metrics,
        }

    def load_version_or_fail(self, version: int):
        """load_version for assets: an integrity failure fails the step without retries."""
        try:
            return self.load_version(version)
        except ModelIntegrityError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None

    def load_version(self, version: int):
        """The registered model, after checking its files against the recorded checksum."""
        with reaching(self.tracking_uri):
            return self._load_version(version)

    def _load_version(self, version: int):
        import tempfile

        import mlflow.artifacts
        import mlflow.sklearn

        from ml_assets.registry.registration import directory_sha256

        client = self.client()
        model_version = client.get_model_version(self.model_name, str(version))
        recorded = model_version.tags.get("model_sha256")
        with tempfile.TemporaryDirectory() as tmp:
            # Where the version's files are, asked of this tracking URI. Not its source
            # (models:/m-...): MLflow resolves that through the process-global tracking URI,
            # which only dagster-mlflow's resource sets, and only in the processes of steps
            # that use it (a multiprocess, Celery or Kubernetes step may not).
            location = client.get_model_version_download_uri(self.model_name, str(version))
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=self.tracking_uri
            )
            actual = directory_sha256(Path(local))
            if recorded != actual:
                raise ModelIntegrityError(
                    f"model {self.model_name} version {version}: its files do not match the "
                    f"recorded checksum (model_sha256 {str(recorded)[:12]} != {actual[:12]}); "
                    "refusing to load it"
                )
            return mlflow.sklearn.load_model(local)
