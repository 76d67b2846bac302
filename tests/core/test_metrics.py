"""`/metrics` access rules, what the instrumented code records, the multiprocess directory's
upkeep, the scrape-time queries' plans, and the request/task log lines.

These run in the test process, whose figures live in the in-process registry (no
PROMETHEUS_MULTIPROC_DIR): the embedded mode's fallback. tests/core/test_metrics_live.py scrapes
the Procfile topology.
"""

import json
import logging
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from automations import services as automation_services
from core import metrics
from core.logfilters import RedactSecrets
from core.logs import ContextFilter, JsonFormatter
from core.models import FailedJob
from scoring.tasks import lead_score_task
from tests.automations.factories import WebhookDeliveryFactory
from tests.live import ROOT

TOKEN = "test-metrics-token-7f3a"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape_in_process() -> dict:
    return samples(metrics.exposition().decode())


# --- access --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_is_not_found_for_everyone_when_neither_token_nor_networks_are_configured():
    # given a scraper on loopback (a reverse proxy on the same host makes everyone loopback)
    client = Client(REMOTE_ADDR="127.0.0.1")
    unknown = client.get("/no-such-page")

    # when / then: the same 404 as a URL that does not exist, token or not
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer anything"}, {"HTTP_AUTHORIZATION": "Bearer "}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 404
        assert response.content == unknown.content


@pytest.mark.django_db
@override_settings(LEADPULSE_METRICS_TOKEN=TOKEN)
def test_metrics_answers_the_bearer_token_only():
    client = Client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 404
    assert client.get(f"/metrics?token={TOKEN}").status_code == 404
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"leadpulse_ingest_events_total" in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
@override_settings(LEADPULSE_METRICS_ALLOW=["10.1.2.0/24", "2001:db8::/32"])
def test_metrics_answers_peers_in_the_allowed_networks_and_nobody_else():
    assert Client(REMOTE_ADDR="10.1.2.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:10.1.2.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::5").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.3.7").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    # a forwarded header is not the peer
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.7").status_code == 404


@override_settings(LEADPULSE_METRICS_ALLOW=["10.1.2.300/24"])
def test_a_malformed_network_is_a_configuration_error_naming_the_setting(rf):
    with pytest.raises(ImproperlyConfigured, match="LEADPULSE_METRICS_ALLOW"):
        metrics.scrape_allowed(rf.get("/metrics"))


# --- what is recorded ---------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(LEADPULSE_RATE_INGEST_IP="2/m")
def test_rate_limit_refusals_and_ingest_statuses_are_counted(tenant, frozen_rate_windows):
    before = scrape_in_process()
    client = Client()
    statuses = [
        client.post(
            "/api/events",
            json.dumps({"eventType": "page_view", "leadId": "rl-1"}),
            content_type="application/json",
            HTTP_X_API_KEY=tenant.write_key,
        ).status_code
        for _ in range(3)
    ]
    after = scrape_in_process()

    assert statuses == [202, 202, 429]
    requests = "leadpulse_ingest_requests_total"
    assert moved(before, after, requests, endpoint="/api/events", status="202") == 2
    assert moved(before, after, requests, endpoint="/api/events", status="429") == 1
    limited = "leadpulse_rate_limited_total"
    assert value(after, limited, scope="ingest-ip") - value(before, limited, scope="ingest-ip") == 1
    events = "leadpulse_ingest_events_total"
    assert value(after, events, outcome="accepted") - value(before, events, outcome="accepted") == 2


@pytest.mark.django_db
def test_webhook_deliveries_are_counted_by_outcome_and_dead_letters_show_at_scrape(tenant, settings, refusing_port):
    # given a delivery to a port nobody listens on, one attempt before its last
    settings.LEADPULSE_WEBHOOK_RETRY_DELAYS = [1]
    delivery = WebhookDeliveryFactory(project=tenant.project, url=f"http://127.0.0.1:{refusing_port}/hook")
    before = scrape_in_process()

    # when it is attempted twice
    first = automation_services.delivery_attempt(delivery_id=delivery.id)
    second = automation_services.delivery_attempt(delivery_id=delivery.id)
    after = scrape_in_process()

    # then one retry, then a failure that is dead-lettered
    assert (first.status, second.status) == ("retry", "failed")
    deliveries = "leadpulse_webhook_deliveries_total"
    for outcome, moved in (("retrying", 1), ("failed", 1), ("succeeded", 0)):
        assert value(after, deliveries, outcome=outcome) - value(before, deliveries, outcome=outcome) == moved
    lettered = "leadpulse_dead_lettered_total"
    assert value(after, lettered, kind="webhook.delivery") - value(before, lettered, kind="webhook.delivery") == 1
    assert value(after, "leadpulse_dead_letters", kind="webhook.delivery") == 1
    FailedJob.objects.update(replayed_at=delivery.created_at)
    assert value(scrape_in_process(), "leadpulse_dead_letters", kind="webhook.delivery") == 0


