"""`/metrics` and the logs of the Procfile topology: uvicorn with two workers and real Celery
prefork workers on PostgreSQL and Redis, all sharing one PROMETHEUS_MULTIPROC_DIR as on one host.

Counters are compared between two scrapes around real ingest; the figures of the Celery
children (latency, task durations) reach the web process's scrape through the directory.
"""

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ingest.models import Event
from tests.accounts.factories import project_with_owner
from tests.live import ROOT, listening_port, wait_until, worker_env

pytestmark = pytest.mark.live

TOKEN = f"metrics-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DASHBOARD = ROOT / "docs" / "grafana" / "leadpulse.json"


@pytest.fixture(scope="module")
def web(workers, tmp_path_factory):
    """`uvicorn leadpulse.asgi:application --workers 2 --timeout-keep-alive 75`, the Procfile's web process, logging
    JSON."""
    log_path: Path = tmp_path_factory.mktemp("web") / "web.log"
    env = {
        **worker_env(),
        "DJANGO_SETTINGS_MODULE": "leadpulse.settings.test",
        "LEADPULSE_METRICS_TOKEN": TOKEN,
        "LEADPULSE_METRICS_ALLOW": "127.0.0.2/32",
        "LOG_FORMAT": "json",
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "leadpulse.asgi:application", "--host", "127.0.0.1",
             "--port", "0", "--workers", "2", "--timeout-keep-alive", "75", "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{listening_port(process, log_path)}"  # port 0: no free-port race

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/metrics", headers=AUTH, timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, timeout=90, message="uvicorn with two workers")
            yield SimpleNamespace(base=base, log=log_path)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def post(base: str, path: str, body, key: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers={"X-API-Key": key, **headers}, timeout=30)


def test_counters_move_by_exactly_what_was_ingested_and_scored(live_pipeline, web):
    # given a project and a first scrape
    _project, _owner, key = project_with_owner(name="Metrics Co")
    before = scrape(web.base)

    # when a batch brings 7 new events, 2 repeats and 1 invalid one
    events = [{"eventType": "page_view", "leadId": f"m-lead-{i % 3}", "eventId": f"m-{i}"} for i in range(7)]
    events += [events[0], events[1], {"leadId": "m-lead-0"}]
    batch = post(web.base, "/api/events/batch", {"events": events}, key)
    # and single events: 3 stored, 1 invalid, 1 with an unknown key
    singles = [
        post(web.base, "/api/events", {"eventType": "signup", "leadId": f"m-lead-{i}"}, key).status_code
        for i in range(3)
    ]
    singles.append(post(web.base, "/api/events", {"leadId": "m-lead-0"}, key).status_code)
    singles.append(post(web.base, "/api/events", {"eventType": "x", "leadId": "y"}, "lp_pub_unknown").status_code)

    assert batch.status_code == 202
    assert (batch.json()["accepted"], batch.json()["duplicates"], len(batch.json()["errors"])) == (7, 2, 1)
    assert singles == [202, 202, 202, 400, 401]
    wait_until(lambda: not Event.objects.filter(processed_at__isnull=True).exists(), timeout=60, message="scoring")
    live_pipeline.wait_idle()
    after = scrape(web.base)

    # then, summed over both web workers and every Celery child
    requests = "leadpulse_ingest_requests_total"
    assert moved(before, after, requests, endpoint="/api/events/batch", status="202") == 1
    assert moved(before, after, requests, endpoint="/api/events", status="202") == 3
    assert moved(before, after, requests, endpoint="/api/events", status="400") == 1
    assert moved(before, after, requests, endpoint="/api/events", status="401") == 1
    outcomes = "leadpulse_ingest_events_total"
    assert moved(before, after, outcomes, outcome="accepted") == 10
    assert moved(before, after, outcomes, outcome="duplicate") == 2
    assert moved(before, after, outcomes, outcome="rejected") == 2
    assert moved(before, after, "leadpulse_ingest_to_scored_seconds_count") == 10
    assert moved(before, after, "leadpulse_ingest_to_scored_seconds_bucket", le="+Inf") == 10
    scoring = {"task": "scoring.leads_score_task", "outcome": "success"}  # batches: at least one task
    assert moved(before, after, "leadpulse_task_duration_seconds_count", **scoring) >= 1
    assert after[("leadpulse_unscored_events", frozenset())] == 0
    assert after[("leadpulse_oldest_unscored_event_age_seconds", frozenset())] == 0
    assert after[("leadpulse_queue_depth", frozenset({("queue", "celery")}))] == 0
    assert after[("leadpulse_scrape_source_up", frozenset({("source", "database")}))] == 1
    assert after[("leadpulse_scrape_source_up", frozenset({("source", "redis")}))] == 1

    # and the Grafana dashboard of docs/deploy.md names only metrics this scrape has
    names = {name for name, _ in after}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for metric in re.findall(r"\bleadpulse_[a-z0-9_]+", expr):
            assert metric in names, f"{metric} (in {expr!r}) is not exported"


def test_backlog_and_its_age_are_read_from_the_database_at_scrape_time(live_pipeline, web):
    # given events stored while no worker could score them yet (marked unprocessed by hand)
    _project, _owner, key = project_with_owner(name="Backlog Co")
    post(web.base, "/api/events/batch", {"events": [{"eventType": "a", "leadId": "b1", "eventId": "b1"}]}, key)
    wait_until(lambda: not Event.objects.filter(processed_at__isnull=True).exists(), timeout=60, message="scoring")
    live_pipeline.wait_idle()
    Event.objects.update(processed_at=None)

    # when / then: the gauges say so, and go back to zero once it is scored
    stalled = scrape(web.base)
    assert stalled[("leadpulse_unscored_events", frozenset())] == 1
    assert stalled[("leadpulse_oldest_unscored_event_age_seconds", frozenset())] > 0
    Event.objects.update(processed_at=Event.objects.get().received_at)
    assert scrape(web.base)[("leadpulse_unscored_events", frozenset())] == 0


def test_only_the_token_or_an_allowed_network_gets_the_metrics(web):
    url = f"{web.base}/metrics"
    unknown = httpx.get(f"{web.base}/no-such-page", timeout=10)
    for response in (
        httpx.get(url, timeout=10),
        httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}-wrong"}, timeout=10),
        httpx.get(url, params={"token": TOKEN}, timeout=10),
    ):
        assert response.status_code == 404
        assert response.content == unknown.content
    assert httpx.get(url, headers=AUTH, timeout=10).status_code == 200
    # a peer in LEADPULSE_METRICS_ALLOW (127.0.0.2/32) needs no token; 127.0.0.1 is not in it
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as allowed:
        response = allowed.get(url, timeout=10)
    assert response.status_code == 200
    assert "leadpulse_ingest_events_total" in response.text


