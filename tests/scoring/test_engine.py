import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = [
    engine.Rule(1, "page_view", 5),
    engine.Rule(2, "signup", 30),
    engine.Rule(3, "unsubscribe", -20),
    engine.Rule(4, "demo_request", 50),
]
POLICY = engine.Policy()


def fact(name: str, minutes: int, event_id: str | None = None) -> engine.EventFact:
    return engine.EventFact(event_id or f"{name}-{minutes}", name, T0 + timedelta(minutes=minutes))


def test_fold_sums_points_in_timestamp_order_and_clamps_at_zero():
    # given an unsubscribe before a signup, sent in reverse
    events = [fact("signup", 2), fact("unsubscribe", 1)]

    state, steps = engine.fold(events, rules=RULES, policy=POLICY)

    # then the unsubscribe is clamped at 0 first: 30, not 10
    assert state.score == 30
    assert [(s.event_id, s.old_score, s.new_score) for s in steps] == [
        ("unsubscribe-1", 0, 0),
        ("signup-2", 0, 30),
    ]


def test_unknown_events_score_zero_and_still_leave_a_step():
    state, steps = engine.fold([fact("mystery", 1)], rules=RULES, policy=POLICY)
    assert state.score == 0
    assert len(steps) == 1 and steps[0].delta == 0 and steps[0].applied == ()


def test_score_is_clamped_to_max_score():
    policy = engine.Policy(max_score=100)
    state, _ = engine.fold([fact("demo_request", i) for i in range(5)], rules=RULES, policy=policy)
    assert state.score == 100


def test_ties_on_timestamp_are_broken_by_event_id():
    a = engine.EventFact("b", "signup", T0)
    b = engine.EventFact("a", "unsubscribe", T0)
    _, steps = engine.fold([a, b], rules=RULES, policy=POLICY)
    assert [s.event_id for s in steps] == ["a", "b"]


def test_continues_with_only_when_every_new_event_is_newer():
    state, _ = engine.fold([fact("page_view", 10)], rules=RULES, policy=POLICY)
    assert state.continues_with([fact("page_view", 11)])
    assert not state.continues_with([fact("page_view", 11), fact("page_view", 9)])
    # same timestamp, smaller event id: also older in fold order
    assert not state.continues_with([engine.EventFact("a", "page_view", T0 + timedelta(minutes=10))])


def test_state_round_trips_through_json():
    state, _ = engine.fold([fact("signup", 3)], rules=RULES, policy=POLICY)
    assert engine.FoldState.from_json(state.to_json()) == state
    assert engine.FoldState.from_json({}) == engine.FoldState()


def test_stage_thresholds_are_inclusive_lower_bounds():
    assert [engine.stage_for(s, POLICY) for s in (0, 10, 11, 30, 31, 59, 60)] == [
        "cold",
        "cold",
        "warm",
        "warm",
        "hot",
        "hot",
        "qualified",
    ]


def test_velocity_score_is_capped_between_0_and_10():
    assert [engine.velocity_score(n) for n in (0, 3, 10, 250)] == [0, 3, 10, 10]


event_lists = st.lists(
    st.tuples(st.sampled_from(["page_view", "signup", "unsubscribe", "demo_request", "other"]), st.integers(0, 500)),
    min_size=1,
    max_size=40,
    unique_by=lambda pair: pair[1],
).map(lambda pairs: [fact(name, minute, f"e{minute:04d}") for name, minute in pairs])


@settings(max_examples=200, deadline=None)
@given(events=event_lists, data=st.data())
def test_arrival_order_never_changes_the_score(events, data):
    shuffled = data.draw(st.permutations(events))
    assert engine.fold(shuffled, rules=RULES, policy=POLICY)[0] == engine.fold(events, rules=RULES, policy=POLICY)[0]


@settings(max_examples=200, deadline=None)
@given(events=event_lists, split=st.integers(0, 40))
def test_incremental_fold_equals_a_full_refold(events, split):
    ordered = sorted(events, key=lambda e: e.key)
    head, tail = ordered[:split], ordered[split:]
    state, head_steps = engine.fold(head, rules=RULES, policy=POLICY)
    state, tail_steps = engine.fold(tail, rules=RULES, policy=POLICY, state=state)
    full_state, full_steps = engine.fold(events, rules=RULES, policy=POLICY)
    assert state == full_state
    assert head_steps + tail_steps == full_steps
    # the history chain is continuous and ends at the score
    for previous, step in itertools.pairwise(full_steps):
        assert step.old_score == previous.new_score
    assert full_steps[-1].new_score == full_state.score