@pytest.mark.django_db(transaction=True)
def test_scoring_observes_each_event_once_and_the_backlog_empties(tenant):
    # given three events stored but not scored. Stored directly, not through ingest: ingest would
    # wake the session's live Celery workers (when an earlier test started them), which would score
    # the lead in their own processes and leave nothing for the task this test runs.
    from tests.ingest.factories import EventFactory, LeadFactory

    before = scrape_in_process()
    lead = LeadFactory(project=tenant.project, anonymous_id="lat-1")
    now = timezone.now()
    EventFactory.create_batch(3, lead=lead, name="page_view", timestamp=now, received_at=now)
    pending = scrape_in_process()
    assert value(pending, "leadpulse_unscored_events") == 3
    assert value(pending, "leadpulse_oldest_unscored_event_age_seconds") >= 0

    # when the scoring task runs (eagerly: the signals and the fold are the real ones)
    lead_score_task.apply(kwargs={"lead_id": lead.id}).get()
    after = scrape_in_process()

    # then
    latency = "leadpulse_ingest_to_scored_seconds_count"
    assert value(after, latency) - value(before, latency) == 3
    tasks = "leadpulse_task_duration_seconds_count"
    labels = {"task": "scoring.lead_score_task", "outcome": "success"}
    assert value(after, tasks, **labels) - value(before, tasks, **labels) == 1
    assert value(after, "leadpulse_unscored_events") == 0
    assert value(after, "leadpulse_oldest_unscored_event_age_seconds") == 0
    assert value(after, "leadpulse_scrape_source_up", source="database") == 1
    assert value(after, "leadpulse_scrape_source_up", source="redis") == 1
    assert ("leadpulse_queue_depth", frozenset({("queue", "celery")})) in after


