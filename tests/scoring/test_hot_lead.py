"""A hot lead: 100,000 events scored, refolded after a late event and re-scored, with bounded memory,
without holding the other leads of its batch.

One story over the lead's life, against PostgreSQL with real commits (another connection watches):
its backlog is scored a chunk at a time from its checkpoint, a late event makes the whole log fold
again (streamed a page at a time, in a transaction of its own), and a rule change re-scores it. After
each step the lead is exactly the pure fold of its log. The process's peak resident memory is measured over
each step (the kernel's high-water mark, reset before the step): holding the whole log (its facts, history rows
and model instances) takes several hundred MB; one chunk of LEADPULSE_SCORE_CHUNK_EVENTS (5,000) a few tens.
Every step is measured, the first too: memory a step frees stays with the process and could hide the next
step's, but never more than the earlier steps held, each of which was bounded.
"""

import gc
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import RescoreJob, ScoreHistory, ScoringModel, ScoringRule
from scoring.selectors import lead_history_for_project, lead_score_history
from scoring.services import batch as batch_services
from scoring.services import leads_score, rescore_job_run, rule_update
from scoring.services.fold import facts, lead_profile, project_policy, project_rules
from scoring.services.models import scoring_model_create
from tests.accounts.factories import project_with_owner

pytestmark = pytest.mark.django_db(transaction=True)

HOT_EVENTS = 100_000
MEMORY_LIMIT_MB = 40  # whole log at once: 90 to 130 MB resident (a chunk above its size); one chunk: a few
START = (timezone.now() - timedelta(days=3)).replace(microsecond=0)


def hot_backlog(lead: Lead) -> None:
    """HOT_EVENTS unscored events of the lead, a second apart from START, stored in one statement."""
    sql = """
        INSERT INTO ingest_event (project_id, lead_id, event_id, type, name, anonymous_id, user_id, session_id,
                                  properties, context, timestamp, received_at)
        SELECT %s, %s, 'hot-' || n, 'track', (ARRAY['page_view', 'email_open', 'scroll'])[1 + n %% 3], %s, '', '',
               CASE WHEN n %% 10 = 0 THEN '{"url": "/pricing"}' ELSE '{}' END::jsonb, '{}'::jsonb,
               %s::timestamptz + n * interval '1 second', now()
        FROM generate_series(1, %s) AS n
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [lead.project_id, lead.id, lead.anonymous_id, START, HOT_EVENTS])


def resident_kb(field: str) -> int:
    """The process's resident memory (`VmRSS`) or its high-water mark (`VmHWM`), in kB."""
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE).group(1))


@contextmanager
def measured(peaks: list[float]) -> Iterator[None]:
    """Append the block's peak resident memory, in MB above the process's resident memory before it."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets the high-water mark to the resident memory now (Linux)
    base = resident_kb("VmRSS")
    try:
        yield
    finally:
        peaks.append((resident_kb("VmHWM") - base) / 2**10)


def score_until_done(lead_ids: list[int]) -> None:
    result = leads_score(lead_ids=lead_ids)
    assert not result.busy
    while result.more:
        result = leads_score(lead_ids=sorted(result.more))


def assert_pure_fold(lead: Lead, *, events: int) -> None:
    """The lead's scores and checkpoint are a fold of its whole log; one rule row per event, chained."""
    lead.refresh_from_db()
    engagement_rules, fit_rules = project_rules(lead.project)
    policy = project_policy(lead.project)
    state, _ = engine.fold([fact for _, fact in facts(Event.objects.filter(lead=lead))], rules=engagement_rules,
                           policy=policy)  # fmt: skip
    fit, _ = engine.fit_score(lead_profile(lead), fit_rules)
    engagement = policy.decay.apply(state.score, state.last_timestamp, timezone.now())
    assert (lead.engagement_score, lead.current_score) == (engagement, engine.total_score(engagement, fit, policy))
    assert engine.FoldState.from_json(lead.fold_state) == state
    assert not Event.objects.filter(lead=lead, processed_at__isnull=True).exists()
    assert ScoreHistory.objects.filter(lead=lead, reason="rule").count() == events
    chain = list(
        ScoreHistory.objects.filter(lead=lead, reason__in=["rule", "decay", "fit"])
        .order_by("id")
        .values_list("old_score", "new_score")
    )
    assert chain[0][0] == 0
    assert all(old == previous for (_, previous), (old, _) in itertools.pairwise(chain))
    assert chain[-1][1] == lead.current_score


