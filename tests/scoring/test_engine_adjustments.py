"""Manual adjustments in the pure fold: applied at their timestamp, for the model they name only."""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = (
    engine.Rule(1, "page_view", 5),
    engine.Rule(2, "signup", 30),
    engine.Rule(3, "unsubscribe", -20),
    engine.Rule(4, "demo_request", 50, max_per_lead=2),
    engine.Rule(5, "*", 1),  # a wildcard: it must never match an adjustment
)
POLICY = engine.Policy(max_score=200, decay=engine.Decay(rate_percent=10.0, grace_days=2))
MODEL = "default"


def fact(name: str, at: timedelta, event_id: str | None = None) -> engine.EventFact:
    return engine.EventFact(event_id or f"{name}-{at}", name, T0 + at)


def adjustment(at: timedelta, *, event_id: str | None = None, model: str = MODEL, **change) -> engine.EventFact:
    properties = {**change, "reason": "by hand", "model": model, "author": {"type": "user", "id": 1, "label": "a@x.io"}}
    return engine.EventFact(event_id or f"$adjustment:{at}", engine.ADJUSTMENT_NAME, T0 + at, properties, {},
                            engine.ADJUSTMENT)  # fmt: skip


def fold(events, *, model: str = MODEL, state: engine.FoldState | None = None, policy: engine.Policy = POLICY):
    return engine.fold(events, rules=RULES, policy=policy, state=state, model=model)


def test_points_add_at_the_adjustment_s_timestamp_and_no_rule_matches_it():
    events = [
        fact("signup", timedelta(0)),
        adjustment(timedelta(minutes=1), points=-20),
        fact("page_view", timedelta(minutes=2)),
    ]
    state, steps = fold(events)
    # signup 30 + wildcard 1, then -20 (not +1 from the wildcard), then page view 5 + 1
    assert [(s.old_score, s.new_score) for s in steps] == [(0, 31), (31, 11), (11, 17)]
    author = {"type": "user", "id": 1, "label": "a@x.io"}
    assert steps[1].applied == () and steps[1].adjustment == {"points": -20, "reason": "by hand", "author": author}
    assert state.adjusted == -20 and state.tallies[5].count == 2  # the wildcard matched the two events only


def test_set_to_replaces_the_engagement_score_and_counts_what_it_moved():
    state, steps = fold([fact("demo_request", timedelta(0)), adjustment(timedelta(minutes=1), setTo=7)])
    assert steps[-1].new_score == 7 and state.adjusted == 7 - 51


def test_adjustments_are_clamped_like_any_step():
    state, steps = fold([
        fact("signup", timedelta(0)), adjustment(timedelta(minutes=1), points=-500),
        adjustment(timedelta(minutes=2), points=9000), adjustment(timedelta(minutes=3), setTo=9000),
    ])  # fmt: skip
    assert [s.new_score for s in steps] == [31, 0, 200, 200]
    # what the clamp took back is in `clamped`, so the parts still add up to the score
    rules = sum(t.points for t in state.tallies.values())
    assert rules + state.adjusted + state.clamped + state.decayed == state.score == 200


def test_an_adjustment_applies_only_to_the_model_it_names():
    events = [fact("signup", timedelta(0)), adjustment(timedelta(minutes=1), points=-20, model="sales")]
    default, default_steps = fold(events)
    sales, _ = fold(events, model="sales")
    assert default.score == 31 and sales.score == 11
    # the other model passes it by with a step of its own that changes nothing (the checkpoints stay in line)
    assert (default_steps[1].old_score, default_steps[1].new_score, default_steps[1].adjustment) == (31, 31, None)
    assert default.key == sales.key


def test_another_model_s_adjustment_does_not_even_change_decay_s_rounding():
    # given a decaying lead: an adjustment of another model half way through its idleness
    base = [
        fact("demo_request", timedelta(0)),
        fact("signup", timedelta(minutes=1)),
        fact("page_view", timedelta(days=9)),
    ]
    other = adjustment(timedelta(days=5, hours=3), points=5, model="sales")
    plain, _ = fold(base)
    with_other, _ = fold([*base, other])
    assert with_other.score == plain.score and with_other.decayed == plain.decayed


def test_adjustments_are_not_activity_decay_counts_idle_days_from_the_last_event():
    # given a lead idle since day 0 (grace 2 days, then 10 % a day), adjusted on day 4
    events = [fact("demo_request", timedelta(0)), adjustment(timedelta(days=4), points=10)]
    state, steps = fold(events)
    # demo request 50 + the wildcard's 1; 2 idle days past the grace by day 4
    assert steps[1].old_score == 51 and steps[1].decay == round(51 * 0.9**2) - 51
    assert state.active_at == T0 and state.last_timestamp == T0 + timedelta(days=4)
    # on day 6 the lead has been idle 6 days: 2 more decay days since the adjustment, not a fresh grace period
    assert state.decayed_to(POLICY.decay, T0 + timedelta(days=6)) == round((round(51 * 0.9**2) + 10) * 0.9**2)
    evaluation = engine.lead_evaluate(lead=engine.Materialised(), events=events, profile={}, rules=RULES, fit_rules=(),
                                      policy=POLICY, now=T0 + timedelta(days=6), model=MODEL)  # fmt: skip
    assert evaluation.engagement == round((round(51 * 0.9**2) + 10) * 0.9**2)
    assert evaluation.history[1].details["adjustment"]["points"] == 10


