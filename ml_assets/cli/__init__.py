"""`ml-assets`: run the pipelines headless, show their status, list the pipeline files, write
demo data, evolve a data contract, score a file with the champion, decide on model versions
(approve, reject, rollback, history), migrate an older home. The parser and `main` are here; each
command lives in a module of its own.

Exit codes: 0 all passed; 1 a version was blocked (a gate failed, or its file could not be
read as a table) or its run failed, or a command refused what it was asked (the reason named);
2 usage or pipeline-file error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from ml_assets.cli.common import EXIT_BLOCKED, EXIT_USAGE, Refused, UsageError
from ml_assets.cli.contract import cmd_contract_accept, cmd_contract_diff, cmd_contract_show
from ml_assets.cli.decide import cmd_approve, cmd_reject, cmd_rollback
from ml_assets.cli.demo import cmd_demo
from ml_assets.cli.history import cmd_history
from ml_assets.cli.migrate import cmd_migrate
from ml_assets.cli.pipelines import cmd_pipelines
from ml_assets.cli.run import cmd_run
from ml_assets.cli.score import cmd_score
from ml_assets.cli.status import cmd_status


def main(argv: list[str] | None = None) -> int:
    from ml_assets.heap import freeze_at_exit

    freeze_at_exit()  # exit without the interpreter's last collections walking the heap
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors, as the contract says
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("ML_ASSETS_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {first} (set ML_ASSETS_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_BLOCKED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-assets",
        description="Automated ML training pipeline (a Dagster code location).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="register new landing files and materialise the graph for each")
    run.add_argument("--changed", action="store_true",
                     help="instead: rematerialise exactly the assets made stale by a change of "
                     "code or pipeline file (e.g. model.params), for every version, and say why")
    _add_pipeline_option(run, many=True)
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="data versions, their checks and metrics, and the champion")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_pipeline_option(status, many=True)
    status.set_defaults(func=cmd_status)
    pipelines = sub.add_parser("pipelines", help="every pipeline file: name, landing folder, valid or why not")
    pipelines.add_argument("--json", action="store_true", help="one JSON object on stdout")
    pipelines.set_defaults(func=cmd_pipelines)
    demo = sub.add_parser("demo", help="write demo data versions into the landing folder")
    demo.add_argument("--versions", type=_non_negative, default=0, metavar="N",
                      help="write N further versions (default: only the bundled table)")
    demo.add_argument("--drift", action="store_true", help="shift the new versions' size measurements")
    demo.add_argument("--score", type=_non_negative, default=0, metavar="N",
                      help="write N batches of new rows to score into the scoring folder")
    labels = demo.add_mutually_exclusive_group()
    labels.add_argument("--labels", action="store_true",
                        help="write the true labels of the scoring batches that have none yet")
    labels.add_argument("--shifted-labels", action="store_true",
                        help="the same, as a changed world labels them (the champion decays)")
    demo.add_argument("--if-empty", action="store_true",
                      help="write nothing if the landing folder already holds data (used by make dev)")
    demo.set_defaults(func=cmd_demo)
    _add_contract_parser(sub)
    _add_decision_parsers(sub)
    _add_score_parser(sub)
    migrate = sub.add_parser(
        "migrate", help="move a home written by a single-pipeline version onto the pipelines' names"
    )
    _add_pipeline_option(migrate, many=True)
    migrate.set_defaults(func=cmd_migrate)
    return parser


def _add_contract_parser(sub) -> None:
    contract = sub.add_parser(
        "contract", help="the data contract: show it, compare revisions, widen it from a version"
    )
    actions = contract.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the current contract, readable, with its history")
    show.add_argument("--json", action="store_true", help="the contract file's JSON")
    _add_pipeline_option(show)
    show.set_defaults(func=cmd_contract_show)
    diff = actions.add_parser("diff", help="what changed between two revisions")
    diff.add_argument("rev1", type=_revision, metavar="REV1")
    diff.add_argument("rev2", type=_revision, metavar="REV2")
    _add_pipeline_option(diff)
    diff.set_defaults(func=cmd_contract_diff)
    accept = actions.add_parser(
        "accept", help="widen the contract from a blocked data version and run that version again"
    )
    accept.add_argument("version", metavar="VERSION", help="the data version (partition key)")
    accept.add_argument("--reason", default="", metavar="TEXT",
                        help="why the version is right (kept in the contract's history)")
    _add_pipeline_option(accept)
    accept.set_defaults(func=cmd_contract_accept)


def _add_score_parser(sub) -> None:
    score = sub.add_parser("score", help="score a CSV or Parquet file with the champion")
    score.add_argument("file", metavar="FILE", help="rows in the landing format, without the target")
    score.add_argument("--output", required=True, metavar="OUT",
                       help="where to write the predictions (.csv or .parquet)")
    _add_pipeline_option(score)
    score.set_defaults(func=cmd_score)


def _add_decision_parsers(sub) -> None:
    approve = sub.add_parser("approve", help="make the version waiting for approval the champion")
    approve.add_argument("version", type=_model_version, metavar="VERSION",
                         help="the model version waiting under the alias challenger")
    _add_pipeline_option(approve)
    approve.set_defaults(func=cmd_approve)
    reject = sub.add_parser("reject", help="reject the version waiting for approval, for good")
    reject.add_argument("version", type=_model_version, metavar="VERSION",
                        help="the model version waiting under the alias challenger")
    reject.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the ledger)")
    _add_pipeline_option(reject)
    reject.set_defaults(func=cmd_reject)
    rollback = sub.add_parser("rollback", help="move champion back to an earlier champion")
    rollback.add_argument("--to", type=_model_version, metavar="VERSION",
                          help="a version that was champion once (default: the previous champion)")
    rollback.add_argument("--reason", metavar="TEXT", help="why (kept in the ledger)")
    _add_pipeline_option(rollback)
    rollback.set_defaults(func=cmd_rollback)
    history = sub.add_parser("history", help="the promotion ledger, oldest first")
    history.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_pipeline_option(history)
    history.set_defaults(func=cmd_history)


def _model_version(text: str) -> int:
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"expected a model version number such as 3, got {text!r}")
    return int(digits)


def _add_pipeline_option(parser, many: bool = False) -> None:
    if many:
        parser.add_argument("--pipeline", action="append", metavar="NAME",
                            help="only this pipeline (repeat for several; default: every pipeline)")
    else:
        parser.add_argument("--pipeline", action="append", metavar="NAME",
                            help="the pipeline (needed when there are several)")


def _revision(text: str) -> int:
    digits = text[1:] if text[:1] in ("r", "R") else text
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"expected a revision number such as 2 (or r2), got {text!r}")
    return int(digits)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _quiet_libraries() -> None:
    # No telemetry, progress bars or long HTTP retries: ml_assets/library_settings.py, applied
    # when the package was imported. Beyond those, a command-line tool's output stays short.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "great_expectations", "dagster", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
