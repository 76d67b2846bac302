"""Re-score jobs and materialised decay, calling the services directly (no Celery)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import RescoreJob, RescoreSlice, ScoreHistory, ScoringModel, ScoringRule
from scoring.services import batch as batch_services
from scoring.services import (
    decay_materialise,
    lead_score,
    rescore_job_run,
    rescore_job_start,
    rule_create,
    rule_update,
    scoring_settings_update,
)
from scoring.services.fold import (
    facts,
    lead_fold_locked,
    lead_lock,
    lead_profile,
    lead_refold,
    primary_model,
    project_policy,
    project_rules,
)

pytestmark = pytest.mark.django_db

BASE = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)


def scored_lead(project, anonymous_id, *names, at=BASE, **fields):
    """A lead with one event per name, a minute apart from `at`, scored now."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{anonymous_id}-{i}",
                name=name,
                anonymous_id=anonymous_id,
                timestamp=at + timedelta(minutes=i),
            )
            for i, name in enumerate(names)
        ],
    )
    lead = Lead.objects.get(project=project, anonymous_id=anonymous_id)
    if fields:
        Lead.objects.filter(pk=lead.pk).update(**fields)
    return lead_score(lead_id=lead.id)


def fresh(lead: Lead, *, now) -> dict:
    """What a full fold of the lead's events with the project's current rules gives at `now`."""
    project = lead.project
    project.refresh_from_db()
    policy = project_policy(project)
    engagement_rules, fit_rules = project_rules(project)
    state, _ = engine.fold(
        [fact for _, fact in facts(Event.objects.filter(lead=lead))], rules=engagement_rules, policy=policy
    )
    engagement = policy.decay.apply(state.score, state.last_timestamp, now)
    fit, fit_applied = engine.fit_score(lead_profile(lead), fit_rules)
    total = engine.total_score(engagement, fit, policy)
    return {
        "current_score": total,
        "engagement_score": engagement,
        "fit_score": fit,
        "lead_stage": engine.stage_for(total, policy),
        "fold_state": {**state.to_json(), "fit": [[rule_id, points] for rule_id, points in fit_applied]},
    }


def stored(lead: Lead) -> dict:
    lead.refresh_from_db()
    return {name: getattr(lead, name) for name in ("current_score", "engagement_score", "fit_score", "lead_stage",
                                                    "fold_state")}  # fmt: skip


def history(lead: Lead, reason: str) -> list[tuple[int, int, int]]:
    rows = ScoreHistory.objects.filter(lead=lead, reason=reason).order_by("id")
    return [(row.old_score, row.new_score, row.delta) for row in rows]


def job_state(job_id: int) -> tuple:
    """The job's status, its one slice's cursor, and the job's progress."""
    job = RescoreJob.objects.get(id=job_id)
    return job.status, RescoreSlice.objects.get(job=job).cursor, job.done, job.changed


# --- re-score jobs --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_slice(settings):
    """These tests walk a job chunk by chunk in lead id order: a job of one slice (tests/scoring/test_rescore_slices.py
    runs several)."""
    settings.LEADPULSE_RESCORE_SLICES = 1


@pytest.fixture
def leads(tenant):
    """Five leads in id order, scored with the default rules (page_view +5)."""
    project = tenant.project
    made = [
        scored_lead(project, "l1", "page_view", "page_view"),  # 10 cold
        scored_lead(project, "l2", "signup"),  # 30 warm
        scored_lead(project, "l3", "page_view", "signup"),  # 35 hot
        scored_lead(project, "l4", "demo_request"),  # 50 hot
        scored_lead(project, "l5", "page_view", "page_view", "page_view"),  # 15 warm
    ]
    assert [lead.id for lead in made] == sorted(lead.id for lead in made)
    assert [lead.current_score for lead in made] == [10, 30, 35, 50, 15]
    return made


def page_view_rule(project) -> ScoringRule:
    return ScoringRule.objects.get(project=project, event_type="page_view")