def test_web_logs_are_json_lines_with_the_request_id_and_no_secrets(live_pipeline, web):
    # given requests carrying a write key, the metrics token and a JWT-like query string
    _project, _owner, key = project_with_owner(name="Logs Co")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    response = post(
        web.base, "/api/events", {"eventType": "page_view", "leadId": "log-1"}, key, **{"X-Request-ID": "lb-42.a"}
    )
    httpx.get(f"{web.base}/api/leads", params={"token": jwt}, timeout=10)
    httpx.get(f"{web.base}/metrics", headers=AUTH, params={"token": jwt}, timeout=10)
    assert response.headers["X-Request-ID"] == "lb-42.a"

    # when the log is read
    def logged() -> list[dict]:
        lines = [line for line in web.log.read_text().splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines]

    wait_until(lambda: any(r.get("path") == "/metrics" and "token" not in r for r in logged()), timeout=20)
    records = logged()
    text = web.log.read_text()

    # then one request line per request, with its id, project and status; nothing secret anywhere
    (ingest,) = [r for r in records if r.get("request_id") == "lb-42.a" and r["logger"] == "leadpulse.request"]
    assert (ingest["method"], ingest["path"], ingest["status"], ingest["project_id"]) == (
        "POST",
        "/api/events",
        202,
        _project.id,
    )
    assert ingest["duration_ms"] >= 0
    assert {"time", "level", "message"} <= set(ingest)
    leads = [r for r in records if r.get("path") == "/api/leads"]
    assert leads and all(len(r["request_id"]) == 32 for r in leads)
    for secret in (key, TOKEN, jwt, "token="):
        assert secret not in text
    # no log record in the plain format: the web workers' logging (ours, Django's, uvicorn's) is JSON
    assert not re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", text, re.M)
    assert any(r["logger"] == "uvicorn.error" for r in records)


def test_the_deploy_guide_has_a_valid_scrape_config_and_points_at_the_dashboard():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert "grafana/leadpulse.json" in guide
    (block,) = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    (job,) = yaml.safe_load(block)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
