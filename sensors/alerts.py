"""Alerts beyond a log line: failed runs and failed asset checks, posted to a webhook.

Both sensors always write one structured JSON line to the daemon's log (for log shippers)
and, when ``HELIOS_ALERT_WEBHOOK_URL`` is set, post a Slack-compatible message there
(``text`` for any incoming webhook, ``blocks`` for Slack's layout). They are Dagster run
status sensors, so Dagster keeps their cursors: each failed run, and each successful run
with a failed check, is reported once. A blocking check that fails also fails its run: the
run-failure alert then lists the failed checks itself.
"""

from __future__ import annotations

import json
import logging

import dagster as dg
import httpx

from ingest_services.settings import load_settings

RUNS_LOG = logging.getLogger("helios.runs")
TIMEOUT_S = 5.0
RETRIES = 2  # connection attempts retried by httpx's transport, then the sensor logs and moves on


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The asset checks that failed in one run: asset, check, severity, metadata."""
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = entry.dagster_event.event_specific_data
        if ev.passed:
            continue
        out.append({"asset": ev.asset_key.to_user_string(), "check": ev.check_name,
                    "severity": ev.severity.value,
                    "metadata": {k: getattr(v, "value", str(v)) for k, v in ev.metadata.items()}})
    return out


def slack_message(title: str, lines: list[str]) -> dict:
    """Slack-compatible incoming-webhook JSON: plain ``text`` plus one ``mrkdwn`` section."""
    body = "\n".join(lines)
    return {"text": f"{title}\n{body}",
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}}]}


def post(url: str | None, message: dict, log: logging.Logger) -> bool:
    """POST ``message`` to ``url``; a webhook that is down is logged, never raised (an alert
    sensor that fails would hide the failure it reports)."""
    if not url:
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(retries=RETRIES),
                          timeout=TIMEOUT_S) as client:
            client.post(url, json=message).raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning(f"alert webhook {url} failed: {exc!r}")
        return False


def _webhook() -> str | None:
    return load_settings().alert_webhook_url


@dg.run_failure_sensor(name="alert_on_run_failure",
                       default_status=dg.DefaultSensorStatus.RUNNING)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    """Each failed run: one JSON line in the daemon's log and, if configured, a webhook."""
    run = context.dagster_run
    checks = failed_checks(context.instance, run.run_id)
    record = {"event": "run_failed", "run_id": run.run_id, "job": run.job_name,
              "tags": dict(run.tags), "error": context.failure_event.message,
              "failed_checks": checks}
    line = json.dumps(record)
    RUNS_LOG.error(line)  # the daemon's log stream, for shippers
    context.log.error(line)  # the sensor's tick log in the UI
    partition = run.tags.get("dagster/partition")
    lines = [f"*job* `{run.job_name}`" + (f" (partition {partition})" if partition else ""),
             f"*run* `{run.run_id}`",
             f"*error* {context.failure_event.message or 'unknown'}"]
    lines += [f"*failed check* `{c['asset']}` / `{c['check']}`: {c['metadata']}" for c in checks]
    post(_webhook(), slack_message(f"Helios: run of {run.job_name} failed", lines), RUNS_LOG)


@dg.run_status_sensor(name="alert_on_check_failure", run_status=dg.DagsterRunStatus.SUCCESS,
                      default_status=dg.DefaultSensorStatus.RUNNING)
def alert_on_check_failure(context: dg.RunStatusSensorContext) -> None:
    """Each successful run whose asset checks did not all pass (non-blocking checks do not
    fail a run, so this is where they surface)."""
    run = context.dagster_run
    checks = failed_checks(context.instance, run.run_id)
    if not checks:
        return
    line = json.dumps({"event": "checks_failed", "run_id": run.run_id, "job": run.job_name,
                       "failed_checks": checks})
    RUNS_LOG.error(line)
    context.log.error(line)
    lines = [f"*run* `{run.run_id}` of `{run.job_name}`"]
    lines += [f"*{c['severity']}* `{c['asset']}` / `{c['check']}`: {c['metadata']}"
              for c in checks]
    post(_webhook(), slack_message(f"Helios: {len(checks)} asset check(s) failed", lines),
         RUNS_LOG)
