"""A pipeline declared the Dagster way: `PipelineComponent`, whose `defs.yaml` attributes are the
keys of a pipeline file, so that `dg scaffold defs`, `dg list defs` and `dg check defs` work on it.

Importing this module loads no pipeline and no data: dg imports it (an entry point) in every
process that lists the component types of this environment.
"""

import importlib
import types
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticUndefined

from ml_assets.config import (
    ContractSettings,
    DriftSettings,
    GateSettings,
    LiveSettings,
    ModelSettings,
    Promotion,
    PipelineFileError,
    PipelineSettings,
    RetrainSettings,
    SliceSettings,
    Task,
    parse_settings,
)
from ml_assets.graph import slug_of

DEFS_MODULE = "ml_assets.defs"  # this repository's own defs folder


def _default(key: str) -> Any:
    """A pipeline file's default for a top-level key: the one list of defaults is
    PipelineSettings', this only reads it."""
    return PipelineSettings.model_fields[key].get_default(call_default_factory=True)


def _attributes_of(section: type[BaseModel]) -> type[BaseModel]:
    """One section of the pipeline file (`model:`, `contract:` ...) as a Resolvable model: the
    same keys, types and defaults, read from the settings model.

    Without its bounds (`ge=0` ...): Dagster's resolver refuses a nested model with bounded
    fields, and `parse_settings` checks every bound anyway, in the pipeline file's words.
    """
    fields = {}
    for key, info in section.model_fields.items():
        annotation = _unbounded(info.annotation)
        if info.default_factory is not None:
            factory = info.default_factory
            if annotation is not info.annotation and isinstance(annotation, type):
                factory = annotation  # a nested section: its own defaults, unbounded
            default = Field(default_factory=factory)
        elif info.default is not PydanticUndefined:
            default = Field(default=info.default)
        else:
            default = Field()
        fields[key] = (annotation, default)
    return create_model(
        section.__name__.replace("Settings", "Attributes"),
        __base__=(dg.Resolvable, dg.Model),
        __module__=__name__,
        __doc__=f"The `{_section_key(section)}:` keys of a pipeline file.",
        **fields,
    )


