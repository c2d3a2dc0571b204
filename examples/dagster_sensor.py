"""Report Dagster job runs to syncwarden with run-status sensors.

Add the sensors to your Definitions:

    from dagster import Definitions
    from dagster_sensor import syncwarden_sensors

    defs = Definitions(jobs=[...], sensors=[*syncwarden_sensors()])

Each finished run becomes one run of the sync `dagster:<job_name>` (run id:
Dagster's run id). The sidecar is found through SYNCWARDEN_URL (default
http://127.0.0.1:8686) and SYNCWARDEN_TOKEN; DAGSTER_WEBSERVER_URL, if set,
adds a link to the run. Only the standard library is used to post; dagster
is imported inside syncwarden_sensors() alone, so report_run() can be used
(and tested) without it. A sidecar that cannot be reached is logged and
never fails the sensor.
"""

import datetime
import json
import logging
import os
import re
import urllib.request

log = logging.getLogger(__name__)

_SYNC_ID_CHARS = re.compile(r"[^A-Za-z0-9_.:/@-]")


def _rfc3339(epoch_seconds):
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def run_record(context, status):
    """The canonical run (SPEC §1) for a run-status sensor context."""
    dagster_run = context.dagster_run
    run = {
        "sync_id": _SYNC_ID_CHARS.sub("_", "dagster:%s" % dagster_run.job_name)[:200],
        "run_id": str(dagster_run.run_id),
        "status": status,
        "source": "dagster",
        "labels": {"job": str(dagster_run.job_name)},
    }
    started = finished = None
    try:
        stats = context.instance.get_run_stats(dagster_run.run_id)
        started, finished = stats.start_time, stats.end_time
    except Exception:  # stats are a nicety; the outcome is what matters
        pass
    run["finished_at"] = _rfc3339(finished) if finished else _rfc3339(
        datetime.datetime.now(datetime.timezone.utc).timestamp()
    )
    if started:
        run["started_at"] = _rfc3339(started)
    webserver = os.environ.get("DAGSTER_WEBSERVER_URL")
    if webserver:
        run["url"] = webserver.rstrip("/") + "/runs/" + str(dagster_run.run_id)
    if status == "failed":
        event = getattr(context, "failure_event", None) or getattr(context, "dagster_event", None)
        message = getattr(event, "message", None) or "the Dagster run failed"
        run["error"] = {"code": "DAGSTER_RUN_FAILURE", "message": str(message)[:10000]}
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
    except Exception as e:  # a monitoring hiccup must not fail the sensor
        log.warning("syncwarden: run %s of %s not reported: %s", run["run_id"], run["sync_id"], e)
        return None


def report_run(context, status):
    """What the sensors do: build the run and post it."""
    return post_run(run_record(context, status))


def syncwarden_sensors():
    """The two sensors: successful runs and failed runs of every job."""
    from dagster import DagsterRunStatus, run_failure_sensor, run_status_sensor

    @run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitor_all_code_locations=True)
    def syncwarden_run_succeeded(context):
        report_run(context, "success")

    @run_failure_sensor(monitor_all_code_locations=True)
    def syncwarden_run_failed(context):
        report_run(context, "failed")

    return [syncwarden_run_succeeded, syncwarden_run_failed]
