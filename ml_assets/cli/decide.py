"""`ml-assets approve VERSION`, `reject VERSION --reason TEXT`, `rollback [--to VERSION]`: the
decisions on a pipeline's model versions after registration, recorded in its ledger, notified,
and shown in the Dagster UI as an observation of the version's `registered_model_version`."""

from __future__ import annotations

import sys

from ml_assets.cli.common import EXIT_OK, Refused, load_pipeline


def cmd_approve(args) -> int:
    return _decide(args, "approve", args.version, "")


def cmd_reject(args) -> int:
    return _decide(args, "reject", args.version, args.reason)


def cmd_rollback(args) -> int:
    return _decide(args, "rollback", args.to, args.reason or "")


def _decide(args, action: str, version: int | None, reason: str) -> int:
    env, settings = load_pipeline(args.pipeline)
    from filelock import Timeout

    from ml_assets.monitoring.notifications import Notifier
    from ml_assets.registry.decide_job import decide
    from ml_assets.registry.decisions import DecisionHome, DecisionRefused
    from ml_assets.registry.ledger import LedgerError, cli_actor

    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)

    def notify(event: str, message: str, data_version: str | None) -> None:
        notifier.send(event, version=data_version, reason=message)

    home = DecisionHome(settings.name, env.tracking_uri, env.store_root)
    try:
        decision = decide(home, action, version, reason, actor=cli_actor(action), notify=notify)
    except (DecisionRefused, LedgerError) as exc:
        raise Refused(str(exc)) from None
    except Timeout as exc:  # another decision (or a registration) holds the pipeline's lock
        raise Refused(f"another decision on {settings.name} is in progress and holds "
                      f"{exc.lock_file}; try again") from None
    print(decision.message)
    for warning in decision.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _show_in_ui(env, settings, decision)
    return EXIT_OK


def _show_in_ui(env, settings, decision) -> None:
    """The decision as an observation in the Dagster instance: best effort, the decision is
    made and recorded already."""
    from ml_assets.cli.common import open_instance
    from ml_assets.graph import DagsterNames
    from ml_assets.registry.decide_job import decision_observation
    from ml_assets.registry.ledger import ledger_of

    try:
        observation = decision_observation(
            DagsterNames.of(settings.name), decision,
            ledger_of(env.store_root, settings.name).records(), settings.primary_metric,
        )
        if observation is not None:
            open_instance().report_runless_asset_event(observation)
    except Exception as exc:
        print(f"warning: the decision is recorded, but not shown in the Dagster UI: "
              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
