"""Batch scoring with real worker processes: any number of workers, crashes and merges give the pure fold.

The workers claim small batches here (5 leads, 7 events of a lead per batch), so a backlog
takes many batches, hot leads are folded chunk by chunk from their checkpoint, and batches
of the two worker processes interleave.
"""

import itertools
import json
import os
import random
import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from core import pipeline
from ingest.lead_tallies import lead_tallies_drift
from ingest.models import Event, Lead
from scoring import engine
from scoring.models import ScoreHistory
from scoring.services.fold import facts, lead_materialised, lead_profile, project_policy, project_rules
from scoring.tasks import events_reconcile_task
from tests.accounts.factories import project_with_owner
from tests.live import wait_until

pytestmark = pytest.mark.live

SMALL_BATCHES = {"LEADPULSE_SCORE_BATCH": "5", "LEADPULSE_SCORE_CHUNK_EVENTS": "7"}


@pytest.fixture(scope="module")
def small_batch_workers(workers):
    """The session's two worker processes (x2), restarted once for this module's tests to claim small batches;
    restored after its last test (not around each test: a start costs seconds, and the tests stop and start
    them as they need anyway)."""
    workers.stop()
    saved = {key: os.environ.get(key) for key in SMALL_BATCHES}
    os.environ.update(SMALL_BATCHES)
    try:
        workers.start()
        yield workers
    finally:
        if workers.processes:
            workers.wait_idle(timeout=120)
        workers.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        workers.start()


@pytest.fixture
def small_batches(small_batch_workers, live_pipeline):
    """The small-batch workers, running at the start of the test (a test before may have killed them)."""
    if not live_pipeline.processes:
        live_pipeline.start()
    return live_pipeline


def post(path, body, key):
    try:
        response = Client().post(path, json.dumps(body), content_type="application/json", HTTP_X_API_KEY=key)
        assert response.status_code in (200, 202), response.content
        return response
    finally:
        connection.close()


def all_scored(project):
    return lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists()


def mixed_backlog(prefix: str, *, leads: int = 60, events: int = 900, seed: int = 7) -> list[dict]:
    """Events over `leads` leads, skewed (a few hot leads), timestamps shuffled (late events refold)."""
    rng, now = random.Random(seed), timezone.now()
    names = ["page_view", "page_view", "email_open", "form_submit", "unsubscribe", "signup", "scroll"]
    return [
        {
            "eventType": rng.choice(names),
            "leadId": f"{prefix}{int(leads * rng.random() ** 2)}",
            "eventId": f"{prefix}-{n}",
            "timestamp": (now - timedelta(minutes=rng.randrange(0, 600))).isoformat(),
        }
        for n in range(events)
    ]


def assert_pure_fold(project):
    """Every lead equals a fresh fold of its whole log, with one rule row per event chaining to the score."""
    policy = project_policy(project)
    engagement, fit = project_rules(project)
    now = timezone.now()
    for lead in Lead.objects.filter(project=project, merged_into__isnull=True).select_related("project"):
        log = [fact for _, fact in facts(Event.objects.filter(lead=lead))]
        expected = engine.lead_evaluate(
            lead=lead_materialised(lead), events=log, profile=lead_profile(lead), rules=engagement, fit_rules=fit,
            policy=policy, now=now, refold=True,
        )  # fmt: skip
        assert (lead.current_score, lead.lead_stage, lead.fold_state["score"]) == (
            expected.score,
            expected.stage,
            expected.state.score,
        ), lead.anonymous_id
        rows = list(
            ScoreHistory.objects.filter(lead=lead, reason="rule")
            .select_related("event")
            .order_by("event__timestamp", "event__event_id")
        )
        assert [(r.event.event_id, r.old_score, r.new_score) for r in rows] == [
            (step.event_id, step.old_score, step.new_score) for step in expected.history if step.event_id
        ], lead.anonymous_id
        for previous, row in itertools.pairwise(rows):
            assert row.old_score == previous.new_score
        assert ScoreHistory.objects.filter(lead=lead).latest("id").new_score == lead.current_score
    # no row of an event stayed behind on a lead the event left
    assert not ScoreHistory.objects.filter(project=project, event__isnull=False).exclude(lead_id=F("event__lead_id"))
    # and the project's lead tallies (stage counts, score total) equal a count of its live leads
    assert lead_tallies_drift(project_id=project.id) == {}


