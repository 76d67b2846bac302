"""Re-score jobs split into slices, each run by a task of its own, calling the services directly (no Celery).

tests/scoring/test_rescore_live.py runs the slices on real worker processes, at once, and kills them mid-chunk.
"""

import pytest
from django.utils import timezone

from ingest.models import Lead
from scoring.models import RescoreJob, RescoreSlice, ScoreHistory, ScoringRule
from scoring.services import rescore_job_run, rule_update
from tests.scoring.test_rescore_decay import fresh, scored_lead, stored

pytestmark = pytest.mark.django_db

EVENTS = [  # one lead per entry: scores 10, 30, 35, 50, 15, 5, 20, 0
    ("page_view", "page_view"), ("signup",), ("page_view", "signup"), ("demo_request",),
    ("page_view", "page_view", "page_view"), ("page_view",), ("form_submit",), ("scroll",),
]  # fmt: skip


def project_leads(project) -> list[Lead]:
    return [scored_lead(project, f"l{i}", *names) for i, names in enumerate(EVENTS)]


def history(lead: Lead) -> list[tuple]:
    rows = ScoreHistory.objects.filter(lead=lead).select_related("event").order_by("occurred_at", "id")
    return [(r.reason, r.old_score, r.new_score, r.delta, r.event.event_id if r.event else None) for r in rows]


def run_interleaved(job: RescoreJob, *, chunk: int) -> list[tuple[int, str]]:
    """Run every slice a chunk at a time, taking turns, until all are done: each slice as it finished, and the
    job's status then."""
    running, finished = set(range(job.slice_count)), []
    while running:
        for index in sorted(running):
            if not rescore_job_run(job_id=job.id, slice_index=index, chunk=chunk):
                running.discard(index)
                finished.append((index, RescoreJob.objects.get(id=job.id).status))
    return finished


def change_page_view(project, points: int) -> RescoreJob:
    rule_update(rule=ScoringRule.objects.get(project=project, event_type="page_view"), data={"points": points})
    return RescoreJob.objects.get(project=project, status="pending")


def test_two_slices_leave_exactly_what_one_leaves_and_count_each_lead_once(tenant, other_tenant, settings):
    # given the same leads in two projects
    ours, theirs = project_leads(tenant.project), project_leads(other_tenant.project)
    before = [lead.current_score for lead in ours]

    # when one project's change runs as one slice and the other's as two taking turns, two leads a chunk
    settings.LEADPULSE_RESCORE_SLICES = 1
    single = change_page_view(other_tenant.project, 10)
    assert run_interleaved(single, chunk=2) == [(0, "succeeded")]
    settings.LEADPULSE_RESCORE_SLICES = 2
    job = change_page_view(tenant.project, 10)
    assert job.slice_count == 2 and RescoreSlice.objects.filter(job=job).count() == 2
    finished = run_interleaved(job, chunk=2)

    # then the job succeeded only once its last slice finished
    assert [status for _, status in finished] == ["running", "succeeded"]
    # and the slices split the leads between them (by id), each counted once
    job.refresh_from_db()
    slices = {s.index: s.done for s in RescoreSlice.objects.filter(job=job)}
    assert slices == {k: sum(1 for lead in ours if lead.id % 2 == k) for k in (0, 1)}
    assert 0 < slices[0] < len(ours)
    assert (job.done, job.total, job.changed) == (len(ours), len(ours), 4)  # the leads with page views
    single.refresh_from_db()
    assert (single.done, single.total, single.changed) == (job.done, job.total, job.changed)
    # and every lead, its scores and its whole history, is what one slice left
    now = timezone.now()
    for mine, other, old in zip(ours, theirs, before, strict=True):
        assert stored(mine) == fresh(mine, now=now)
        assert stored(other) == fresh(other, now=now)
        assert {**stored(mine), "fold_state": None} == {**stored(other), "fold_state": None}  # rule ids differ
        assert history(mine) == history(other)
        new = stored(mine)["current_score"]
        rescored = [row for row in history(mine) if row[0] == "rescore"]
        assert rescored == ([("rescore", old, new, new - old, None)] if new != old else [])


def test_a_finished_slice_runs_no_more_while_the_other_goes_on(tenant, settings):
    settings.LEADPULSE_RESCORE_SLICES = 2
    leads = project_leads(tenant.project)
    before = [lead.current_score for lead in leads]
    job = change_page_view(tenant.project, 10)

    # when slice 1 runs to its end, then is run again (a redelivered or resumed task)
    while rescore_job_run(job_id=job.id, slice_index=1, chunk=3):
        pass
    after = RescoreJob.objects.get(id=job.id)
    assert rescore_job_run(job_id=job.id, slice_index=1, chunk=3) is False

    # then it counted its leads once, and the job waits for slice 0, whose leads are untouched
    assert RescoreJob.objects.get(id=job.id).done == after.done == sum(1 for lead in leads if lead.id % 2 == 1)
    assert after.status == "running"
    assert [stored(lead)["current_score"] for lead in leads if lead.id % 2 == 0] == [
        score for lead, score in zip(leads, before, strict=True) if lead.id % 2 == 0
    ]
    while rescore_job_run(job_id=job.id, slice_index=0, chunk=3):
        pass
    assert RescoreJob.objects.get(id=job.id).status == "succeeded"


def test_a_superseded_job_stops_every_slice(tenant, settings):
    settings.LEADPULSE_RESCORE_SLICES = 2
    leads = project_leads(tenant.project)
    first = change_page_view(tenant.project, 10)
    assert rescore_job_run(job_id=first.id, slice_index=0, chunk=1) is True

    second = change_page_view(tenant.project, 1)

    assert rescore_job_run(job_id=first.id, slice_index=0, chunk=1) is False
    assert rescore_job_run(job_id=first.id, slice_index=1, chunk=1) is False
    assert RescoreJob.objects.get(id=first.id).done == 1
    run_interleaved(second, chunk=3)
    second.refresh_from_db()
    assert (second.status, second.done) == ("succeeded", len(leads))
    now = timezone.now()
    for lead in leads:
        assert stored(lead) == fresh(lead, now=now)
