"""`ml-assets score FILE --output OUT`: score a file with the champion, without Dagster: the
same checks as a scoring batch (readable, id columns, the data contract's feature rules), the
same champion (its files checked against their checksum), the same columns."""

from __future__ import annotations

from pathlib import Path

from ml_assets.cli.common import EXIT_OK, Refused, UsageError, load_pipeline

OUTPUT_FORMATS = (".csv", ".parquet")


def cmd_score(args) -> int:
    source, output = Path(args.file), Path(args.output)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output}: expected a file ending in .csv or .parquet, "
                         f"got {output.suffix or 'no extension'!r}")
    env, settings = load_pipeline(args.pipeline)
    _import_libraries()
    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.scoring import ScoringFileError, Scorer, check_features, read_scoring_file, score_frame

    label = str(source)
    registry = _registry(env, settings)
    # who is champion first: without one, a large file is not read and checked for nothing
    champion = _ask(registry.champion)
    if champion is None:
        raise Refused(f"no champion yet for {settings.name} (MLflow {env.tracking_uri}): "
                      "nothing to score with; run `ml-assets run` first")
    try:
        frame = read_scoring_file(source, label, settings.join_columns, settings.live.max_file_mb)
        contract = _contract(env, settings)
        if contract is not None:
            check_features(frame, contract, label)
    except (ScoringFileError, ContractFileError) as exc:
        raise Refused(str(exc)) from None
    model = _ask(lambda: registry.load_version(champion["version"]))
    scorer = Scorer(model, settings.task, champion["version"], champion["data_version"])
    scored = score_frame(frame, scorer, settings.join_columns)
    _write(scored, output)
    print(f"scored {len(scored)} rows of {source.name} with {settings.name} version "
          f"{champion['version']} (data version {champion['data_version']}) -> {output}")
    return EXIT_OK


def _import_libraries() -> None:
    """Great Expectations, MLflow and scikit-learn, imported as `ml-assets run` imports its
    libraries: without automatic collections walking the objects they create (heap.importing),
    which is most of a small file's scoring time."""
    from ml_assets import heap

    with heap.importing():
        import mlflow.sklearn  # noqa: F401
        import sklearn.pipeline  # noqa: F401

        import ml_assets.registry.mlflow_wiring  # noqa: F401
        from ml_assets.core.contract.suite import gx_module

        gx_module()


def _contract(env, settings) -> dict | None:
    import sys

    from ml_assets.ingestion.contract_file import contract_file_path, read_contract_json

    path = contract_file_path(env.contracts_dir, settings.name)
    if not path.exists():
        print(f"warning: no data contract at {path}: scored without the feature checks",
              file=sys.stderr)
        return None
    return read_contract_json(path)


def _registry(env, settings):
    from ml_assets.registry.mlflow_wiring import RegisteredModel

    return RegisteredModel(env.tracking_uri, settings.name)


def _ask(call):
    """A call to the registry; an unreachable server or a model whose files changed since it
    was registered is a refusal, named."""
    from ml_assets.registry.mlflow_wiring import ModelIntegrityError, TrackingServerUnreachable

    try:
        return call()
    except (ModelIntegrityError, TrackingServerUnreachable) as exc:
        raise Refused(str(exc)) from None


def _write(scored, output: Path) -> None:
    """OUT appears whole or not at all."""
    from ml_assets.storage import atomic_write

    if output.suffix.lower() == ".parquet":
        atomic_write(output, lambda tmp: scored.to_parquet(tmp, index=False))
    else:
        atomic_write(output, lambda tmp: scored.to_csv(tmp, index=False))
