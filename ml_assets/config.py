"""The pipeline file (YAML) -> typed, validated settings.

Every error names the file, the key and what was expected; nothing from deep inside
pydantic or PyYAML reaches the user as a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal["classification", "regression"]
Estimator = Literal["hist_gradient_boosting", "random_forest", "linear"]
RetrainPolicy = Literal["every_version", "on_drift_or_decay", "never"]
Promotion = Literal["auto", "manual"]

# Metrics the evaluation computes, and which way is better.
CLASSIFICATION_METRICS = {"roc_auc": +1, "accuracy": +1, "f1": +1, "log_loss": -1}
REGRESSION_METRICS = {"r2": +1, "rmse": -1, "mae": -1}
DEFAULT_PRIMARY_METRIC = {"classification": "roc_auc", "regression": "r2"}
DEFAULT_MIN_GATES = {"classification": {"roc_auc": 0.7}, "regression": {"r2": 0.0}}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class PipelineFileError(ValueError):
    """A pipeline file that cannot be used; str() is the message for the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CandidateSettings(_Strict):
    """One estimator family the search tries: a parameter given as a list is searched over
    (each value a candidate), a single value is fixed."""

    estimator: Estimator
    params: dict[str, Any] = Field(default_factory=dict)


class SearchSettings(_Strict):
    # Wall-clock seconds for choosing among the candidates (the final fit of the chosen one on
    # every training row comes after, as before the search).
    budget_seconds: float = Field(120, gt=0)
    cv_folds: int = Field(3, ge=2, le=20)
    # The search scores candidates on a seeded sample of at most this many training rows.
    max_rows: int = Field(50_000, ge=100)
    # Successive halving: each round keeps 1/factor of the candidates on factor x the rows.
    factor: int = Field(3, ge=2, le=10)


class ModelSettings(_Strict):
    # One fixed estimator (with `params`) and no search; unset: the search over `candidates`.
    estimator: Estimator | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # Unset: the default candidates for the task (ml_assets.core.search.default_candidates).
    candidates: list[CandidateSettings] | None = Field(None, min_length=1)
    search: SearchSettings = Field(default_factory=SearchSettings)

    @model_validator(mode="before")
    @classmethod
    def _params_alone_tune_boosting(cls, data: Any) -> Any:
        # Pipeline files written before the search existed tune the one default estimator,
        # histogram gradient boosting, with `params` alone: they keep that meaning.
        if isinstance(data, dict) and data.get("params") and "estimator" not in data \
                and "candidates" not in data:
            return {**data, "estimator": "hist_gradient_boosting"}
        return data

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> ModelSettings:
        if self.estimator is not None and self.candidates is not None:
            raise _KeyError(
                "model.candidates",
                "either model.estimator (one fixed model) or model.candidates (a search), not both",
            )
        if self.params and self.estimator is None:
            raise _KeyError(
                "model.params",
                "model.estimator beside it (parameters of a search go under model.candidates)",
            )
        return self

    @property
    def searched(self) -> bool:
        return self.estimator is None


class ContractSettings(_Strict):
    min_rows: int = Field(30, ge=1)
    max_missing_label_share: float = Field(0.2, ge=0, le=1)
    null_share_tolerance: float = Field(0.1, ge=0, le=1)
    range_tolerance: float = Field(0.5, ge=0)
    range_mostly: float = Field(0.99, gt=0, le=1)
    category_mostly: float = Field(0.95, gt=0, le=1)
    max_categories: int = Field(50, ge=1)
    # The breakage line (blocks); the keys above draw the change line (reported only).
    breakage_magnitude: float = Field(10, gt=1)
    breakage_null_share: float = Field(0.5, gt=0, le=1)
    breakage_mostly: float = Field(0.99, gt=0, le=1)
    breakage_negative: bool = True


