"""Window rules ("at least N matching events within D days") in the pure fold (no database)."""

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NO_DECAY = engine.Policy(decay=engine.Decay(enabled=False))
PRICING = engine.compile_condition({"path": "properties.url", "op": "contains", "value": "/pricing"})
# three pricing visits in a week: +20
THREE_IN_A_WEEK = engine.Rule(1, "page_view", 20, conditions=(PRICING,), window=engine.Window(3, 7))


def visit(day: float, url: str = "/pricing", event_id: str | None = None) -> engine.EventFact:
    return engine.EventFact(event_id or f"pv-{day}", "page_view", T0 + timedelta(days=day), {"url": url})


def awards(events, rules=(THREE_IN_A_WEEK,), rule_id: int = 1) -> list[str]:
    """The ids of the events on which `rule_id` gave points."""
    _, steps = engine.fold(events, rules=rules, policy=NO_DECAY)
    return [step.event_id for step in steps if any(r == rule_id for r, _ in step.applied)]


def test_three_pricing_visits_in_a_week_award_on_the_third():
    # given three pricing visits on days 0, 2 and 5 (and a blog visit between, which does not count)
    events = [visit(0), visit(1, "/blog"), visit(2), visit(5)]

    state, steps = engine.fold(events, rules=[THREE_IN_A_WEEK], policy=NO_DECAY)

    # then only the third pricing visit scores, +20
    assert [step.delta for step in steps] == [0, 0, 0, 20]
    assert state.score == 20
    assert state.tallies[1] == engine.RuleTally(1, 20, (T0 + timedelta(days=5)).date().isoformat(), 1)


def test_a_fourth_visit_the_same_week_gives_nothing_and_the_rule_awards_again_only_after_the_window():
    # given the award on day 5, then pricing visits every day
    events = [visit(0), visit(2), visit(5), *(visit(day) for day in range(6, 15))]

    # then nothing more until day 12 (5 + 7): days 6..11 are the rest after the award, whatever their count
    assert awards(events) == ["pv-5", "pv-12"]


def test_events_of_an_award_do_not_count_towards_the_next():
    # given an award on day 2 (days 0, 1, 2), then two visits just after the rest ends
    events = [visit(0), visit(1), visit(2), visit(9.5), visit(10)]

    # then days 9.5 and 10 are only two in their week (day 2 is 8 days before day 10): no award
    assert awards(events) == ["pv-2"]
    # and a third one in that week awards
    assert awards([*events, visit(11)]) == ["pv-2", "pv-11"]


def test_the_window_is_the_trailing_days_with_the_oldest_edge_excluded():
    # given visits exactly seven days apart at the edges
    assert awards([visit(0), visit(3), visit(7)]) == []  # day 0 is 7 days before day 7: out
    assert awards([visit(0.01), visit(3), visit(7)]) == ["pv-7"]


def test_a_count_of_one_is_once_per_window():
    rule = engine.Rule(2, "page_view", 5, window=engine.Window(1, 3))

    events = [visit(day / 2) for day in range(14)]  # every 12 hours for a week

    assert awards(events, rules=[rule], rule_id=2) == ["pv-0.0", "pv-3.0", "pv-6.0"]


def test_caps_apply_to_awards_and_a_capped_window_leaves_no_rest():
    # given a window rule that may award once a day, with five quick visits twice on one day
    capped = engine.Rule(3, "page_view", 10, window=engine.Window(2, 7), max_per_lead=1)
    per_day = engine.Rule(4, "page_view", 10, window=engine.Window(2, 1))

    events = [visit(day) for day in (0, 0.1, 1.5, 1.6, 3, 3.1)]

    # then max_per_lead stops the second award (and only awards count towards it)
    assert awards(events, rules=[capped], rule_id=3) == ["pv-0.1"]
    # and a one-day window awards on each pair, each after a day's rest
    assert awards(events, rules=[per_day], rule_id=4) == ["pv-0.1", "pv-1.6", "pv-3.1"]


def test_max_points_caps_window_awards():
    rule = engine.Rule(5, "page_view", 20, window=engine.Window(1, 1), max_points=30)

    state, steps = engine.fold([visit(day) for day in range(4)], rules=[rule], policy=NO_DECAY)

    assert [step.delta for step in steps] == [20, 10, 0, 0]
    assert state.score == 30


