"""Manual adjustments on the production path: HTTP → PostgreSQL → the in-request fold or a Celery worker.

Real worker processes (the session's `workers`) fold what the request could not: nothing is eager and
nothing of ours is mocked.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from ingest.models import Event, Lead
from scoring import engine
from scoring.models import ScoreHistory
from scoring.services.fold import facts, lead_profile, project_models
from tests.conftest import client_for
from tests.live import wait_until
from tests.scoring.test_pipeline_live import all_scored, send

pytestmark = pytest.mark.live


@pytest.fixture
def live_owner(live_pipeline):
    from tests.accounts.factories import project_with_owner

    project, owner, write_key = project_with_owner(name="Live adjustments")
    return project, owner, write_key


def adjust(client: APIClient, lead_id: int, body: dict):
    try:
        return client.post(f"/api/leads/{lead_id}/adjustments", body, format="json")
    finally:
        connection.close()


def assert_is_the_pure_fold(lead: Lead) -> None:
    """Invariant 3 with adjustments in the log: the stored score is one fold of the whole log, history chained."""
    models = project_models(lead.project)
    evaluation = engine.models_evaluate(
        models=models, leads={}, events=[fact for _, fact in facts(Event.objects.filter(lead=lead))],
        profile=lead_profile(lead), now=timezone.now(), refold=True,
    )[models[0].id]  # fmt: skip
    assert (lead.current_score, lead.lead_stage) == (evaluation.score, evaluation.stage)
    rows = list(ScoreHistory.objects.filter(lead=lead, reason="rule").order_by("occurred_at", "event__event_id"))
    assert len(rows) == Event.objects.filter(lead=lead).count()
    assert rows[-1].new_score == lead.current_score


def test_adjustments_racing_events_across_workers_end_in_the_fold_of_the_log(live_owner):
    project, owner, key = live_owner
    send("/api/events", {"eventType": "demo_request", "leadId": "racer", "eventId": "first"}, key=key)
    wait_until(all_scored(project), message="the first event")
    lead_id = Lead.objects.get(project=project, anonymous_id="racer").id
    client = client_for(owner)
    bodies = [{"eventType": "page_view", "leadId": "racer", "eventId": f"pv-{i:02d}"} for i in range(30)]
    changes = [{"points": -3, "reason": f"r{i}"} for i in range(6)] + [{"points": 4, "reason": "up"}]

    # when events and adjustments arrive together, the workers folding the events as the requests fold theirs
    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = [pool.submit(send, "/api/events", body, key=key) for body in bodies]
        made = [pool.submit(adjust, client, lead_id, body) for body in changes]
        assert [future.result().status_code for future in sent] == [202] * 30
        assert [future.result().status_code for future in made] == [201] * 7

    # then every adjustment is folded exactly once and the lead is the fold of its whole log
    wait_until(all_scored(project), timeout=120, message="everything to be scored")
    lead = Lead.objects.get(pk=lead_id)
    assert lead.current_score == 50 + 30 * 5 - 6 * 3 + 4
    assert Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).count() == 7
    assert lead.events_last_24h == 31  # the adjustments are not activity
    assert_is_the_pure_fold(lead)


def test_a_lead_a_worker_holds_is_adjusted_now_and_folded_by_a_worker_moments_later(live_owner):
    project, owner, key = live_owner
    send("/api/events", {"eventType": "signup", "leadId": "held", "eventId": "s1"}, key=key)
    wait_until(all_scored(project), message="the signup")
    lead_id = Lead.objects.get(project=project, anonymous_id="held").id
    locked, release = threading.Event(), threading.Event()

    def hold():
        """Another worker's fold of this lead: its row lock, held until released."""
        try:
            with transaction.atomic():
                Lead.objects.select_for_update(no_key=True).get(pk=lead_id)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(hold)
        assert locked.wait(10)
        # when the adjustment arrives while the lead is held
        response = adjust(client_for(owner), lead_id, {"points": -10, "reason": "held"})
        # then it is stored and answered at once, not folded yet (no waiting on the lock)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["adjustment"]["scored"] is False and body["score"] == 30
        release.set()
        holder.result()
    # and a worker folds it once the lead is free
    wait_until(all_scored(project), timeout=60, message="a worker to fold the adjustment")
    lead = Lead.objects.get(pk=lead_id)
    assert lead.current_score == 20
    listed = APIClient()
    listed.force_authenticate(owner)
    assert listed.get(f"/api/leads/{lead_id}/adjustments").json()["results"][0]["newScore"] == 20
    assert_is_the_pure_fold(lead)