def test_a_rule_change_is_applied_in_chunks_until_the_job_succeeds(tenant, leads):
    # given page views now worth 10
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)
    assert (job.status, job.total, job.done, job.slice_count) == ("pending", 5, 0, 1)
    ids = [lead.id for lead in leads]

    # when the job runs two leads at a time, then progress is saved after each chunk
    assert rescore_job_run(job_id=job.id, chunk=2) is True
    assert job_state(job.id) == ("running", ids[1], 2, 1)
    assert RescoreJob.objects.get(id=job.id).started_at is not None
    assert stored(leads[2])["current_score"] == 35  # not reached yet

    assert rescore_job_run(job_id=job.id, chunk=2) is True
    assert job_state(job.id) == ("running", ids[3], 4, 2)
    assert rescore_job_run(job_id=job.id, chunk=2) is True
    assert job_state(job.id) == ("running", ids[4], 5, 3)
    assert rescore_job_run(job_id=job.id, chunk=2) is False
    assert job_state(job.id) == ("succeeded", ids[4], 5, 3)
    assert RescoreJob.objects.get(id=job.id).finished_at is not None
    assert rescore_job_run(job_id=job.id, chunk=2) is False  # a finished job does nothing

    # then every lead is what a fresh fold with the new rules gives
    now = timezone.now()
    assert [stored(lead)["current_score"] for lead in leads] == [20, 30, 40, 50, 30]
    assert [stored(lead)["lead_stage"] for lead in leads] == ["warm", "warm", "hot", "hot", "warm"]
    for lead in leads:
        assert stored(lead) == fresh(lead, now=now)
    # and only leads whose score changed got a rescore row
    assert [history(lead, "rescore") for lead in leads] == [[(10, 20, 10)], [], [(35, 40, 5)], [], [(15, 30, 15)]]
    # and the per-event history was rewritten with the new points
    assert history(leads[0], "rule") == [(0, 10, 10), (10, 20, 10)]


def test_rescore_never_touches_merged_leads_or_other_projects(tenant, other_tenant, leads):
    theirs = scored_lead(other_tenant.project, "l1", "page_view")
    Lead.objects.filter(pk=leads[1].pk).update(merged_into=leads[0])
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)
    assert job.total == 4

    while rescore_job_run(job_id=job.id, chunk=10):
        pass

    assert job_state(job.id)[0::2] == ("succeeded", 4)
    assert stored(theirs)["current_score"] == 5
    assert not ScoreHistory.objects.filter(lead=leads[1], reason="rescore").exists()


def test_a_superseded_job_stops_before_its_next_chunk(tenant, leads):
    rule = page_view_rule(tenant.project)
    rule_update(rule=rule, data={"points": 10})
    first = RescoreJob.objects.get(project=tenant.project)
    assert rescore_job_run(job_id=first.id, chunk=2) is True

    # when the rule changes again, the new job supersedes the first one
    rule_update(rule=rule, data={"points": 1})
    second = RescoreJob.objects.get(project=tenant.project, status="pending")
    assert job_state(first.id)[0] == "superseded"

    # then the first job does no more work
    assert rescore_job_run(job_id=first.id, chunk=2) is False
    assert job_state(first.id) == ("superseded", leads[1].id, 2, 1)
    assert stored(leads[2])["current_score"] == 35

    # and the second one brings every lead to the latest rules
    while rescore_job_run(job_id=second.id, chunk=2):
        pass
    assert [stored(lead)["current_score"] for lead in leads] == [2, 30, 31, 50, 3]


def test_a_superseded_job_stops_where_it_was(tenant, leads):
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)
    ids = [lead.id for lead in leads]
    assert rescore_job_run(job_id=job.id, chunk=2) is True

    # when another change supersedes it between two chunks
    rescore_job_start(project=tenant.project, reason="another change")

    # then the old job does nothing more and keeps its progress; the new one is pending
    assert rescore_job_run(job_id=job.id, chunk=2) is False
    assert job_state(job.id) == ("superseded", ids[1], 2, 1)
    assert RescoreJob.objects.filter(project=tenant.project, status="pending").count() == 1


def crash_on(lead_id):
    """lead_refold, except that the worker dies on `lead_id` (after refolding the chunk's leads before it)."""

    def refold(**kwargs):
        if kwargs["lead"].id == lead_id:
            raise RuntimeError("worker lost")
        return lead_refold(**kwargs)

    return refold


