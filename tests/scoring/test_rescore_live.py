"""Re-scoring and decay with real worker processes: resumable, never blocking ingest."""

import json
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from ingest.models import Event, Lead
from scoring import engine
from scoring.models import RescoreJob, RescoreSlice, ScoreHistory, ScoringRule
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


def pg_params() -> dict:
    """A connection of its own to the test database."""
    db = django_settings.DATABASES["default"]
    return {key.lower(): db[key] for key in ("HOST", "PORT", "USER", "PASSWORD")} | {"dbname": db["NAME"]}


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
    workers.kill()
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


def history_of(project):
    """Every lead's history by anonymous id: (reason, old, new, delta, event id) in order."""
    rows = ScoreHistory.objects.filter(project=project).select_related("lead", "event").order_by("occurred_at", "id")
    by_lead: dict[str, list[tuple]] = {}
    for r in rows:
        by_lead.setdefault(r.lead.anonymous_id, []).append(
            (r.reason, r.old_score, r.new_score, r.delta, r.event.event_id if r.event else None)
        )
    return by_lead


def scores_of(project):
    fields = ("anonymous_id", "current_score", "engagement_score", "fit_score", "lead_stage")
    return {row[0]: row[1:] for row in Lead.objects.filter(project=project).values_list(*fields)}


def lock_waiters() -> list[str]:
    """The statements of the test database's sessions waiting for a lock right now (their first two words)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return sorted(" ".join(query.split()[:2]) for (query,) in cursor.fetchall())


def test_two_slices_run_at_once_survive_a_kill_mid_chunk_and_leave_what_one_slice_leaves(live_pipeline, settings):
    workers = live_pipeline
    # given the same 60 leads in two projects, scored
    start = timezone.now() - timedelta(days=3)
    events = [
        {"eventType": "email_open" if i % 3 == 0 else "page_view", "leadId": f"l{i % 60}", "eventId": f"e-{i}",
         "timestamp": (start + timedelta(minutes=i)).isoformat()}
        for i in range(360)
    ]  # fmt: skip
    sliced, owner, key = project_with_owner(name="Two slices")
    single, single_owner, single_key = project_with_owner(name="One slice")
    ingest(key, events)
    ingest(single_key, events)
    wait_until(lambda: all_scored(sliced)() and all_scored(single)(), timeout=60, message="the backlogs")
    before = scores_of(sliced)
    assert before == scores_of(single)

    # and the page_view rule changed in one project, re-scored as one slice
    settings.LEADPULSE_RESCORE_SLICES = 1
    rule = ScoringRule.objects.get(project=single, event_type="page_view")
    assert client_for(single_owner).patch(f"/api/rules/{rule.id}", {"points": 7}, format="json").status_code == 200
    reference = RescoreJob.objects.get(project=single)
    wait_until(lambda: RescoreJob.objects.get(pk=reference.pk).status == "succeeded", timeout=60, message="one slice")

    # when the same change in the other project is re-scored as two slices, 30 leads each, 10 a chunk
    workers.kill()
    settings.LEADPULSE_RESCORE_SLICES = 2
    rule = ScoringRule.objects.get(project=sliced, event_type="page_view")
    assert client_for(owner).patch(f"/api/rules/{rule.id}", {"points": 7}, format="json").status_code == 200
    job = RescoreJob.objects.get(project=sliced)
    # with the slices' rows held here, each chunk stops at its very end: refolded and written, not yet committed
    with psycopg.connect(**pg_params()) as held:  # closed (rolled back) whatever happens
        held.execute("SELECT id FROM scoring_rescoreslice WHERE job_id = %s FOR UPDATE", [job.id])
        workers.start()

        # then both slices are inside a chunk at once (one waits on its slice row, the other on the job row
        # the first one has just counted its chunk in): slices run one after the other would be one waiter
        counting = ['UPDATE "scoring_rescorejob"', 'UPDATE "scoring_rescoreslice"']
        wait_until(lambda: lock_waiters() == counting, timeout=30, message="both slices to be inside a chunk")
        # and a worker killed there leaves nothing behind: no progress, no lead refolded
        workers.kill()
        held.rollback()  # the killed workers' transactions end without a commit
    wait_until(lambda: not lock_waiters(), timeout=30, message="the killed sessions to end")
    job.refresh_from_db()
    assert (job.status, job.done, job.changed) == ("running", 0, 0)
    assert list(RescoreSlice.objects.filter(job=job).values_list("cursor", "done")) == [(0, 0), (0, 0)]
    assert scores_of(sliced) == before

    # when new workers start and the reconciler resumes the stalled slices
    workers.start()
    wait_until(
        lambda: not RescoreSlice.objects.filter(job=job, updated_at__gt=timezone.now() - timedelta(seconds=3)).exists(),
        timeout=30,
        message="the slices to go stale",
    )
    events_reconcile_task.delay()
    wait_until(lambda: RescoreJob.objects.get(pk=job.pk).status == "succeeded", timeout=60, message="two slices")

    # then the counts are exact and every lead, score and history, is what one slice left
    job.refresh_from_db()
    reference.refresh_from_db()
    # (the 20 leads whose events are all email opens keep their scores)
    assert (job.done, job.total, job.changed) == (reference.done, reference.total, reference.changed) == (60, 60, 40)
    assert sorted(RescoreSlice.objects.filter(job=job).values_list("index", "done")) == [(0, 30), (1, 30)]
    assert scores_of(sliced) == scores_of(single) != before
    assert history_of(sliced) == history_of(single)
    for lead in Lead.objects.filter(project=sliced):
        assert lead.current_score == fresh_fold(lead)
        assert ScoreHistory.objects.filter(lead=lead).latest("id").new_score == lead.current_score
