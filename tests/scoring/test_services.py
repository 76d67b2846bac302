"""The scoring service against PostgreSQL, called directly (the live tests go through Celery)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import ScoreHistory, ScoringRule
from scoring.services import events_reconcile, lead_score
from scoring.services.fold import primary_model

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(days=2)


def ingest(project, *events):
    """events: (name, minutes after T0, event id), all for lead "anon"."""
    result = events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=eid, name=name, anonymous_id="anon", timestamp=T0 + timedelta(minutes=m))
            for name, m, eid in events
        ],
    )
    return Lead.objects.get(project=project, anonymous_id="anon"), result


def chain(lead):
    rows = list(ScoreHistory.objects.filter(lead=lead).order_by("occurred_at", "event__event_id"))
    return [(row.event.event_id, row.old_score, row.new_score, row.delta) for row in rows]


def test_default_rules_score_and_stage_a_lead(tenant):
    lead, _ = ingest(tenant.project, ("page_view", 1, "a"), ("signup", 2, "b"), ("demo_request", 3, "c"))

    lead = lead_score(lead_id=lead.id)

    assert lead.current_score == 85 and lead.lead_stage == "qualified"
    assert chain(lead) == [("a", 0, 5, 5), ("b", 5, 35, 30), ("c", 35, 85, 50)]
    assert lead.last_event_at == T0 + timedelta(minutes=3)  # newest event time, not processing time
    assert lead.first_seen_at == T0 + timedelta(minutes=1)
    assert not Event.objects.filter(lead=lead, processed_at__isnull=True).exists()


def test_out_of_order_arrival_scores_like_in_order(tenant):
    # signup (T2) arrives and is scored before the unsubscribe (T1) that preceded it
    lead, _ = ingest(tenant.project, ("signup", 20, "signup"))
    assert lead_score(lead_id=lead.id).current_score == 30
    ingest(tenant.project, ("unsubscribe", 10, "unsub"))

    lead = lead_score(lead_id=lead.id)

    assert lead.current_score == 30  # not 10: the late event made the worker refold
    assert chain(lead) == [("unsub", 0, 0, 0), ("signup", 0, 30, 30)]
    assert lead.fold_state["lastEventId"] == "signup"


def test_late_event_refold_rewrites_history_consistently(tenant):
    lead, _ = ingest(tenant.project, *[("page_view", m, f"pv{m}") for m in (10, 20, 30)])
    lead_score(lead_id=lead.id)
    ingest(tenant.project, ("demo_request", 15, "late"), ("page_view", 40, "new"))

    lead = lead_score(lead_id=lead.id)

    assert chain(lead) == [
        ("pv10", 0, 5, 5),
        ("late", 5, 55, 50),
        ("pv20", 55, 60, 5),
        ("pv30", 60, 65, 5),
        ("new", 65, 70, 5),
    ]
    assert lead.current_score == 70 == ScoreHistory.objects.filter(lead=lead).order_by("-occurred_at").first().new_score


def test_scoring_twice_changes_nothing(tenant):
    lead, _ = ingest(tenant.project, ("signup", 1, "a"))
    lead_score(lead_id=lead.id)
    lead = lead_score(lead_id=lead.id)
    assert lead.current_score == 30 and ScoreHistory.objects.filter(lead=lead).count() == 1


def test_score_never_goes_below_zero_or_above_max(tenant):
    model = primary_model(tenant.project)
    model.max_score = 100
    model.save()
    lead, _ = ingest(tenant.project, ("unsubscribe", 1, "u"), *[("contract_signed", m, f"c{m}") for m in range(2, 5)])
    assert lead_score(lead_id=lead.id).current_score == 100


def test_inactive_rules_and_other_projects_rules_do_not_apply(tenant, other_tenant):
    ScoringRule.objects.filter(project=tenant.project, event_type="signup").update(is_active=False)
    ScoringRule.objects.filter(project=other_tenant.project, event_type="page_view").update(points=1000)
    lead, _ = ingest(tenant.project, ("signup", 1, "s"), ("page_view", 2, "p"))
    assert lead_score(lead_id=lead.id).current_score == 5


def test_velocity_counts_events_in_the_last_24_hours(tenant):
    now = timezone.now()
    events_ingest(
        project_id=tenant.project.id,
        events=[
            CanonicalEvent(event_id=f"v{h}", name="page_view", anonymous_id="anon", timestamp=now - timedelta(hours=h))
            for h in (1, 2, 3, 30)
        ],
    )
    lead = lead_score(lead_id=Lead.objects.get(anonymous_id="anon").id)
    assert lead.events_last_24h == 3 and lead.velocity_score == 3


def test_reconciler_finds_unprocessed_events_past_the_grace_period(
    tenant, settings, django_capture_on_commit_callbacks
):
    from core.pipeline import lead_score_pending_pop

    settings.LEADPULSE_RECONCILE_GRACE_SECONDS = 60
    lead, _ = ingest(tenant.project, ("signup", 1, "a"))
    assert events_reconcile() == 0  # still within the grace period

    Event.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    assert events_reconcile() == 1
    assert events_reconcile() == 1
    assert lead_score_pending_pop(count=10) == [lead.id]  # pending once, however often requested


def test_reconciler_is_registered_with_celery_beat():
    task = PeriodicTask.objects.get(task="scoring.events_reconcile_task")
    assert task.enabled and task.interval.every == 30 and task.interval.period == "seconds"


def test_a_profile_edit_without_events_refits_the_lead(tenant, django_capture_on_commit_callbacks):
    ScoringRule.objects.create(project=tenant.project, model=primary_model(tenant.project), name="Work email",
                               kind="fit", points=15,
                               conditions=[{"path": "email", "op": "ends_with", "value": "@corp.io"}])  # fmt: skip
    lead, _ = ingest(tenant.project, ("signup", 1, "s"))
    lead = lead_score(lead_id=lead.id)
    assert (lead.current_score, lead.fit_score) == (30, 0)

    # when the lead's email is filled in by hand (no event)
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.post("/api/leads", {"anonymousId": "anon", "email": "ann@corp.io"}, format="json")
    assert response.status_code == 200
    lead = lead_score(lead_id=lead.id)

    # then the fit and the score follow, with a history row
    assert (lead.current_score, lead.fit_score, lead.fit_grade) == (45, 15, "B")
    assert ScoreHistory.objects.filter(lead=lead).latest("id").reason == "fit"
    assert ScoreHistory.objects.filter(lead=lead).latest("id").new_score == 45