def _unbounded(annotation: Any) -> Any:
    """A section nested in a section (`model.search`, `model.candidates` items) as attributes
    too; other annotations as they are."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _attributes_of(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args:
        return list[_unbounded(args[0])]
    if args and type(None) in args and origin in (typing.Union, types.UnionType):
        inner = [_unbounded(a) for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] is not args[0]:
            return inner[0] | None
    return annotation


def _section_key(section: type[BaseModel]) -> str:
    for key, info in PipelineSettings.model_fields.items():
        if info.annotation is section:
            return key
    for key, info in ModelSettings.model_fields.items():
        if section.__name__ in str(info.annotation):
            return f"model.{key}"
    return section.__name__


ModelAttributes = _attributes_of(ModelSettings)
ContractAttributes = _attributes_of(ContractSettings)
GateAttributes = _attributes_of(GateSettings)
SliceAttributes = _attributes_of(SliceSettings)
DriftAttributes = _attributes_of(DriftSettings)
RetrainAttributes = _attributes_of(RetrainSettings)
LiveAttributes = _attributes_of(LiveSettings)


class PipelineScaffoldParams(BaseModel):
    """`dg scaffold defs ml_assets.component.PipelineComponent <path> --target ... --task ...`"""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="the pipeline's name (default: the path's last part)")
    target: str | None = Field(None, description="the label column")
    task: Task | None = Field(None, description="classification | regression")


class PipelineScaffolder(dg.Scaffolder[PipelineScaffoldParams]):
    """Writes a `defs.yaml` with the three required keys, each with what it means."""

    @classmethod
    def get_scaffold_params(cls) -> type[PipelineScaffoldParams]:
        return PipelineScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[PipelineScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            dg.scaffold_component(request, {})
            return
        text = defs_yaml_template(request.type_name, request.params, request.target_path.name)
        if request.append:
            with request.target_path.open("a", encoding="utf-8") as f:
                f.write("---\n" + text)
        else:
            (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")


def defs_yaml_template(type_name: str, params: PipelineScaffoldParams, path_name: str) -> str:
    """A defs.yaml declaring one pipeline: the required keys, from `params` where given."""
    name = params.name or path_name
    slug = slug_of(name)
    return "\n".join([
        f"type: {type_name}",
        "",
        "# An ml_assets pipeline. The attributes are the keys of a pipeline file (README: The",
        "# pipeline file); only name, target and task are required. In Dagster it is the assets",
        f"# {slug}/..., group {slug}, job {slug}__train_version; its data files land in",
        f"# $ML_ASSETS_LANDING_DIR/{name}/ (default .ml_assets/landing/{name}/).",
        "attributes:",
        _commented(f"name: {name}", "the MLflow registered model and experiment name"),
        _commented(f"target: {params.target or 'label'}",
                   "the label column" + ("" if params.target else ": set it to yours")),
        _commented(f"task: {params.task or 'classification'}", "classification | regression"),
        _commented("# landing_dir: /data/" + name, "its own landing folder (relative: to this file)"),
        _commented("# model: {estimator: random_forest}",
                   "hist_gradient_boosting | random_forest | linear"),
        "",
    ])


def _commented(line: str, comment: str) -> str:
    return f"  {line:<36}# {comment}"


# A pipeline file key is named `model`, as is Resolvable's classmethod that derives the YAML
# schema. Dagster only ever calls that on the class, where the classmethod still wins; on an
# instance `self.model` is the key's value. pydantic's warning about it says nothing to a user.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "model"', category=UserWarning)

    @dg.scaffold_with(PipelineScaffolder)
    class PipelineComponent(dg.Component, dg.Resolvable, dg.Model):
        """An ml_assets pipeline: validate, train, evaluate and register each data version.

        Every data file landing in its folder becomes a data version that is validated, trained
        on, evaluated and registered in MLflow. The attributes are the keys of a pipeline file;
        every one but name, target and task is optional."""

        name: str = Field(description="the MLflow registered model and experiment name; "
                                      "letters, digits, _ . -")
        target: str = Field(description="the label column")
        task: Task = Field(description="classification | regression")
        landing_glob: str = Field(_default("landing_glob"),
                                  description="which landing files are data versions")
        landing_dir: str | None = Field(
            _default("landing_dir"),
            description="this pipeline's landing folder, relative to the defs.yaml "
                        "(default: $ML_ASSETS_LANDING_DIR/<name>/)")
        id_columns: list[str] = Field(default_factory=lambda: _default("id_columns"),
                                      description="dropped before training, kept out of drift")
        positive_label: str | int | float | bool | None = Field(
            _default("positive_label"),
            description="binary classification: the class ROC AUC and F1 are about")
        seed: int = Field(_default("seed"), description="the split and the estimator's seed")
        test_size: float = Field(_default("test_size"), description="the held-out share")
        model: ModelAttributes = Field(default_factory=ModelAttributes)
        contract: ContractAttributes = Field(default_factory=ContractAttributes)
        gates: GateAttributes = Field(default_factory=GateAttributes)
        slices: SliceAttributes = Field(default_factory=SliceAttributes)
        drift: DriftAttributes = Field(default_factory=DriftAttributes)
        retrain: RetrainAttributes = Field(default_factory=RetrainAttributes)
        promotion: Promotion = Field(
            _default("promotion"),
            description="auto | manual (a version that passed waits as `challenger` for "
                        "`ml-assets approve`)")
        scoring_glob: str = Field(_default("scoring_glob"),
                                  description="files to score, relative to the landing folder")
        labels_glob: str = Field(_default("labels_glob"),
                                 description="files of late labels, relative to the landing folder")
        live: LiveAttributes = Field(default_factory=LiveAttributes)

        @classmethod
        def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext):
            """Dagster's loading, but a value that is wrong for a pipeline file (a task that is
            neither classification nor regression ...) is reported as a pipeline file's error,
            naming the defs.yaml and the key, instead of as pydantic's error about a model."""
            try:
                return super().load(attributes, context)
            except Exception:
                written = attributes.model_dump(exclude_unset=True) if attributes else {}
                if not _templated(written):  # else the value Dagster failed on is not this one
                    _validated(written, declaration_file(context))
                raise  # valid as a pipeline file: Dagster's own error says what is wrong

        def settings(self, source: Path) -> PipelineSettings:
            """The attributes as written, validated as a pipeline file at `source` is."""
            return _validated(self.model_dump(exclude_unset=True), source)

        def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
            from ml_assets.pipeline_graph import pipeline_definitions
            from ml_assets.environment import load_environment
            from ml_assets.pipelines import Pipeline, pipeline_environment

            source = declaration_file(context)
            settings = self.settings(source)
            env = pipeline_environment(load_environment(), settings, source=source,
                                       own_folder=True)
            return pipeline_definitions(Pipeline(settings, env))


def _templated(value: Any) -> bool:
    """Whether a value as written holds a `{{ ... }}` template Dagster renders."""
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_templated(v) for v in value)
    return isinstance(value, str) and "{{" in value


def _validated(attributes: dict[str, Any], source: Path) -> PipelineSettings:
    """`attributes` as the settings of a pipeline file at `source`; an invalid one raises the
    error Dagster shows as the component's (the message names the file and each key)."""
    try:
        return parse_settings(attributes, str(source))
    except PipelineFileError as exc:
        raise dg.DagsterInvalidDefinitionError(str(exc)) from None


def declaration_file(context: dg.ComponentLoadContext) -> Path:
    """The file that declares the component: its defs.yaml (component.yaml in older
    projects), or the Python file that does; `landing_dir` is relative to its folder."""
    for name in ("defs.yaml", "component.yaml", "component.py"):
        if (context.path / name).is_file():
            return context.path / name
    return context.path