def test_an_adjustment_only_lead_does_not_decay():
    state, _ = fold([adjustment(timedelta(0), points=40)])
    assert state.active_at is None and state.decayed_to(POLICY.decay, T0 + timedelta(days=30)) == 40


def test_state_with_adjustments_round_trips_through_json_and_old_checkpoints_still_read():
    state, _ = fold([fact("signup", timedelta(0)), adjustment(timedelta(days=3), points=-4),
                     adjustment(timedelta(days=4), points=1, model="sales")])  # fmt: skip
    assert engine.FoldState.from_json(state.to_json()) == state
    # a checkpoint written before adjustments: every event it folded was activity
    legacy = {"score": 9, "lastTimestamp": T0.isoformat(), "lastEventId": "e", "rules": {}}
    restored = engine.FoldState.from_json(legacy)
    assert restored.active_at == restored.scored_at == T0 and restored.adjusted == 0


def test_an_ingested_event_that_only_looks_like_one_is_no_adjustment():
    # the type decides (ingest never stores `adjustment`): a track call named $adjustment is an event like others
    spoof = engine.EventFact("x", engine.ADJUSTMENT_NAME, T0, {"points": 500, "model": MODEL}, {}, "track")
    state, _ = fold([spoof])
    assert state.score == 1 and state.adjusted == 0  # the wildcard rule, nothing else


def test_malformed_adjustments_change_nothing():
    state, _ = fold([fact("signup", timedelta(0)), adjustment(timedelta(minutes=1), points=True),
                     adjustment(timedelta(minutes=2), points=3, setTo=4)])  # fmt: skip
    assert state.score == 31 and state.adjusted == 0


# Hypothesis: activity and adjustments (of this model and another), spread over weeks so decay happens.
MINUTES = 60 * 24 * 30
activity = st.tuples(st.sampled_from(["page_view", "signup", "unsubscribe", "demo_request", "other"]),
                     st.integers(0, MINUTES)).map(lambda t: fact(t[0], timedelta(minutes=t[1])))  # fmt: skip
adjustments = st.builds(
    lambda minute, model, change: adjustment(timedelta(minutes=minute), model=model, **change),
    st.integers(0, MINUTES),
    st.sampled_from([MODEL, MODEL, "sales"]),
    st.one_of(
        st.integers(-300, 300).filter(bool).map(lambda n: {"points": n}),
        st.integers(0, 300).map(lambda n: {"setTo": n}),
    ),
)
logs = st.lists(st.one_of(activity, adjustments), min_size=1, max_size=30, unique_by=lambda e: e.event_id)


def arrive(log: list[engine.EventFact], batches: list[list[engine.EventFact]], model: str) -> engine.FoldState:
    """Fold batches as the worker does: on from the stored checkpoint, or the whole log again when one is late."""
    state, received = engine.FoldState(), []
    for batch in batches:
        received += batch
        stored = engine.FoldState.from_json(state.to_json())  # the checkpoint as the lead row keeps it
        if stored.continues_with(batch):
            state, _ = fold(batch, model=model, state=stored)
        else:
            state, _ = fold(received, model=model)  # a late event: refold from the first one
    return state


@settings(max_examples=300, deadline=None)
@given(log=logs, data=st.data())
def test_adjustments_are_order_independent_and_survive_refolds(log, data):
    # given the log arriving in any order, in batches of any size
    shuffled = data.draw(st.permutations(log))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(log)), max_size=6)))
    batches = [shuffled[a:b] for a, b in itertools.pairwise([0, *cuts, len(log)]) if b > a]
    for model in (MODEL, "sales"):
        # when / then: arrival order + refolds == one fold of the sorted log
        sorted_state, steps = fold(sorted(log, key=lambda e: e.key), model=model)
        assert arrive(log, batches, model) == sorted_state
        # and the parts of the breakdown add up to the fold score
        rules = sum(t.points for t in sorted_state.tallies.values())
        assert rules + sorted_state.adjusted + sorted_state.clamped + sorted_state.decayed == sorted_state.score
        for previous, step in itertools.pairwise(steps):
            assert step.old_score == previous.new_score


@settings(max_examples=200, deadline=None)
@given(log=logs)
def test_another_model_s_adjustments_leave_a_model_as_if_they_were_not_there(log):
    mine = [e for e in log if e.properties.get("model") != "sales"]
    with_others, _ = fold(log)
    without, _ = fold(mine)
    assert (with_others.score, with_others.tallies, with_others.adjusted, with_others.decayed) == (
        without.score, without.tallies, without.adjusted, without.decayed)  # fmt: skip