def run_with_a_crash(job_id, crash_lead_id, monkeypatch):
    """One chunk, then a chunk that dies on `crash_lead_id`, then a new worker until the job is done."""
    assert rescore_job_run(job_id=job_id, chunk=2) is True
    monkeypatch.setattr(batch_services, "lead_refold", crash_on(crash_lead_id))
    with pytest.raises(RuntimeError):
        rescore_job_run(job_id=job_id, chunk=2)
    monkeypatch.undo()
    while rescore_job_run(job_id=job_id, chunk=2):
        pass


def test_a_job_resumes_from_its_cursor_after_a_crash(tenant, leads, monkeypatch):
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)
    assert rescore_job_run(job_id=job.id, chunk=2) is True
    scored_at = {lead.id: Lead.objects.get(pk=lead.pk).last_scored_at for lead in leads}

    # given a worker that dies after refolding the first lead of the next chunk
    unchanged = [stored(lead) for lead in leads[2:4]]
    monkeypatch.setattr(batch_services, "lead_refold", crash_on(leads[3].id))
    with pytest.raises(RuntimeError):
        rescore_job_run(job_id=job.id, chunk=2)
    # progress is saved with each chunk, in its transaction: nothing of the chunk that died counts
    assert job_state(job.id)[:3] == ("running", leads[1].id, 2)
    assert [stored(lead) for lead in leads[2:4]] == unchanged
    assert stored(leads[3])["current_score"] == 50

    # when a new worker picks the job up again
    monkeypatch.undo()
    while rescore_job_run(job_id=job.id, chunk=2):
        pass

    # then it continued after the cursor: leads of the saved chunk were not refolded again
    for lead in leads[:2]:
        assert Lead.objects.get(pk=lead.pk).last_scored_at == scored_at[lead.id]
    assert job_state(job.id)[:3] == ("succeeded", leads[4].id, 5)
    now = timezone.now()
    for lead in leads:
        assert stored(lead) == fresh(lead, now=now)


def test_a_crash_and_resume_leaves_the_same_history_and_counts_as_no_crash(tenant, leads, monkeypatch):
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)

    run_with_a_crash(job.id, leads[3].id, monkeypatch)  # l3 is refolded, l4 crashes, both are redone

    assert [history(lead, "rescore") for lead in leads] == [[(10, 20, 10)], [], [(35, 40, 5)], [], [(15, 30, 15)]]
    assert job_state(job.id) == ("succeeded", leads[4].id, 5, 3)


def test_a_new_rule_with_conditions_and_caps_is_applied_retroactively(tenant):
    project = tenant.project
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"p{i}",
                name="page_view",
                anonymous_id="anon",
                timestamp=BASE + timedelta(hours=hours),
                properties={"url": url},
            )
            for i, (hours, url) in enumerate([(0, "/pricing"), (1, "/pricing"), (2, "/blog"), (25, "/pricing")])
        ],
    )
    lead = lead_score(lead_id=Lead.objects.get(project=project, anonymous_id="anon").id)
    assert lead.current_score == 20

    rule = rule_create(
        project=project,
        data={
            "name": "Pricing",
            "event_type": "page_view",
            "points": 15,
            "conditions": [{"path": "properties.url", "op": "contains", "value": "/pricing"}],
            "max_per_day": 1,
        },
    )
    job = RescoreJob.objects.get(project=project)
    while rescore_job_run(job_id=job.id):
        pass

    # two pricing days: +15 twice
    assert stored(lead)["current_score"] == 50
    assert stored(lead)["fold_state"]["rules"][str(rule.id)][:2] == [2, 30]
    assert history(lead, "rescore") == [(20, 50, 30)]