def load_defs_folder(defs_module: str = DEFS_MODULE) -> dg.Definitions | None:
    """The pipelines declared in a defs folder (this repository's, `ml_assets/defs/`, unless
    another package is named); None when it declares none. Without resources: the code
    location provides the ones all pipelines share."""
    module = importlib.import_module(defs_module)
    folder = Path(module.__file__).parent
    if not _declares_anything(folder):
        return None
    check_declarations(folder)
    # From the module, not from the project's pyproject.toml: an installed copy of ml_assets
    # (the Docker image) has none.
    tree = dg.ComponentTree.from_module(defs_module=module, project_root=folder.parents[1])
    with warnings.catch_warnings():
        # What load_from_defs_folder silences too: notes on Dagster's own preview APIs, one
        # per asset, that say nothing to whoever starts the code location.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return tree.build_defs()


def definitions_for_project(path_within_project: Path) -> dg.Definitions:
    """The code location of a dg project of your own whose pipelines are `defs.yaml` files:
    its defs folder and the resources all pipelines share (write
    `defs = definitions_for_project(Path(__file__).parent)` in its definitions.py)."""
    from ml_assets.environment import load_environment
    from ml_assets.shared_resources import shared_definitions

    check_declarations(path_within_project)
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=path_within_project),
        shared_definitions(load_environment()),
    )


def declared_pipelines(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(defs.yaml, attributes as written) of every PipelineComponent declared under `folder`.
    A file that cannot be read as YAML is left out: Dagster reports it when it loads it."""
    import yaml

    found = []
    for path in sorted(folder.rglob("defs.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        for doc in documents:
            if isinstance(doc, dict) and _is_pipeline_type(doc.get("type")):
                attributes = doc.get("attributes")
                found.append((path, attributes if isinstance(attributes, dict) else {}))
    return found


def check_declarations(folder: Path) -> None:
    """Every pipeline declared under `folder` checked as a pipeline file is, all at once: each
    wrong key of each file, and two pipelines of one Dagster name (`churn` twice, or `churn-v2`
    and `churn_v2`), which would both make `<slug>/raw_data`...

    Dagster's own schema check (`dg check yaml`) reads one defs.yaml per component type, and
    loading stops at the first broken component; this names every file and key in one error.
    """
    problems: list[str] = []
    by_slug: dict[str, list[str]] = {}
    for path, attributes in declared_pipelines(folder):
        if _templated(attributes):
            continue  # its values are known once Dagster renders them: checked when built
        try:
            settings = parse_settings(attributes, str(path))
        except PipelineFileError as exc:
            problems.append(str(exc))
            continue
        by_slug.setdefault(slug_of(settings.name), []).append(
            f"{path} (name {settings.name!r})")
    problems += [
        f"{' and '.join(files)} both make the Dagster names {slug}/...: rename all but one"
        for slug, files in by_slug.items() if len(files) > 1
    ]
    if problems:
        raise dg.DagsterInvalidDefinitionError("\n".join(problems))


def _is_pipeline_type(type_name: Any) -> bool:
    return isinstance(type_name, str) and type_name.split(".")[-1] == PipelineComponent.__name__


def _declares_anything(folder: Path) -> bool:
    """Whether a defs folder holds more than its `__init__.py`: a defs.yaml or a module."""
    return any(
        path.name not in ("__init__.py", "__pycache__") and not path.name.startswith(".")
        for path in folder.iterdir()
    )


def without_declared(catalog, components_loaded: bool, defs_module: str = DEFS_MODULE):
    """The catalog of pipeline files beside this repository's defs folder: a file pipeline of
    a Dagster name a defs.yaml declares too is refused (named, as two files of one name are),
    and the bundled demo is not loaded when the defs folder declares pipelines."""
    import dataclasses

    from ml_assets.pipelines import InvalidPipeline

    if not components_loaded:
        return catalog
    if catalog.bundled:
        return dataclasses.replace(catalog, pipelines=(), invalid=())
    folder = Path(importlib.import_module(defs_module).__file__).parent
    declared = {slug_of(str(a.get("name"))): path for path, a in declared_pipelines(folder)}
    kept, refused = [], []
    for pipeline in catalog.pipelines:
        if pipeline.slug in declared:
            refused.append(InvalidPipeline(
                pipeline.source,
                f"{pipeline.source}: key 'name': expected a pipeline name of its own, got "
                f"{pipeline.name!r}, which {declared[pipeline.slug]} also declares (Dagster "
                f"names {pipeline.slug}/...); the defs.yaml is loaded, this file is not",
                name=pipeline.name))
        else:
            kept.append(pipeline)
    return dataclasses.replace(catalog, pipelines=tuple(kept),
                               invalid=catalog.invalid + tuple(refused))


def defs_folder_pipelines(defs_module: str = DEFS_MODULE):
    """(the pipelines of this repository's defs folder or None, the problems that kept it from
    loading). A broken defs.yaml stops only the defs folder's pipelines, reported like a broken
    pipeline file; the pipeline files beside it load as usual."""
    from ml_assets.pipelines import InvalidPipeline

    try:
        return load_defs_folder(defs_module), ()
    except Exception as exc:  # Dagster's or ours: the message names the defs.yaml and key
        folder = Path(importlib.import_module(defs_module).__file__).parent
        return None, (InvalidPipeline(folder, f"{folder}: the defs folder's pipelines are not "
                                              f"loaded: {str(exc).strip()}"),)
