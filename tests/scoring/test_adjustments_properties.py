"""Adjustments through the real batch scoring on PostgreSQL: whatever the arrival order of events and
adjustments, and however batches fold them (checkpoints, late events, refolds, chunks), every lead ends
as the pure fold of its sorted log under every model."""

import itertools
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import LeadScore, ScoringModel
from scoring.selectors import lead_score_breakdown
from scoring.services.adjustments import Author, adjustment_append
from scoring.services.fold import facts, lead_profile, project_models
from tests.scoring.test_batch_properties import LEADS, NOW, T0, batch_projects, canonical, score

pytestmark = pytest.mark.django_db
__all__ = ["batch_projects"]  # the fixture, imported for pytest

AUTHOR = Author(type="user", id=1, label="ana@example.com")

events = st.tuples(
    st.sampled_from(sorted(LEADS)),
    st.sampled_from(["page_view", "signup", "download", "unsubscribe", "demo_request", "email_open", "other"]),
    st.integers(0, 60 * 24 * 40),
    st.sampled_from(["/pricing", "/blog", None]),
    st.sampled_from(["team", "free", None]),
    st.integers(0, 30),
)
adjustments = st.tuples(
    st.just("adjustment"),
    st.sampled_from(sorted(LEADS)),
    st.integers(0, 60 * 24 * 40),
    st.sampled_from(["default", "second"]),  # "second" is project B's other model (A has none: no effect there)
    st.one_of(
        st.integers(-80, 80).filter(bool).map(lambda n: ("points", n)),
        st.integers(0, 90).map(lambda n: ("set_to", n)),
    ),
)
log_strategy = st.lists(st.one_of(events, adjustments), min_size=1, max_size=30)


def assert_pure_fold(lead: Lead) -> None:
    """Under every model, the stored result is the pure fold of the lead's whole log, and the breakdown adds up."""
    log = [fact for _, fact in facts(Event.objects.filter(lead=lead))]
    for model in project_models(lead.project):
        pure = engine.lead_evaluate(
            lead=engine.Materialised(), events=log, profile=lead_profile(lead), rules=model.rules,
            fit_rules=model.fit_rules, policy=model.policy, now=NOW, refold=True, model=model.key,
        )  # fmt: skip
        if model.primary:
            stored = (lead.current_score, lead.lead_stage, lead.engagement_score, lead.fold_state)
        else:
            row = LeadScore.objects.get(lead=lead, model_id=model.id)
            stored = (row.score, row.stage, row.engagement, row.fold_state)
        assert stored[:3] == (pure.score, pure.stage, pure.engagement), model.key
        assert engine.FoldState.from_json(stored[3]) == pure.state
        breakdown = lead_score_breakdown(lead=lead, model=ScoringModel.objects.get(id=model.id))
        parts = ("adjustmentPoints", "clampAdjustment", "decayBetweenEvents")
        assert (
            sum(rule["points"] for rule in breakdown["rules"]) + sum(breakdown[p] for p in parts)
            == (breakdown["foldScore"])
        )
        mine = [e for e in log if e.type == engine.ADJUSTMENT and e.properties["model"] == model.key]
        assert [a["eventId"] for a in breakdown["adjustments"]] == [e.event_id for e in mine]
    # the activity the lead row shows is its events', never an adjustment's
    activity = [fact.timestamp for fact in log if fact.type != engine.ADJUSTMENT]
    assert lead.last_event_at == (max(activity) if activity else None)


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=log_strategy, data=st.data())
def test_events_and_adjustments_in_any_arrival_order_give_each_lead_its_pure_fold(batch_projects, items, data):
    chunk_events = data.draw(st.integers(1, 6), label="events folded per lead and batch")
    arrival = data.draw(st.permutations(list(enumerate(items))), label="arrival order")
    cuts = sorted(data.draw(st.lists(st.integers(1, len(items)), max_size=6), label="arrival chunks"))
    with override_settings(LEADPULSE_SCORE_CHUNK_EVENTS=chunk_events), transaction.atomic():
        for start, end in itertools.pairwise([0, *cuts, len(items)]):
            if start == end:
                continue
            stored: dict[str, list[CanonicalEvent]] = defaultdict(list)
            later: list[tuple] = []
            for n, item in arrival[start:end]:
                if item[0] == "adjustment":
                    later.append(item)
                else:
                    key, event = canonical(n, item)
                    stored[key].append(event)
            for key, batch in stored.items():
                events_ingest(project_id=batch_projects[key].id, events=batch)
            # adjustments of leads that exist by now (a lead is made by its first event), at their own time
            for _, anonymous_id, minute, key, (change, value) in later:
                project = batch_projects[LEADS[anonymous_id]]
                lead = Lead.objects.filter(project=project, anonymous_id=anonymous_id).first()
                model = ScoringModel.objects.filter(project=project, key=key).first()
                if lead is None or model is None:
                    continue
                adjustment_append(lead=lead, reason="property", author=AUTHOR, model=model,
                                  now=T0 + timedelta(minutes=minute), **{change: value})  # fmt: skip
            known = sorted(Lead.objects.filter(project__in=batch_projects.values()).values_list("id", flat=True))
            if not known:
                continue
            batch_leads = data.draw(st.one_of(st.just(known), st.lists(st.sampled_from(known), unique=True)))
            if batch_leads:
                score(batch_leads)

        score(sorted(Lead.objects.filter(project__in=batch_projects.values()).values_list("id", flat=True)))
        assert not Event.objects.filter(project__in=batch_projects.values(), processed_at__isnull=True).exists()
        for lead in Lead.objects.filter(project__in=batch_projects.values()).select_related("project"):
            assert_pure_fold(lead)
        transaction.set_rollback(True)