def test_the_preview_predicts_what_the_rescore_does(tenant, leads):
    # given a proposed rule set: page views 8, pricing once a day, signups 40, VPs +20
    extra = scored_lead(tenant.project, "vp", "page_view", traits={"title": "VP Sales"})
    proposed = [
        {"eventType": "page_view", "points": 8},
        {"eventType": "signup", "points": 40, "maxPerLead": 1},
        {"eventType": "demo_request", "points": 50},
        {"kind": "fit", "points": 20, "conditions": [{"path": "traits.title", "op": "contains", "value": "vp"}]},
    ]
    preview = tenant.client.post("/api/rules/preview", {"rules": proposed}, format="json").json()

    # when exactly those rules are saved and the last job runs
    for rule in ScoringRule.objects.filter(project=tenant.project):
        assert tenant.client.delete(f"/api/rules/{rule.id}").status_code == 204
    for rule in proposed:
        assert tenant.client.post("/api/rules", rule, format="json").status_code == 201
    job = RescoreJob.objects.get(project=tenant.project, status="pending")
    while rescore_job_run(job_id=job.id, chunk=2):
        pass

    # then every lead lands where the preview said
    predicted = {mover["leadId"]: (mover["to"], mover["toStage"]) for mover in preview["topMovers"]}
    for lead in [*leads, extra]:
        after = stored(lead)
        assert (after["current_score"], after["lead_stage"]) == predicted.get(
            lead.id, (lead.current_score, lead.lead_stage)
        )
    assert preview["scoreChanged"] == len(predicted) == 5
    assert job_state(job.id)[3] == 5


def test_progress_never_exceeds_one(tenant, leads):
    rule_update(rule=page_view_rule(tenant.project), data={"points": 10})
    job = RescoreJob.objects.get(project=tenant.project)
    scored_lead(tenant.project, "late-1", "page_view")
    scored_lead(tenant.project, "late-2", "page_view")

    rescore_job_run(job_id=job.id, chunk=7)

    body = tenant.client.get(f"/api/rescore-jobs/{job.id}").json()
    assert body["status"] == "running"
    assert body["done"] <= body["total"] and body["progress"] <= 1


def test_threshold_changes_restage_leads_through_the_job(tenant, leads):
    scoring_settings_update(model=primary_model(tenant.project), data={"hot_threshold": 45, "qualified_threshold": 50})
    job = RescoreJob.objects.get(project=tenant.project)

    while rescore_job_run(job_id=job.id, chunk=2):
        pass

    assert [stored(lead)["lead_stage"] for lead in leads] == ["cold", "warm", "warm", "qualified", "warm"]
    assert job_state(job.id)[0::3] == ("succeeded", 2)  # l3 and l4 moved stage
    assert not ScoreHistory.objects.filter(reason="rescore").exists()  # no score changed


def test_turning_decay_off_restores_decayed_scores_through_the_job(tenant):
    lead = scored_lead(tenant.project, "idle", "signup", at=timezone.now() - timedelta(days=10, hours=1))
    assert lead.current_score == 26  # 30 * 0.95 ** 3

    scoring_settings_update(model=primary_model(tenant.project), data={"decay_enabled": False})
    job = RescoreJob.objects.get(project=tenant.project)
    while rescore_job_run(job_id=job.id):
        pass

    assert stored(lead)["current_score"] == 30
    assert history(lead, "rescore") == [(26, 30, 4)]


# --- decay ----------------------------------------------------------------------------------------------------


@pytest.fixture
def active_lead(tenant):
    """65 points (qualified), last event an hour ago."""
    lead = scored_lead(
        tenant.project, "active", "demo_request", "pricing_page_visit", at=timezone.now() - timedelta(hours=1)
    )
    assert (lead.current_score, lead.lead_stage) == (65, "qualified")
    return lead


def test_decay_materialise_writes_one_decay_row_and_is_idempotent(tenant, active_lead):
    lead = active_lead
    ten_days_later = lead.last_event_at + timedelta(days=10)

    # when decay is materialised after 10 idle days (3 past the grace period)
    assert decay_materialise(now=ten_days_later) == 1

    # then the score and stage drop: 65 * 0.95 ** 3 = 55.7
    after = stored(lead)
    assert (after["current_score"], after["engagement_score"], after["lead_stage"]) == (56, 56, "hot")
    rows = list(ScoreHistory.objects.filter(lead=lead, reason="decay"))
    assert [(row.old_score, row.new_score, row.delta, row.occurred_at, row.event_id) for row in rows] == [
        (65, 56, -9, ten_days_later, None)
    ]
    # and the materialised value is what a fold computes lazily at that moment
    assert after == {**fresh(lead, now=ten_days_later), "fold_state": after["fold_state"]}
    assert after["fold_state"] == fresh(lead, now=ten_days_later)["fold_state"]

    # when it runs again at the same moment, or later the same idle day, nothing changes
    assert decay_materialise(now=ten_days_later) == 0
    assert decay_materialise(now=ten_days_later + timedelta(hours=5)) == 0
    assert stored(lead) == after
    assert ScoreHistory.objects.filter(lead=lead, reason="decay").count() == 1

    # the next day decays once more, from the fold state (not compounding on the decayed value twice)
    assert decay_materialise(now=ten_days_later + timedelta(days=1)) == 1
    assert stored(lead)["current_score"] == 53  # 65 * 0.95 ** 4 = 52.9
    assert history(lead, "decay") == [(65, 56, -9), (56, 53, -3)]