@pytest.mark.django_db
def test_the_scrape_time_queries_read_the_partial_index_not_the_events_table(tenant):
    # given a big, fully scored events table and a small backlog, with fresh statistics
    from tests.ingest.factories import LeadFactory

    lead = LeadFactory(project=tenant.project, anonymous_id="big")
    event_sql = (
        "INSERT INTO ingest_event (project_id, lead_id, event_id, type, name, anonymous_id, user_id, session_id,"
        " properties, context, timestamp, received_at, processed_at)"
        " SELECT %s, %s, 'e' || n, 'track', 'page_view', 'big', '', '', '{}', '{}', now(), now(),"
        " CASE WHEN n <= 5 THEN NULL ELSE now() END FROM generate_series(1, 50000) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(event_sql, [tenant.project.id, lead.id])
        # check the 50,000 deferred foreign keys now: the scrape's `SET LOCAL statement_timeout` lasts until
        # the test's transaction ends, and the checks at teardown could outlast it on a loaded machine
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ANALYZE ingest_event")

    # when the scrape reads its figures
    with CaptureQueriesContext(connection) as queries:
        figures = {m.name: m for m in metrics.ScrapeTimeCollector()._database()}
    assert figures["leadpulse_unscored_events"].samples[0].value == 5

    # then the backlog query uses the partial index
    (backlog_sql,) = [q["sql"] for q in queries.captured_queries if "ingest_event" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {backlog_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "event_pending_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


# --- the multiprocess directory -------------------------------------------------------------

RECORD = """
import sys
from core import metrics
metrics.ingest_events(accepted=int(sys.argv[1]))
metrics.SCORED_LATENCY.observe(0.3)
if len(sys.argv) > 2:
    print("ready", flush=True)
    sys.stdin.read()  # stay alive until the test closes stdin
"""
READ = """
import glob, os
from prometheus_client.multiprocess import MultiProcessCollector
for m in MultiProcessCollector.merge(glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db"))):
    for s in m.samples:
        if s.name in ("leadpulse_ingest_events_total", "leadpulse_ingest_to_scored_seconds_count") and (
            s.labels.get("outcome") in (None, "accepted")
        ):
            print(s.name, s.value)
"""
COMPACT = "from core import metrics; metrics.multiprocess_compact()"


def test_files_of_dead_processes_fold_into_an_archive_and_totals_stay(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def python(code: str, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    def totals() -> dict[str, float]:
        return {name: float(v) for name, v in (line.split() for line in python(READ).splitlines())}

    # given two processes that ran and exited, one still running, and a file of another host
    python(RECORD, "3")
    python(RECORD, "4")
    alive = subprocess.Popen(
        [sys.executable, "-c", RECORD, "5", "stay"], env=env, cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip() == "ready"
        dead_files = sorted(p.name for p in tmp_path.glob("*.db") if f"-{alive.pid}." not in p.name)
        assert len(dead_files) == 4  # a counter and a histogram file per dead process
        other_host = tmp_path / "counter_otherhost-1.db"
        other_host.write_bytes((tmp_path / dead_files[0]).read_bytes())
        assert totals() == {"leadpulse_ingest_events_total": 15.0, "leadpulse_ingest_to_scored_seconds_count": 3.0}

        # when a process starts (twice: folding is idempotent)
        python(COMPACT)
        python(COMPACT)

        # then the dead processes' files are folded away, nothing else is touched, and totals stay
        names = sorted(p.name for p in tmp_path.glob("*.db"))
        assert not set(dead_files) & set(names)
        assert other_host.name in names
        assert len([n for n in names if n.endswith("-archive.db")]) == 2
        assert len([n for n in names if f"-{alive.pid}." in n]) == 2
        assert totals() == {"leadpulse_ingest_events_total": 15.0, "leadpulse_ingest_to_scored_seconds_count": 3.0}
    finally:
        alive.communicate("", timeout=30)

    # and once the last one is gone too, the next start folds it in as well
    python(COMPACT)
    assert not [p for p in tmp_path.glob("*.db") if f"-{alive.pid}." in p.name]
    assert totals() == {"leadpulse_ingest_events_total": 15.0, "leadpulse_ingest_to_scored_seconds_count": 3.0}


# --- logs ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_request_gets_an_id_echoed_back_and_one_log_line(tenant, caplog):
    client = Client()
    caplog.handler.addFilter(ContextFilter())  # as the console handler of settings.LOGGING does
    caplog.set_level(logging.INFO, logger="leadpulse.request")

    kept = client.get("/api/health?token=secret-in-query", HTTP_X_REQUEST_ID="edge-7f3a.1")
    made = client.get("/api/health")
    smuggled = client.get("/api/health", HTTP_X_REQUEST_ID="evil\nline injected")

    assert kept["X-Request-ID"] == "edge-7f3a.1"
    assert len(made["X-Request-ID"]) == 32
    assert smuggled["X-Request-ID"] != "evil\nline injected"
    assert len(smuggled["X-Request-ID"]) == 32
    lines = [r for r in caplog.records if r.name == "leadpulse.request"]
    assert [r.request_id for r in lines] == [kept["X-Request-ID"], made["X-Request-ID"], smuggled["X-Request-ID"]]
    first = lines[0]
    assert (first.method, first.path, first.status) == ("GET", "/api/health", kept.status_code)
    assert first.duration_ms >= 0
    assert "secret-in-query" not in first.getMessage()


@pytest.mark.django_db
def test_request_lines_name_the_project_and_user_and_mask_secret_url_parameters(tenant, caplog):
    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.INFO, logger="leadpulse.request")
    tenant.client.get("/api/leads")
    Client().post(
        "/api/events",
        json.dumps({"eventType": "page_view", "leadId": "log-1"}),
        content_type="application/json",
        HTTP_X_API_KEY=tenant.write_key,
    )
    Client().get("/password-reset/MQ/c1ud2-0123456789abcdef/")

    api, ingest, reset = [r for r in caplog.records if r.name == "leadpulse.request"]
    assert (api.path, api.project_id, api.user_id) == ("/api/leads", tenant.project.id, tenant.owner.id)
    assert (ingest.project_id, getattr(ingest, "user_id", None)) == (tenant.project.id, None)
    assert "c1ud2-0123456789abcdef" not in reset.path
    assert "MQ" not in reset.path


def test_tokens_in_any_log_message_are_redacted():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '"GET %s HTTP/1.1" 200', ("/ws/?token=eyJ.a.b&x=1",), None
    )
    RedactSecrets().filter(record)
    assert record.getMessage() == '"GET /ws/?token=[redacted]&x=1 HTTP/1.1" 200'


def test_json_lines_parse_and_leave_out_whole_requests_and_task_arguments(rf):
    formatter = JsonFormatter("{asctime}{levelname}{name}{message}", style="{")
    record = logging.LogRecord("leadpulse.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.request = rf.get("/x?token=abc", HTTP_AUTHORIZATION="Bearer abc")
    record.data = {"kwargs": "{'secret': 'abc'}"}
    record.request_id = "r1"
    line = json.loads(formatter.format(record))
    assert line["message"] == "GET /x"
    assert (line["level"], line["logger"], line["request_id"]) == ("INFO", "leadpulse.request", "r1")
    assert "abc" not in json.dumps(line)


@pytest.mark.django_db(transaction=True)
def test_each_task_logs_one_line_with_its_lead_and_outcome(tenant, caplog):
    from tests.ingest.factories import LeadFactory

    lead = LeadFactory(project=tenant.project, anonymous_id="task-log")
    caplog.handler.addFilter(ContextFilter())  # as the console handler of settings.LOGGING does
    caplog.set_level(logging.INFO, logger="leadpulse.task")

    result = lead_score_task.apply(kwargs={"lead_id": lead.id})

    (line,) = [r for r in caplog.records if r.name == "leadpulse.task"]
    assert (line.task, line.task_id, line.lead_id, line.outcome) == (
        "scoring.lead_score_task",
        result.id,
        lead.id,
        "success",
    )
    assert line.duration_ms >= 0


def test_production_settings_log_json_and_local_settings_plain():
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SECRET_KEY": "metrics-test-key-long-and-varied-enough-for-production-0123456789",
        "DJANGO_ALLOWED_HOSTS": "example.com",
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    code = "import importlib, sys; print(importlib.import_module(sys.argv[1]).LOGGING['handlers']['console'])"

    def formatter(module: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code, module], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    assert "'formatter': 'json'" in formatter("leadpulse.settings.production")
    assert "'formatter': 'plain'" in formatter("leadpulse.settings.local")
    assert "'formatter': 'plain'" in formatter("leadpulse.settings.test")
