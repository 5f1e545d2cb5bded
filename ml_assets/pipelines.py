"""The pipelines of this code location: which pipeline files there are, where each one lands
its files, and which files are invalid (reported with file, key and reason, never loaded).

No Dagster import at module level: the CLI lists pipelines without loading Dagster.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ml_assets.config import PipelineFileError, PipelineSettings, load_settings
from ml_assets.environment import Environment
from ml_assets.graph import DagsterNames, slug_of

if TYPE_CHECKING:
    import dagster as dg

PIPELINE_METADATA = "ml_assets/pipeline"  # on every asset: which pipeline (and store) it is of


@dataclass(frozen=True)
class Pipeline:
    """One valid pipeline: its settings, and its own environment (its file as `config_path`,
    its landing folder as `landing_dir`; home, store, MLflow shared with the others)."""

    settings: PipelineSettings
    env: Environment

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def source(self) -> Path | None:
        return self.env.config_path

    @cached_property
    def names(self) -> DagsterNames:
        return DagsterNames.of(self.settings.name)

    @property
    def slug(self) -> str:
        return self.names.slug

    @cached_property
    def partitions(self) -> dg.DynamicPartitionsDefinition:
        from ml_assets.partitions import data_version_partitions

        return data_version_partitions(self.names.partitions)

    @cached_property
    def scoring_partitions(self) -> dg.DynamicPartitionsDefinition:
        from ml_assets.partitions import data_version_partitions

        return data_version_partitions(self.names.scoring_partitions)

    def asset_args(self, asset: str) -> dict:
        """What every asset of this pipeline declares: its key under the slug, its group, its
        partitions, and the pipeline's name for the shared IO managers."""
        return {
            "name": asset,
            "key_prefix": [self.slug],
            "group_name": self.names.group,
            "partitions_def": self.partitions,
            "metadata": {PIPELINE_METADATA: self.name},
        }

    def ins(self, *assets: str) -> dict[str, dg.AssetIn]:
        """Inputs from this pipeline's own assets, by their parameter names."""
        import dagster as dg

        return {asset: dg.AssetIn(key=self.names.key(asset)) for asset in assets}


@dataclass(frozen=True)
class InvalidPipeline:
    """A pipeline file that cannot be loaded, and why (the message names the file and key)."""

    path: Path
    error: str
    name: str | None = None  # the name the file declares, when it can be read

    @property
    def slug(self) -> str:
        return slug_of(self.path.stem)


@dataclass(frozen=True)
class Catalog:
    """Every pipeline file found: the valid pipelines and the invalid files."""

    source: str  # where the pipelines came from, in the user's words
    pipelines: tuple[Pipeline, ...]
    invalid: tuple[InvalidPipeline, ...]
    bundled: bool = False  # the bundled demo, loaded because nothing else was given

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def select(self, names: list[str] | None) -> list[Pipeline]:
        """The pipelines named (all when none are); an unknown name is a PipelineFileError
        that lists the known ones."""
        if not names:
            return list(self.pipelines)
        by_name = {p.name: p for p in self.pipelines}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            invalid = {i.name or i.path.stem for i in self.invalid}
            hints = [f"{n!r} is an invalid pipeline file here (see `ml-assets pipelines`)"
                     for n in unknown if n in invalid]
            raise PipelineFileError(
                f"no pipeline named {', '.join(map(repr, unknown))} in {self.source}; "
                f"known: {', '.join(sorted(by_name)) or 'none'}"
                + (f"; {'; '.join(hints)}" if hints else "")
            )
        return [by_name[n] for n in dict.fromkeys(names)]


def pipeline_environment(env: Environment, settings: PipelineSettings, source: Path,
                         own_folder: bool) -> Environment:
    """The pipeline's own environment. Its landing folder: `landing_dir` in its file (relative
    to the file), else `$ML_ASSETS_LANDING_DIR/<name>/` for a pipeline of a folder (two pipelines
    never read each other's files by accident), else `$ML_ASSETS_LANDING_DIR` itself."""
    if settings.landing_dir:
        landing = Path(settings.landing_dir).expanduser()
        landing = landing if landing.is_absolute() else (source.parent / landing).resolve()
    elif own_folder:
        landing = env.landing_dir / settings.name
    else:
        landing = env.landing_dir
    return dataclasses.replace(env, landing_dir=landing, config_path=source)


def load_catalog(env: Environment) -> Catalog:
    """The pipelines of `env`: one file (ML_ASSETS_CONFIG, ./ml_assets.yaml) or every `*.yaml`
    of a folder (ML_ASSETS_PIPELINES, ./pipelines/, the bundled demo), in file-name order.

    A file that fails validation, and every file of a name (or slug) claimed twice, is invalid:
    reported, never loaded, and it takes nothing else down.
    """
    if env.pipelines_dir is None:
        files, own_folder = [env.config_path], False
        source = str(env.config_path)
    else:
        files = sorted(env.pipelines_dir.glob("*.yaml"))
        own_folder = True
        source = f"the pipelines folder {env.pipelines_dir}"
        if env.uses_bundled_pipelines:
            source = "the bundled demo pipelines"
    loaded: list[tuple[Path, PipelineSettings]] = []
    invalid: list[InvalidPipeline] = []
    if not files:
        invalid.append(InvalidPipeline(env.pipelines_dir, f"{env.pipelines_dir}: holds no "
                                       "pipeline file (expected one *.yaml per pipeline)"))
    for path in files:
        try:
            loaded.append((path, load_settings(path)))
        except PipelineFileError as exc:
            invalid.append(InvalidPipeline(path, str(exc), name=_declared_name(path)))
    pipelines = []
    for path, settings in loaded:
        rivals = [other for other, s in loaded
                  if other != path and slug_of(s.name) == slug_of(settings.name)]
        if rivals:
            invalid.append(InvalidPipeline(path, _collision(path, settings, rivals, loaded),
                                           name=settings.name))
            continue
        pipelines.append(Pipeline(settings, pipeline_environment(env, settings, path, own_folder)))
    return Catalog(source, tuple(pipelines), tuple(invalid), bundled=env.uses_bundled_pipelines)


def _declared_name(path: Path) -> str | None:
    """The `name` an invalid file declares, so `--pipeline <name>` can say it is invalid."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _collision(path: Path, settings: PipelineSettings, rivals: list[Path], loaded) -> str:
    names = dict(loaded)
    others = ", ".join(f"{r} (name {names[r].name!r})" for r in rivals)
    return (
        f"{path}: key 'name': expected a pipeline name of its own, got {settings.name!r}, which "
        f"{others} also claims (Dagster names {slug_of(settings.name)}/...); neither is loaded "
        f"until one is renamed"
    )