class GateSettings(_Strict):
    min: dict[str, float] | None = None
    max: dict[str, float] = Field(default_factory=dict)
    primary_metric: str | None = None
    promotion_tolerance: float = Field(0.01, ge=0)
    max_drop_from_champion_evaluation: float = Field(0.1, ge=0, le=1)
    beat_baseline: bool = True
    # Fewer held-out rows unseen by the champion in training than this: no comparison.
    min_comparison_rows: int = Field(30, ge=1)
    # Promotion needs the challenger to be not worse than the champion by more than
    # promotion_tolerance with this confidence (paired comparison on the same rows);
    # null: the point comparison of the two metrics.
    promotion_confidence: float | None = Field(0.95, ge=0.5, lt=1)
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)


class SliceSettings(_Strict):
    # Feature columns whose values (numeric ones cut into `bins` quantile bins) the evaluation
    # reports the primary metric for.
    columns: list[str] = Field(default_factory=list)
    # Slices with fewer held-out rows are grouped into one "other" slice.
    min_rows: int = Field(30, ge=1)
    bins: int = Field(4, ge=2, le=20)
    # Refuse promotion when the challenger is worse than the champion by more than this on a
    # slice with min_rows rows or more; null: slices are reported, never decide.
    max_drop: float | None = Field(0.05, ge=0)


class DriftSettings(_Strict):
    p_value: float = Field(0.05, gt=0, lt=1)
    distance: float = Field(0.1, gt=0)
    share: float = Field(0.5, gt=0, le=1)


DEFAULT_CRON = "0 3 * * 1"


def _valid_cron(cron: str) -> bool:
    from ml_assets.private_apis import is_valid_cron_string

    return is_valid_cron_string(cron)


class RetrainSettings(_Strict):
    policy: RetrainPolicy = "every_version"
    cron: str = DEFAULT_CRON
    timezone: str = "UTC"
    decay_margin: float = Field(0.05, ge=0)
    performance_floor: float | None = None

    @model_validator(mode="after")
    def _check_schedule(self) -> RetrainSettings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _KeyError(
                "retrain.timezone",
                f"an IANA time zone such as UTC or Europe/Paris, got {self.timezone!r}",
            ) from None
        # Dagster's own cron validation, so what loads here is what the schedule accepts. It
        # imports all of Dagster (~1 s): only for a cron the user wrote, not the default.
        if self.cron != DEFAULT_CRON and not _valid_cron(self.cron):
            raise _KeyError(
                "retrain.cron", f"a cron expression such as '0 3 * * 1', got {self.cron!r}"
            )
        return self


class LiveSettings(_Strict):
    """How the champion's real performance is measured once labels arrive for its predictions."""

    # The columns a labels file is joined to the predictions on; unset: `id_columns`.
    join_on: list[str] | None = Field(None, min_length=1)
    # The live metric is computed over the newest `window_rows` labelled predictions of the
    # champion, and only those scored within `window_days` when that is set.
    window_rows: int = Field(10_000, ge=1)
    window_days: float | None = Field(None, gt=0)
    # Fewer labelled predictions in the window: the live metric is reported, never judged.
    min_rows: int = Field(30, ge=1)
    # After a decay retraining was requested, none other for this many hours.
    cooldown_hours: float = Field(24, ge=0)
    # A scoring or labels file larger than this is refused (named, nothing read).
    max_file_mb: float = Field(1024, gt=0)


