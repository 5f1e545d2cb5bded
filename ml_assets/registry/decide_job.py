"""Deciding from the Dagster UI: the op job `<slug>__decide_version` approves, rejects or rolls
back a model version with the same checks as `ml-assets approve|reject|rollback`; and the
observation on `registered_model_version` that shows any such decision in the UI."""

from typing import Literal

import dagster as dg

from ml_assets.graph import REGISTERED_MODEL_VERSION, DagsterNames
from ml_assets.pipelines import Pipeline
from ml_assets.registry.decisions import Decision, DecisionHome, DecisionRefused, Notify


class DecideConfig(dg.Config):
    """What to decide: approve or reject the version waiting under `challenger`, or roll the
    champion back (to `version`, else to the previous champion)."""

    action: Literal["approve", "reject", "rollback"]
    version: int | None = None
    reason: str = ""


def decide(home: DecisionHome, action: str, version: int | None, reason: str, *, actor: str,
           notify: Notify | None = None) -> Decision:
    """One decision, as `ml-assets approve|reject|rollback` makes it; DecisionRefused if not."""
    from ml_assets.registry import decisions

    if action == "rollback":
        return decisions.rollback(home, version, actor=actor, reason=reason, notify=notify)
    if version is None:
        raise DecisionRefused(f"{action} needs the model version (config `version`)")
    if action == "approve":
        return decisions.approve(home, version, actor=actor, reason=reason, notify=notify)
    if action == "reject":
        return decisions.reject(home, version, actor=actor, reason=reason, notify=notify)
    raise DecisionRefused(f"unknown action {action!r}: expected approve, reject or rollback")


def decision_observation(names: DagsterNames, decision: Decision, records: list[dict],
                         primary_metric: str | None) -> dg.AssetObservation | None:
    """The decision as an observation of its version's `registered_model_version` partition,
    with the ledger as a table; None for a version without a recorded data version."""
    from ml_assets.registry.ledger import markdown_table

    entry = decision.record
    if not entry.get("data_version"):
        return None
    return dg.AssetObservation(
        asset_key=names.key(REGISTERED_MODEL_VERSION),
        partition=entry["data_version"],
        metadata={
            "decision": dg.MetadataValue.text(decision.message),
            "action": entry["action"],
            "version": entry["model_version"],
            "champion_before": "none" if entry["champion_before"] is None else entry["champion_before"],
            "champion_after": "none" if entry["champion_after"] is None else entry["champion_after"],
            "actor": entry["actor"],
            "reason": entry.get("reason") or "",
            "ledger_seq": entry["seq"],
            "ledger": dg.MetadataValue.md(markdown_table(records, primary_metric)),
        },
    )


def build_decide_job(pipeline: Pipeline) -> dg.JobDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.op(
        name=f"{names.slug}__decide",
        required_resource_keys={"registry", "notifier"},
        description=f"Approve, reject or roll back a model version of pipeline {settings.name!r}.",
    )
    def decide_op(context: dg.OpExecutionContext, config: DecideConfig) -> None:
        from filelock import Timeout

        from ml_assets.registry.ledger import ledger_of

        home = DecisionHome(settings.name, context.resources.registry.tracking_uri, env.store_root)
        user = context.run.tags.get("dagster/user") or "unknown"

        def notify(event: str, message: str, data_version: str | None) -> None:
            context.resources.notifier.send(
                event, version=data_version, step=names.decide_job, reason=message,
                run_id=context.run_id, logger=context.log, pipeline=settings.name,
            )

        try:
            decision = decide(home, config.action, config.version, config.reason,
                              actor=f"dagster UI (run {context.run_id}, {user})", notify=notify)
        except DecisionRefused as exc:
            raise dg.Failure(description=f"refused: {exc}", allow_retries=False) from None
        except Timeout as exc:  # another decision (or a registration) holds the pipeline's lock
            raise dg.Failure(description=f"another decision on {settings.name} is in progress "
                             f"and holds {exc.lock_file}; launch this one again") from None
        for warning in decision.warnings:
            context.log.warning(warning)
        context.log.info(decision.message)
        observation = decision_observation(names, decision, ledger_of(env.store_root, settings.name).records(),
                                           settings.primary_metric)
        if observation is not None:
            context.log_event(observation)

    @dg.job(
        name=names.decide_job,
        description=f"Decide on a model version of pipeline {settings.name!r}: run config "
        f"`ops: {{{names.slug}__decide: {{config: {{action: approve | reject | rollback, "
        "version: 3, reason: ...}}}}`.",
        tags={"ml_assets/decision_of": settings.name},
    )
    def decide_version():
        decide_op()

    return decide_version
