"""Features of one lead at a cutoff: windows, recency, velocity, traits, and the leak guard."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from predictions.features import (
    RECENCY_CAP_DAYS,
    EventRow,
    LeadFacts,
    Vocabulary,
    features_compute,
    features_named,
    vocabulary_learn,
)
from predictions.synthetic import labels_shuffle, leads_generate

CUTOFF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> datetime:
    return CUTOFF - timedelta(**delta)


VOCABULARY = Vocabulary(events=("demo_request", "pricing_page_visit"), traits=(("industry", "saas"),))


def test_counts_fall_in_every_window_that_holds_them():
    # given
    lead = LeadFacts(
        events=[
            EventRow("pricing_page_visit", ago(hours=2)),
            EventRow("pricing_page_visit", ago(days=3)),
            EventRow("pricing_page_visit", ago(days=7)),  # exactly 7 days: in the 7-day window
            EventRow("pricing_page_visit", ago(days=20)),
            EventRow("pricing_page_visit", ago(days=45)),  # older than every window
            EventRow("demo_request", ago(days=29)),
        ]
    )
    # when
    features = features_named(lead, cutoff=CUTOFF, vocabulary=VOCABULARY)
    # then
    assert features["pricing_page_visit_1d"] == 1
    assert features["pricing_page_visit_7d"] == 3
    assert features["pricing_page_visit_30d"] == 4
    assert (features["demo_request_1d"], features["demo_request_7d"], features["demo_request_30d"]) == (0, 0, 1)
    assert features["recency_days"] == pytest.approx(2 / 24)
    assert features["velocity_24h"] == 1


def test_an_event_at_or_after_the_cutoff_is_never_seen():
    before = [EventRow("pricing_page_visit", ago(days=2))]
    leaked = [
        EventRow("demo_request", CUTOFF),  # at the cutoff: the outcome's own event
        EventRow("pricing_page_visit", CUTOFF + timedelta(seconds=1)),
        EventRow("demo_request", CUTOFF + timedelta(days=3)),
    ]
    clean = features_compute(LeadFacts(events=before), cutoff=CUTOFF, vocabulary=VOCABULARY)
    with_leak = features_compute(LeadFacts(events=before + leaked), cutoff=CUTOFF, vocabulary=VOCABULARY)
    assert with_leak == clean
    # and a second before the cutoff it is seen
    just_before = [EventRow("demo_request", CUTOFF - timedelta(seconds=1))]
    seen = features_named(LeadFacts(events=before + just_before), cutoff=CUTOFF, vocabulary=VOCABULARY)
    assert seen["demo_request_1d"] == 1
    assert seen["velocity_24h"] == 1


def test_a_lead_without_events_is_idle_for_the_cap_and_has_no_velocity():
    features = features_named(LeadFacts(events=[]), cutoff=CUTOFF, vocabulary=VOCABULARY)
    assert features["recency_days"] == RECENCY_CAP_DAYS
    assert features["velocity_24h"] == 0
    assert sum(value for name, value in features.items() if name.endswith("d") and "_" in name) == 0
    long_idle = LeadFacts(events=[EventRow("pricing_page_visit", ago(days=400))])
    assert features_named(long_idle, cutoff=CUTOFF, vocabulary=VOCABULARY)["recency_days"] == RECENCY_CAP_DAYS


def test_events_outside_the_vocabulary_count_only_in_velocity_and_recency():
    lead = LeadFacts(events=[EventRow("scroll", ago(hours=1)), EventRow("scroll", ago(hours=3))])
    features = features_named(lead, cutoff=CUTOFF, vocabulary=VOCABULARY)
    assert features["velocity_24h"] == 2
    assert features["recency_days"] == pytest.approx(1 / 24)
    assert not any("scroll" in name for name in features)


def test_traits_are_one_hot_on_the_learnt_values_case_and_spaces_aside():
    def saas(value: object) -> float:
        traits = {"industry": value}
        return features_named(LeadFacts(events=[], traits=traits), cutoff=CUTOFF, vocabulary=VOCABULARY)[
            "trait:industry=saas"
        ]

    assert saas(" SaaS ") == 1.0
    assert saas("retail") == 0.0
    assert saas(None) == 0.0
    assert saas(42) == 0.0


def test_the_vocabulary_keeps_supported_categories_and_drops_identities():
    # given 10 leads; an email and a per-lead id are identifiers, `plan` has one rare value
    leads = []
    for i in range(10):
        traits = {
            "email": f"p{i}@example.com",
            "account_ref": f"acct-{i}",  # distinct on every lead, but under 20 leads: support keeps it out
            "plan": "pro" if i < 8 else "enterprise",
            "trial": i % 2 == 0,
            "seats": 12,  # a number: not categorical
        }
        events = [EventRow("page_view", ago(days=1)), EventRow("onboarding_step", CUTOFF + timedelta(days=1))]
        if i < 4:
            events.append(EventRow("demo_request", ago(days=2)))
        leads.append((LeadFacts(events=events, traits=traits), CUTOFF))
    # when
    vocabulary = vocabulary_learn(leads, min_support=5)
    # then: events after the cutoff (onboarding) and on too few leads (demo_request) have no feature
    assert vocabulary.events == ("page_view",)
    assert vocabulary.traits == (("plan", "pro"), ("trial", "false"), ("trial", "true"))


def test_a_trait_with_too_many_values_is_not_a_category():
    leads = [(LeadFacts(events=[], traits={"city": f"city-{i % 30}"}), CUTOFF) for i in range(300)]
    assert vocabulary_learn(leads, min_support=5).traits == ()


def test_feature_names_are_stable_and_the_vocabulary_round_trips_json():
    names = VOCABULARY.names()
    assert names == (
        "demo_request_1d", "demo_request_7d", "demo_request_30d",
        "pricing_page_visit_1d", "pricing_page_visit_7d", "pricing_page_visit_30d",
        "recency_days", "velocity_24h", "trait:industry=saas",
    )  # fmt: skip
    assert Vocabulary.from_json(json.loads(json.dumps(VOCABULARY.to_json()))) == VOCABULARY


def test_synthetic_leads_are_deterministic_and_sign_at_the_outcome():
    first, again, other = leads_generate(50, seed=4), leads_generate(50, seed=4), leads_generate(50, seed=5)
    assert first == again
    assert first != other
    won = [lead for lead in first if lead.won]
    assert won and len(won) < len(first)
    for lead in won:
        signed = [event for event in lead.events if event.name == "contract_signed"]
        assert [event.timestamp for event in signed] == [lead.at]
    for lead in first:
        assert list(lead.events) == sorted(lead.events, key=lambda event: event.timestamp)
    shuffled = labels_shuffle(first)
    assert sorted(lead.won for lead in shuffled) == sorted(lead.won for lead in first)
    assert [lead.won for lead in shuffled] != [lead.won for lead in first]