class PipelineSettings(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    target: str = Field(min_length=1)
    task: Task
    landing_glob: str = "*.csv"
    # This pipeline's landing folder, relative to its file; unset: see ml_assets.pipelines.
    landing_dir: str | None = Field(None, min_length=1)
    id_columns: list[str] = Field(default_factory=list)
    positive_label: str | int | float | bool | None = None
    seed: int = 42
    test_size: float = Field(0.2, gt=0, lt=1)
    model: ModelSettings = Field(default_factory=ModelSettings)
    contract: ContractSettings = Field(default_factory=ContractSettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    slices: SliceSettings = Field(default_factory=SliceSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    # auto: a version that passes every gate and the comparison becomes champion; manual: it
    # waits under the alias `challenger` for `ml-assets approve`.
    promotion: Promotion = "auto"
    # Files to score and files of late labels, relative to the landing folder.
    scoring_glob: str = Field("score/*.csv", min_length=1)
    labels_glob: str = Field("labels/*.csv", min_length=1)
    live: LiveSettings = Field(default_factory=LiveSettings)

    @model_validator(mode="after")
    def _check_cross_field(self) -> PipelineSettings:
        metrics = self.metric_directions
        if self.positive_label is not None and self.task != "classification":
            raise _KeyError("positive_label", "only for task: classification")
        if self.target in self.id_columns:
            raise _KeyError("id_columns", f"the id columns, not the target {self.target!r}")
        for key, mapping in (("gates.min", self.gates.min or {}), ("gates.max", self.gates.max)):
            for metric in mapping:
                if metric not in metrics:
                    raise _KeyError(
                        f"{key}.{metric}", f"a {self.task} metric, one of {sorted(metrics)}"
                    )
        for column in self.slices.columns:
            if column == self.target or column in self.id_columns:
                raise _KeyError(
                    "slices.columns", f"feature columns, not the target or an id column ({column!r})"
                )
        for column in self.live.join_on or []:
            if column == self.target:
                raise _KeyError("live.join_on", f"id columns, not the target {self.target!r}")
        if self.gates.primary_metric and self.gates.primary_metric not in metrics:
            raise _KeyError(
                "gates.primary_metric", f"a {self.task} metric, one of {sorted(metrics)}"
            )
        return self

    # --- derived settings, so no caller re-implements the defaults ---
    @property
    def metric_directions(self) -> dict[str, int]:
        return CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS

    @property
    def primary_metric(self) -> str:
        return self.gates.primary_metric or DEFAULT_PRIMARY_METRIC[self.task]

    @property
    def min_gates(self) -> dict[str, float]:
        return DEFAULT_MIN_GATES[self.task] if self.gates.min is None else dict(self.gates.min)

    @property
    def max_gates(self) -> dict[str, float]:
        return dict(self.gates.max)

    @property
    def join_columns(self) -> list[str]:
        """The columns late labels are joined to predictions on."""
        return list(self.live.join_on or self.id_columns)


class _KeyError(ValueError):
    """Raised inside validators to name a key and what was expected."""

    def __init__(self, key: str, expected: str):
        super().__init__(f"{key}|{expected}")
        self.key = key
        self.expected = expected


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(key, what was expected) for one pydantic error, in the user's words."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "missing":
        return key, "a value (this key is required)"
    if kind == "extra_forbidden":
        return key, f"one of the known keys {_known_keys(error['loc'][:-1])} (this key is unknown)"
    if kind == "literal_error":
        return key, f"one of {ctx.get('expected')}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return key, f"letters, digits, '_', '.' or '-' (starting with a letter or digit), got {got!r}"
    if kind == "value_error" and isinstance(ctx.get("error"), _KeyError):
        err = ctx["error"]
        return err.key, err.expected
    message = error["msg"].replace("Input should be", "").strip()
    return key, f"{message}, got {got!r}" if got is not None else message


def _known_keys(parent: tuple) -> list[str]:
    model: type[BaseModel] = PipelineSettings
    for part in parent:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def parse_settings(data: Any, source: str) -> PipelineSettings:
    if not isinstance(data, dict):
        raise PipelineFileError(
            f"{source}: expected a mapping of keys (name, target, task, ...), "
            f"got {type(data).__name__}"
        )
    try:
        return PipelineSettings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key, expected = _describe(error)
            lines.append(f"{source}: key '{key}': expected {expected}")
        raise PipelineFileError("\n".join(lines)) from None


def load_settings(path: Path | str) -> PipelineSettings:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineFileError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineFileError(f"{path}: cannot read the pipeline file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineFileError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        raise PipelineFileError(f"{path}: the file is empty; expected keys name, target, task")
    return parse_settings(data, str(path))


def slug(text: str) -> str:
    """Lower-case, every character outside [a-z0-9_-] replaced by '_' (the data-version key rule)."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())
