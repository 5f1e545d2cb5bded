"""Notifications: a Slack-compatible JSON POST to ML_ASSETS_WEBHOOK_URL, or a log line.

A notification is a side effect of the pipeline, never a reason for it to fail: every error
of the webhook is caught and logged. The URL is a secret (a Slack webhook URL is a
credential): it is never logged nor put in metadata, only whether the POST succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

import dagster as dg

log = logging.getLogger("ml_assets.notifications")

TIMEOUT_SECONDS = 5.0


def webserver_url() -> str:
    return os.environ.get("ML_ASSETS_UI_URL", "http://127.0.0.1:3000").rstrip("/")


def run_link(run_id: str) -> str:
    return f"{webserver_url()}/runs/{run_id}"


def format_message(event: str, pipeline: str, version: str | None, step: str | None,
                   reason: str, run_id: str | None) -> str:
    parts = [f"[ml_assets] {event}: pipeline {pipeline}"]
    if version:
        parts.append(f"data version {version}")
    if step:
        parts.append(f"step {step}")
    text = ", ".join(parts) + f": {reason}"
    if run_id:
        text += f" (run {run_link(run_id)})"
    return text


def retrain_note(run_tags) -> str:
    """Why a run retrained, from its tags (ml_assets/trigger, ml_assets/moved_columns), as
    " (retrained for drift+change; moved: a, b)"; "" unless drift_sensor requested it for
    drift, change or decay."""
    from ml_assets.core.retraining import CHANGE, DECAY, DRIFT

    trigger = run_tags.get("ml_assets/trigger") or ""
    if not set(trigger.split("+")) & {DRIFT, CHANGE, DECAY}:
        return ""
    columns = (run_tags.get("ml_assets/moved_columns") or "").replace(",", ", ")
    return f" (retrained for {trigger}" + (f"; moved: {columns}" if columns else "") + ")"


def post(url: str | None, text: str, logger: logging.Logger | None = None) -> bool:
    """POST {"text": text}; True when the webhook answered 2xx. Never raises."""
    logger = logger or log
    if not url:
        logger.info(f"notification (no ML_ASSETS_WEBHOOK_URL set): {text}")
        return False
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            ok = 200 <= response.status < 300
            logger.info(f"notification posted to the webhook (HTTP {response.status}): {text}")
            return ok
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # str(exc) of URLError can carry the URL; report only the kind of failure.
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        logger.warning(f"the webhook did not take the notification ({reason}); message: {text}")
        return False


class Notifier(dg.ConfigurableResource):
    """Where notifications go; `webhook_url` comes from the environment (dg.EnvVar)."""

    webhook_url: str | None = None
    # The pipeline a message is about when `send` is not told (a CLI run of one pipeline);
    # the code location's one notifier is told by each asset and sensor.
    pipeline: str | None = None

    def send(self, event: str, *, version: str | None = None, step: str | None = None,
             reason: str, run_id: str | None = None, logger=None,
             pipeline: str | None = None) -> bool:
        text = format_message(event, pipeline or self.pipeline or "?", version, step, reason, run_id)
        return post(self.webhook_url, text, logger)
