"""`ml-assets contract show | diff | accept`: the data contract, readable; what changed between
two revisions; widening it from a blocked version, which is then asked to run again."""

from __future__ import annotations

import json
from pathlib import Path

from ml_assets.cli.common import EXIT_OK, Refused, load_pipeline


def _contract_file(env, settings) -> Path:
    from ml_assets.ingestion.contract_file import contract_file_path

    path = contract_file_path(env.contracts_dir, settings.name)
    if not path.exists():
        raise Refused(
            f"no data contract yet for pipeline {settings.name!r} ({path}): it is inferred from "
            "the first data version that passes; run `ml-assets run` first"
        )
    return path


def cmd_contract_show(args) -> int:
    env, settings = load_pipeline(args.pipeline)
    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import describe_contract
    from ml_assets.ingestion.contract_file import read_contract_json

    path = _contract_file(env, settings)
    try:
        contract = read_contract_json(path)
    except ContractFileError as exc:
        raise Refused(str(exc)) from None
    if args.json:
        print(json.dumps(contract, indent=2, ensure_ascii=False))
    else:
        print(describe_contract(contract, str(path)))
    return EXIT_OK


def cmd_contract_diff(args) -> int:
    env, settings = load_pipeline(args.pipeline)
    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import diff_contracts, history_of
    from ml_assets.ingestion.contract_file import UnknownRevision, load_revision

    path = _contract_file(env, settings)
    try:
        old, new = load_revision(path, args.rev1), load_revision(path, args.rev2)
    except (UnknownRevision, ContractFileError) as exc:
        raise Refused(str(exc)) from None
    print(f"data contract {settings.name!r}: revision {args.rev1} -> {args.rev2}")
    low, high = sorted((args.rev1, args.rev2))
    for entry in history_of(new if args.rev2 >= args.rev1 else old):
        if low < (entry.get("revision") or 0) <= high:
            reason = entry.get("reason") or "no reason given"
            print(f"  revision {entry.get('revision')}: {entry.get('data_version')} accepted by "
                  f"{entry.get('by')} at {entry.get('at')}: {reason}")
    lines = diff_contracts(old, new)
    for line in lines:
        print(f"  {line}")
    if not lines:
        print("  no expectation changed")
    return EXIT_OK


def cmd_contract_accept(args) -> int:
    env, settings = load_pipeline(args.pipeline)
    from filelock import Timeout

    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import CannotWiden
    from ml_assets.core.tables import TableReadError, read_table
    from ml_assets.ingestion.contract_file import accept_version, request_rerun
    from ml_assets.storage import StoreError, VersionedStore

    path = _contract_file(env, settings)
    store = VersionedStore(env.store_root, settings.name)
    key = args.version
    record = store.version(key)
    if record is None:
        known = list(store.versions())
        listed = ", ".join(known[-10:]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
        raise Refused(f"data version {key!r} is not in the store of pipeline {settings.name!r}; "
                      + (f"data versions: {listed}" if known else "it holds no data version yet"))
    try:
        df = read_table(store.verify_snapshot(key))
    except StoreError as exc:
        raise Refused(str(exc)) from None
    except TableReadError as exc:
        raise Refused(f"{record.source_name} (data version {key}) cannot be read as a table: {exc}") from None
    try:
        outcome = accept_version(path, df, settings, key, args.reason)
    except (ContractFileError, CannotWiden) as exc:
        raise Refused(str(exc)) from None
    except Timeout:
        raise Refused(f"{path} is locked by another process (a run inferring it, or another "
                      "accept); try again") from None
    if outcome.already_passes:
        print(f"data version {key} already passes contract revision {outcome.revision}: "
              "nothing to widen")
        return EXIT_OK
    print(f"data contract {settings.name!r} widened from {key} to revision {outcome.revision}:")
    for line in outcome.widened:
        print(f"  {line}")
    print(f"revision {outcome.revision - 1} kept as {outcome.previous}")
    try:
        run_key = request_rerun(store, key, outcome.revision, args.reason)
    except StoreError as exc:
        raise Refused(f"contract revision {outcome.revision} was saved, but the run of {key} "
                      f"could not be requested: {exc}; run it from the Dagster UI (materialise "
                      "its partition)") from None
    print(f"run of {key} requested ({run_key}): new_data_sensor starts it, or `ml-assets run`")
    return EXIT_OK