def committed_scores(lead_ids: list[int]) -> dict[int, int]:
    """The leads' scores as another connection sees them (what is committed)."""
    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as other:
        rows = other.execute("SELECT id, current_score FROM ingest_lead WHERE id = ANY(%s)", [lead_ids])
        return dict(rows.fetchall())


@pytest.mark.timeout(900)  # 100,000 events folded several times over: minutes on a busy machine
def test_a_hot_lead_is_scored_refolded_and_rescored_a_chunk_at_a_time(monkeypatch):
    project = project_with_owner()[0]
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=f"{name}-0", name="signup", anonymous_id=name, timestamp=START)
            for name in ("hot", "calm-1", "calm-2")
        ],
    )
    hot = Lead.objects.get(project=project, anonymous_id="hot")
    calm = list(Lead.objects.filter(project=project, anonymous_id__startswith="calm"))
    hot_backlog(hot)
    peaks: list[float] = []

    # its backlog is folded a chunk at a time from its checkpoint (batch after batch, a chunk each)
    with measured(peaks):
        score_until_done([hot.id, *(lead.id for lead in calm)])
    assert_pure_fold(hot, events=HOT_EVENTS + 1)

    # a late event (before all the others) makes the whole log fold again: streamed, in a transaction of its own,
    # after the batch's other leads are committed
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id="late", name="demo_request", anonymous_id="hot", timestamp=START - timedelta(1)),
            *(
                CanonicalEvent(
                    event_id=f"{lead.anonymous_id}-1",
                    name="demo_request",
                    anonymous_id=lead.anonymous_id,
                    timestamp=START + timedelta(hours=1),
                )
                for lead in calm
            ),
        ],
    )
    seen_by_others: list[dict[int, int]] = []
    refold = batch_services.lead_refold

    def watched_refold(**kwargs):
        if kwargs["lead"].id == hot.id:
            seen_by_others.append(committed_scores([lead.id for lead in calm]))
        return refold(**kwargs)

    monkeypatch.setattr(batch_services, "lead_refold", watched_refold)
    with measured(peaks):
        score_until_done([hot.id, *(lead.id for lead in calm)])
    monkeypatch.undo()
    assert seen_by_others == [{lead.id: 30 + 50 for lead in calm}]  # signup + demo_request, committed already
    assert_pure_fold(hot, events=HOT_EVENTS + 2)

    # a rule change re-scores it on the batch path
    page_view = ScoringRule.objects.get(project=project, event_type="page_view")
    rule_update(rule=page_view, data={"points": 1})
    job = RescoreJob.objects.get(project=project, status="pending")
    with measured(peaks):
        for index in range(job.slice_count):
            while rescore_job_run(job_id=job.id, slice_index=index):
                pass
    assert RescoreJob.objects.get(id=job.id).status == "succeeded"
    assert_pure_fold(hot, events=HOT_EVENTS + 2)
    rewritten = ScoreHistory.objects.get(lead=hot, event__event_id="hot-99999")  # a page view, near the end
    assert rewritten.details["rules"] == [{"ruleId": page_view.id, "points": 1}]

    # a second model folds it too (a re-score); its history is made from the log when read, a page at a time
    primary = ScoringModel.objects.get(project=project, is_primary=True)
    other = scoring_model_create(project=project, data={"key": "other", "name": "Other"}, copy_from=primary)
    job = RescoreJob.objects.get(project=project, status="pending")
    for index in range(job.slice_count):
        while rescore_job_run(job_id=job.id, slice_index=index):
            pass
    assert not ScoreHistory.objects.filter(lead=hot, model=other, reason="rule").exists()
    with measured(peaks), CaptureQueriesContext(connection) as queries:
        history = lead_history_for_project(project=project, lead=hot, model=other)
        newest = history[0:50]
    # the newest page is made from the newest segments' events, not from a fold of the whole log (20 pages)
    assert len([q for q in queries if 'FROM "ingest_event"' in q["sql"]]) <= 4
    with measured(peaks):
        chart = lead_score_history(lead=hot, model=other)["points"]
    assert len(history) >= HOT_EVENTS + 2
    assert [row.event_uid for row in newest if row.reason == "rule"][:2] == ["hot-100000", "hot-99999"]
    assert [row.id for row in chart[-50:]] == [row.id for row in reversed(newest)]

    # and no step held more than a few chunks in memory
    assert max(peaks) < MEMORY_LIMIT_MB, peaks