def test_materialised_decay_equals_a_lazy_refold(tenant, active_lead):
    lead = active_lead
    then = lead.last_event_at + timedelta(days=12, hours=3)
    decay_materialise(now=then)
    materialised = stored(lead)

    with transaction.atomic():
        locked = lead_lock(lead_id=lead.id)
        changed = lead_fold_locked(lead=locked, now=then, refold=True)

    assert changed is False
    assert stored(lead) == materialised
    assert materialised["current_score"] == 50  # 65 * 0.95 ** 5 = 50.3


def test_decay_keeps_fit_points(tenant):
    ScoringRule.objects.create(
        project=tenant.project,
        model=primary_model(tenant.project),
        kind="fit",
        name="VP",
        points=20,
        conditions=[{"path": "traits.title", "op": "contains", "value": "VP"}],
    )
    lead = scored_lead(tenant.project, "vp", "signup", at=timezone.now() - timedelta(hours=1), traits={"title": "VP"})
    assert (lead.current_score, lead.engagement_score, lead.fit_score) == (50, 30, 20)
    then = lead.last_event_at + timedelta(days=10)

    assert decay_materialise(now=then) == 1

    after = stored(lead)
    assert (after["current_score"], after["engagement_score"], after["fit_score"]) == (46, 26, 20)
    assert after == {**fresh(lead, now=then), "fold_state": after["fold_state"]}


def test_leads_within_the_grace_period_are_not_decayed(tenant, active_lead):
    before = stored(active_lead)
    assert decay_materialise(now=active_lead.last_event_at + timedelta(days=7, hours=23)) == 0
    assert stored(active_lead) == before
    assert not ScoreHistory.objects.filter(reason="decay").exists()


def test_leads_of_a_project_with_decay_disabled_are_untouched(tenant, other_tenant):
    ScoringModel.objects.filter(project=other_tenant.project).update(decay_enabled=False)
    now = timezone.now()
    off = scored_lead(other_tenant.project, "off", "demo_request", at=now - timedelta(hours=1))
    on = scored_lead(tenant.project, "on", "demo_request", at=now - timedelta(hours=1))
    before = stored(off)

    assert decay_materialise(now=now + timedelta(days=20)) == 1

    assert stored(off) == before
    assert not ScoreHistory.objects.filter(lead=off, reason="decay").exists()
    assert stored(on)["current_score"] == 26  # 50 * 0.95 ** 13 = 25.7


def test_decay_follows_the_projects_rate_and_grace(tenant):
    scoring_settings_update(
        model=primary_model(tenant.project), data={"decay_rate_percent": 10.0, "decay_grace_days": 2}
    )
    lead = scored_lead(tenant.project, "fast", "contract_signed", at=timezone.now() - timedelta(hours=1))

    assert decay_materialise(now=lead.last_event_at + timedelta(days=2, hours=23)) == 0
    assert decay_materialise(now=lead.last_event_at + timedelta(days=4)) == 1

    assert stored(lead)["current_score"] == 81  # 100 * 0.9 ** 2


def test_velocity_of_leads_quiet_for_a_day_is_zeroed_by_the_hourly_task(tenant):
    from datetime import timedelta as td

    lead = Lead.objects.create(project=tenant.project, anonymous_id="quiet", events_last_24h=30, velocity_score=10,
                               last_event_at=timezone.now() - td(hours=30))  # fmt: skip
    decay_materialise()
    lead.refresh_from_db()
    assert (lead.events_last_24h, lead.velocity_score) == (0, 0)