def test_the_state_keeps_only_count_minus_one_timestamps_and_round_trips_through_json():
    events = [visit(day) for day in range(20)]

    state, _ = engine.fold(events, rules=[THREE_IN_A_WEEK], policy=NO_DECAY)

    window = state.windows[1]
    assert window.recent == (T0 + timedelta(days=18), T0 + timedelta(days=19))
    assert window.awarded == T0 + timedelta(days=16)  # days 2, 9 and 16
    assert engine.FoldState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_checkpoints_without_windows_still_load():
    old = {"score": 40, "lastTimestamp": T0.isoformat(), "lastEventId": "e1", "rules": {"1": [2, 40, "2026-03-02", 2]},
           "clamped": 0, "decayed": 0}  # fmt: skip

    state = engine.FoldState.from_json(old)

    assert state.windows == {} and state.score == 40
    written = state.to_json()
    assert "windows" not in written and written.items() >= old.items()  # a state without window rules writes none


# --- properties -----------------------------------------------------------------------------------------------

WINDOW_RULES = [
    THREE_IN_A_WEEK,
    engine.Rule(2, "page_view", 5),
    engine.Rule(3, "*", 7, window=engine.Window(2, 2), max_per_day=1),
    engine.Rule(4, "signup", 30, window=engine.Window(1, 30)),
    engine.Rule(5, "page_view", -4, window=engine.Window(4, 3), max_points=12),
]
DECAYING = engine.Policy(decay=engine.Decay(rate_percent=10, grace_days=2))

window_events = st.lists(
    st.tuples(
        st.sampled_from(["page_view", "signup", "other"]),
        st.integers(0, 60 * 24 * 40),  # minutes over 40 days
        st.sampled_from(["/pricing", "/blog"]),
    ),
    min_size=1,
    max_size=40,
).map(
    lambda rows: [
        engine.EventFact(f"e{i:03d}", name, T0 + timedelta(minutes=minute), {"url": url})
        for i, (name, minute, url) in enumerate(rows)
    ]
)


def reference_awards(events, rule: engine.Rule) -> list[str]:
    """The window semantics with the whole history at hand (no bounded state, no caps): the award event ids."""
    matched: list[engine.EventFact] = []
    awarded: list[engine.EventFact] = []
    window = rule.window
    assert window is not None and not (rule.max_per_day or rule.max_per_lead or rule.max_points)
    for event in sorted(events, key=lambda e: e.key):
        if rule.event_type not in ("*", event.name) or not rule.matches(event.subject()):
            continue
        matched.append(event)
        in_window = [e for e in matched if e.timestamp > event.timestamp - window.span]
        rested = not awarded or event.timestamp >= awarded[-1].timestamp + window.span
        if len(in_window) >= window.count and rested:
            awarded.append(event)
    return [event.event_id for event in awarded]


@settings(max_examples=200, deadline=None)
@given(events=window_events)
def test_bounded_state_awards_as_the_whole_history_would(events):
    for rule in (THREE_IN_A_WEEK, WINDOW_RULES[3], engine.Rule(6, "*", 1, window=engine.Window(5, 4))):
        assert awards(events, rules=[rule], rule_id=rule.id) == reference_awards(events, rule)


def fold_as_arrived(batches, rules, policy):
    """Fold batches as the services do: on from the checkpoint, or a refold of all seen when one is late."""
    seen: list[engine.EventFact] = []
    state = engine.FoldState()
    for batch in batches:
        seen.extend(batch)
        if state.continues_with(batch):
            state, _ = engine.fold(batch, rules=rules, policy=policy, state=state)
        else:
            state, _ = engine.fold(seen, rules=rules, policy=policy)
    return state


@settings(max_examples=200, deadline=None)
@given(events=window_events, data=st.data())
def test_window_rules_do_not_depend_on_arrival_order(events, data):
    # given the events in any order, arriving in batches of any size
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]

    # then folding them as they come (with refolds for late ones) equals one sorted fold
    for policy in (NO_DECAY, DECAYING):
        expected, _ = engine.fold(sorted(events, key=lambda e: e.key), rules=WINDOW_RULES, policy=policy)
        assert fold_as_arrived(batches, WINDOW_RULES, policy) == expected


