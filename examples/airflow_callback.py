"""Report Airflow task runs to syncwarden.

Copy this file next to your DAGs (or into a plugins/ module) and attach the
callbacks, for one task or for every task of a DAG through default_args:

    from airflow_callback import syncwarden_on_failure, syncwarden_on_success

    with DAG(
        "orders_to_salesforce",
        default_args={
            "on_failure_callback": syncwarden_on_failure,
            "on_success_callback": syncwarden_on_success,
        },
        ...
    ):

Each finished task becomes one run of the sync `airflow:<dag_id>.<task_id>`
(run id `<dag run id>#<try number>`, so a retried callback is idempotent).
The sidecar is found through SYNCWARDEN_URL (default http://127.0.0.1:8686)
and SYNCWARDEN_TOKEN (a bearer token, when the sidecar has tokens).

Standard library only; Airflow itself is never imported. A sidecar that
cannot be reached is logged and never fails the task.
"""

import datetime
import json
import logging
import os
import re
import urllib.request

log = logging.getLogger(__name__)

_SYNC_ID_CHARS = re.compile(r"[^A-Za-z0-9_.:/@-]")


def _rfc3339(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def run_record(context, status):
    """The canonical run (SPEC §1) for an Airflow callback context."""
    ti = context["task_instance"]
    dag_run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", None)
    now = datetime.datetime.now(datetime.timezone.utc)
    run = {
        "sync_id": _SYNC_ID_CHARS.sub("_", "airflow:%s.%s" % (ti.dag_id, ti.task_id))[:200],
        "run_id": "%s#%s" % (dag_run_id or "manual", getattr(ti, "try_number", 1)),
        "status": status,
        "finished_at": _rfc3339(getattr(ti, "end_date", None) or now),
        "source": "airflow",
        "labels": {"dag": str(ti.dag_id), "task": str(ti.task_id)},
    }
    started = _rfc3339(getattr(ti, "start_date", None))
    if started:
        run["started_at"] = started
    url = getattr(ti, "log_url", None)
    if url and str(url).startswith(("http://", "https://")):
        run["url"] = str(url)
    if status == "failed":
        exception = context.get("exception")
        message = str(exception) if exception else "the task failed"
        code = type(exception).__name__ if exception else None
        run["error"] = {"message": message[:10000]}
        if code:
            run["error"]["code"] = code
    return run


def post_run(run, timeout=10):
    """POST one run to syncwarden; returns its answer, or None when it could
    not be delivered (logged, never raised)."""
    url = os.environ.get("SYNCWARDEN_URL", "http://127.0.0.1:8686").rstrip("/") + "/v1/runs"
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("SYNCWARDEN_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(
        url, data=json.dumps(run).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except Exception as e:  # a monitoring hiccup must not fail the task
        log.warning("syncwarden: run %s of %s not reported: %s", run["run_id"], run["sync_id"], e)
        return None


def syncwarden_on_success(context):
    post_run(run_record(context, "success"))


def syncwarden_on_failure(context):
    post_run(run_record(context, "failed"))
