"""Re-scoring and decay with real worker processes: resumable, never blocking ingest."""

import json
import os
import signal
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from ingest.models import Event, Lead
from scoring import engine
from scoring.models import RescoreJob, ScoreHistory, ScoringRule
from scoring.services.fold import facts, project_policy, project_rules
from scoring.tasks import decay_materialise_task, events_reconcile_task
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import wait_until

pytestmark = pytest.mark.live


def ingest(key, events):
    try:
        response = Client().post(
            "/api/events/batch", json.dumps({"events": events}), content_type="application/json", HTTP_X_API_KEY=key
        )
        assert response.status_code == 202, response.content
        return response
    finally:
        connection.close()


def all_scored(project):
    return lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists()


def fresh_fold(lead):
    """The score a full fold with the project's current rules gives right now."""
    policy = project_policy(lead.project)
    engagement, fit = project_rules(lead.project)
    state, _ = engine.fold([f for _, f in facts(Event.objects.filter(lead=lead))], rules=engagement, policy=policy)
    decayed = policy.decay.apply(state.score, state.last_timestamp, timezone.now())
    return engine.total_score(decayed, engine.fit_score({}, fit)[0], policy)


def test_a_rule_change_rescores_every_lead_resumes_after_a_crash_and_never_blocks_ingest(live_pipeline):
    workers = live_pipeline
    project, owner, key = project_with_owner(name="Rescore")
    ingest(key, [{"eventType": "page_view", "leadId": f"l{i % 80}", "eventId": f"pv-{i}"} for i in range(400)])
    wait_until(all_scored(project), timeout=60, message="the backlog")
    assert set(Lead.objects.filter(project=project).values_list("current_score", flat=True)) == {25}

    # when: an admin changes the page_view rule (the job refolds 80 leads, 10 per task)
    rule = ScoringRule.objects.get(project=project, event_type="page_view")
    response = client_for(owner).patch(f"/api/rules/{rule.id}", {"points": 7}, format="json")
    assert response.status_code == 200
    job = RescoreJob.objects.get(project=project)
    wait_until(lambda: RescoreJob.objects.get(pk=job.pk).done > 0, timeout=30, message="the job to start")

    # the worker processes die mid-job (no warm shutdown)
    for process in workers.processes:
        os.killpg(process.pid, signal.SIGKILL)
    for process in workers.processes:
        process.wait()
    workers.processes = []
    # ingest keeps working with no worker at all
    ingest(key, [{"eventType": "signup", "leadId": "l0", "eventId": "during-rescore"}])
    workers.start()
    # celery-beat's reconciler resumes the stalled job (stale after 2 s in tests)
    wait_until(
        lambda: timezone.now() - RescoreJob.objects.get(pk=job.pk).updated_at > timedelta(seconds=3),
        timeout=30,
        message="the job to go stale",
    )
    events_reconcile_task.delay()

    wait_until(lambda: RescoreJob.objects.get(pk=job.pk).status == "succeeded", timeout=90, message="the job")
    wait_until(all_scored(project), timeout=30, message="the event sent during the job")
    job.refresh_from_db()
    assert (job.done, job.total) == (80, 80)
    for lead in Lead.objects.filter(project=project):
        assert lead.current_score == fresh_fold(lead) == (35 + 30 if lead.anonymous_id == "l0" else 35)
        assert ScoreHistory.objects.filter(lead=lead).latest("id").new_score == lead.current_score
    progress = client_for(owner).get(f"/api/rescore-jobs/{job.id}").json()
    assert progress["status"] == "succeeded" and progress["progress"] == 1.0


def test_decay_is_applied_when_old_events_arrive_and_the_beat_task_then_changes_nothing(live_pipeline):
    project, _owner, key = project_with_owner(name="Decay")
    ten_days_ago = (timezone.now() - timedelta(days=10)).isoformat()
    ingest(key, [{"eventType": "demo_request", "leadId": "idle", "eventId": "old", "timestamp": ten_days_ago}])
    wait_until(all_scored(project), message="the old event")

    lead = Lead.objects.get(project=project)
    # 10 idle days, 7 of grace: 3 days at 5 %: 50 * 0.95**3 = 42.87 -> 43
    assert (lead.current_score, lead.lead_stage, lead.engagement_score) == (43, "hot", 43)
    assert ScoreHistory.objects.filter(lead=lead, reason="decay").count() == 1

    decay_materialise_task.delay()
    decay_materialise_task.delay()
    live_pipeline.wait_idle()
    lead.refresh_from_db()
    assert lead.current_score == 43
    assert ScoreHistory.objects.filter(lead=lead, reason="decay").count() == 1