@settings(max_examples=200, deadline=None)
@given(events=window_events, data=st.data())
def test_folding_in_chunks_through_json_equals_one_fold(events, data):
    ordered = sorted(events, key=lambda e: e.key)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=6)))
    state, steps = engine.FoldState(), []
    for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True):
        state = engine.FoldState.from_json(json.loads(json.dumps(state.to_json())))  # the stored checkpoint
        state, chunk = engine.fold(ordered[a:b], rules=WINDOW_RULES, policy=DECAYING, state=state)
        steps += chunk

    full_state, full_steps = engine.fold(events, rules=WINDOW_RULES, policy=DECAYING)
    assert state == full_state
    assert steps == full_steps
    # bounded: each window rule keeps at most count - 1 timestamps
    for rule in WINDOW_RULES:
        if rule.window is not None and rule.id in state.windows:
            assert len(state.windows[rule.id].recent) <= rule.window.count - 1


# --- windows and manual adjustments in one log ----------------------------------------------------------------

MODEL = "default"


def adjusted_by_hand(minute: int, model: str, change: dict[str, int]) -> engine.EventFact:
    properties = {**change, "reason": "by hand", "model": model, "author": {"type": "user", "id": 1, "label": "a@x.io"}}
    return engine.EventFact(f"$adjustment:{minute}:{model}", engine.ADJUSTMENT_NAME, T0 + timedelta(minutes=minute),
                            properties, {}, engine.ADJUSTMENT)  # fmt: skip


adjustments = st.builds(
    adjusted_by_hand,
    st.integers(0, 60 * 24 * 40),
    st.sampled_from([MODEL, MODEL, "sales"]),
    st.one_of(
        st.integers(-60, 60).filter(bool).map(lambda n: {"points": n}),
        st.integers(0, 120).map(lambda n: {"setTo": n}),
    ),
)
mixed_logs = st.tuples(window_events, st.lists(adjustments, max_size=12, unique_by=lambda e: e.event_id)).map(
    lambda both: [*both[0], *both[1]]
)


@settings(max_examples=300, deadline=None)
@given(log=mixed_logs, data=st.data())
def test_window_rules_and_adjustments_together_are_order_independent_and_survive_refolds(log, data):
    # given window rules and manual adjustments (of this model and another) in one log, arriving in any order
    shuffled = data.draw(st.permutations(log))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(log)), max_size=6)))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(log)], strict=True) if b > a]
    ordered = sorted(log, key=lambda e: e.key)
    for model in (MODEL, "sales"):
        expected, steps = engine.fold(ordered, rules=WINDOW_RULES, policy=DECAYING, model=model)
        # when folded as it arrives: on from the checkpoint as stored (JSON), or a refold of all seen when late
        state, seen = engine.FoldState(), []
        for batch in batches:
            seen += batch
            stored = engine.FoldState.from_json(json.loads(json.dumps(state.to_json())))
            if stored.continues_with(batch):
                state, _ = engine.fold(batch, rules=WINDOW_RULES, policy=DECAYING, state=stored, model=model)
            else:
                state, _ = engine.fold(seen, rules=WINDOW_RULES, policy=DECAYING, model=model)
        # then it ends as one fold of the sorted log
        assert state == expected
        # and the breakdown adds up: rules + manual + clamp + decay == score
        rules = sum(t.points for t in expected.tallies.values())
        assert rules + expected.adjusted + expected.clamped + expected.decayed == expected.score
        # adjustments never count towards (or award) a window
        awarded = {step.event_id for step in steps if step.applied}
        assert not any(event_id.startswith("$adjustment") for event_id in awarded)
        # and the windows award as they would without any adjustment in the log
        activity = [e for e in ordered if e.type != engine.ADJUSTMENT]
        without, _ = engine.fold(activity, rules=WINDOW_RULES, policy=NO_DECAY, model=model)
        with_adjustments, _ = engine.fold(ordered, rules=WINDOW_RULES, policy=NO_DECAY, model=model)
        assert with_adjustments.windows == without.windows