def test_two_worker_processes_draining_one_backlog_give_exactly_the_pure_fold(small_batches):
    # given a backlog stored while no worker runs
    project, _owner, key = project_with_owner(name="Backlog")
    small_batches.stop()
    backlog = mixed_backlog("m")
    for start in range(0, len(backlog), 300):
        post("/api/events/batch", {"events": backlog[start : start + 300]}, key)
    assert Event.objects.filter(project=project, processed_at__isnull=True).count() == 900

    # when two worker processes (2 children each) drain it in batches of 5 leads: its leads are requested once
    # both are up (the first process to start would score 900 events before the second is ready)
    pending = pipeline.lead_score_pending_pop(count=10_000)
    assert set(pending) >= set(Lead.objects.filter(project=project).values_list("id", flat=True))
    before = [small_batches.succeeded(i) for i in range(small_batches.count)]
    small_batches.start()
    pipeline.lead_score_request(lead_ids=pending)
    wait_until(all_scored(project), timeout=180, message="the backlog to be scored")

    # then every lead is exactly the pure fold of its log, whichever worker scored which chunk
    assert_pure_fold(project)
    assert ScoreHistory.objects.filter(project=project, reason="rule").count() == 900
    wait_until(
        lambda: all(small_batches.succeeded(i) > before[i] for i in range(small_batches.count)),
        timeout=30,
        message="both worker processes to take part",
    )


def test_workers_killed_in_the_middle_of_batches_lose_nothing_and_count_nothing_twice(small_batches):
    project, _owner, key = project_with_owner(name="Killed")
    small_batches.stop()
    backlog = mixed_backlog("k", leads=120, events=1500, seed=11)
    for start in range(0, len(backlog), 500):
        post("/api/events/batch", {"events": backlog[start : start + 500]}, key)

    # when the workers are SIGKILLed while they are scoring (transactions and batches in flight)
    small_batches.start()
    wait_until(
        lambda: ScoreHistory.objects.filter(project=project).count() >= 150, timeout=120, message="scoring to start"
    )
    for process in small_batches.processes:
        os.killpg(process.pid, signal.SIGKILL)
    for process in small_batches.processes:
        process.wait()
    small_batches.processes = []

    # then what was committed is whole: each processed event has exactly one history row
    processed = Event.objects.filter(project=project, processed_at__isnull=False)
    assert 0 < processed.count() < 1500
    assert ScoreHistory.objects.filter(project=project, reason="rule").count() == processed.count()
    assert not processed.filter(score_history__isnull=True).exists()

    # and the reconciler gets the rest scored after a restart, exactly once
    small_batches.start()
    time.sleep(0.5)
    events_reconcile_task.delay()
    wait_until(all_scored(project), timeout=180, message="the rest of the backlog")
    assert_pure_fold(project)
    assert ScoreHistory.objects.filter(project=project, reason="rule").count() == 1500


def test_leads_merged_while_their_batches_are_scored_stay_exact(small_batches):
    project, _owner, key = project_with_owner(name="Merging")
    known = {"type": "identify", "anonymousId": "crm", "traits": {"email": "ann@corp.io"}, "messageId": "known"}
    post("/v1/batch", {"writeKey": key, "batch": [known]}, key)
    wait_until(all_scored(project), message="the known lead")

    # given a backlog over many devices and the known lead, several devices identifying as her mid-way
    small_batches.stop()
    backlog = mixed_backlog("d", leads=40, events=600, seed=3)
    backlog += [{"eventType": "email_open", "leadId": "crm", "eventId": f"crm-{n}"} for n in range(30)]
    for start in range(0, len(backlog), 400):
        post("/api/events/batch", {"events": backlog[start : start + 400]}, key)
    small_batches.start()
    identify = [
        {"type": "identify", "anonymousId": f"d{n}", "traits": {"email": "ANN@corp.io"}, "messageId": f"who-{n}"}
        for n in range(0, 40, 4)
    ]
    for message in identify:
        post("/v1/batch", {"writeKey": key, "batch": [message]}, key)

    wait_until(all_scored(project), timeout=180, message="scoring and merges to settle")

    # then no event is lost or scored twice, and every survivor is the pure fold of its log
    survivor = Lead.objects.get(project=project, anonymous_id="crm")
    merged = Lead.objects.filter(project=project, merged_into=survivor)
    assert merged.count() == 10
    assert Event.objects.filter(project=project).count() == 1 + 630 + 10
    assert not Event.objects.filter(lead__in=merged).exists()
    assert_pure_fold(project)
