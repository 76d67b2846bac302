"""The engine's rule depth: conditions, caps, wildcard rules, decay, fit, grades and intelligence (no database)."""

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning: minutes added stay on one UTC day
NO_DECAY = engine.Policy(decay=engine.Decay(enabled=False))
SUBJECT = {
    "event": "page_view",
    "type": "page",
    "properties": {
        "url": "https://acme.test/Pricing?plan=team",
        "seats": 25,
        "price": "99.5",
        "tags": ["Enterprise", "trial"],
        "title": None,
        "flag": True,
        "items": [{"sku": "A-1"}, {"sku": "B-2"}],
    },
    "context": {"page": {"path": "/docs/getting-started"}},
}


def cond(path: str, op: str, value=None) -> engine.Condition:
    return engine.compile_condition({"path": path, "op": op, "value": value})


def fact(name: str, minutes: float = 0, event_id: str | None = None, **properties) -> engine.EventFact:
    at = T0 + timedelta(minutes=minutes)
    return engine.EventFact(event_id or f"{name}-{minutes}", name, at, properties)


def days(n: float) -> float:
    return n * 24 * 60


# --- conditions -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        # eq / neq: strings case-insensitively, numbers numerically ("25" == 25.0)
        ("properties.url", "eq", "HTTPS://ACME.TEST/pricing?PLAN=team", True),
        ("properties.url", "eq", "https://acme.test/pricing", False),
        ("properties.seats", "eq", "25", True),
        ("properties.seats", "eq", 25.0, True),
        ("properties.seats", "eq", 26, False),
        ("properties.price", "eq", 99.5, True),
        ("properties.flag", "eq", "true", True),
        ("properties.seats", "neq", 26, True),
        ("properties.seats", "neq", "25.0", False),
        ("properties.url", "neq", "HTTPS://ACME.TEST/PRICING?PLAN=TEAM", False),
        # contains: substring of a string (case-insensitive), element of a list
        ("properties.url", "contains", "/pricing", True),
        ("properties.url", "contains", "/blog", False),
        ("properties.tags", "contains", "enterprise", True),
        ("properties.tags", "contains", "enter", False),  # list membership, not substring
        ("context.page.path", "contains", "getting", True),
        ("properties.url", "not_contains", "/blog", True),
        ("properties.url", "not_contains", "/PRICING", False),
        ("properties.tags", "not_contains", "TRIAL", False),
        ("properties.tags", "not_contains", "free", True),
        # starts_with / ends_with
        ("context.page.path", "starts_with", "/DOCS/", True),
        ("context.page.path", "starts_with", "/blog", False),
        ("properties.url", "ends_with", "PLAN=TEAM", True),
        ("properties.url", "ends_with", "/pricing", False),
        # in: any element equals (same equality as eq)
        ("properties.seats", "in", ["10", 25], True),
        ("properties.seats", "in", [10, 20], False),
        ("context.page.path", "in", ["/DOCS/GETTING-STARTED", "/x"], True),
        # gt / gte / lt / lte: numeric only (numeric strings count, words and booleans never match)
        ("properties.seats", "gt", 24, True),
        ("properties.seats", "gt", 25, False),
        ("properties.seats", "gte", 25, True),
        ("properties.seats", "gte", 26, False),
        ("properties.seats", "lt", 26, True),
        ("properties.seats", "lt", 25, False),
        ("properties.seats", "lte", 25, True),
        ("properties.seats", "lte", "24.9", False),
        ("properties.price", "gt", 99, True),
        ("properties.url", "gt", 0, False),
        ("properties.url", "lt", 1e18, False),
        ("properties.flag", "gte", 0, False),
        # exists / not_exists: None counts as absent
        ("properties.url", "exists", None, True),
        ("properties.title", "exists", None, False),
        ("properties.nope", "exists", None, False),
        ("properties.title", "not_exists", None, True),
        ("properties.nope", "not_exists", None, True),
        ("properties.seats", "not_exists", None, False),
        # list indexes in paths
        ("properties.items.1.sku", "eq", "b-2", True),
        ("properties.items.2.sku", "exists", None, False),
        # regex (RE2, case-sensitive unless the pattern says otherwise), on the text of the value
        ("properties.url", "regex", r"/Pricing\?plan=\w+$", True),
        ("properties.url", "regex", r"/pricing", False),
        ("properties.url", "regex", r"(?i)/PRICING", True),
        ("properties.seats", "regex", r"^\d+$", True),
        ("context.page.path", "regex", r"^/docs/", True),
    ],
)
def test_operator(path, op, value, expected):
    assert cond(path, op, value).holds(SUBJECT) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "x", False),
        ("neq", "x", True),
        ("contains", "x", False),
        ("not_contains", "x", True),
        ("starts_with", "x", False),
        ("ends_with", "x", False),
        ("in", ["x"], False),
        ("gt", 0, False),
        ("gte", 0, False),
        ("lt", 0, False),
        ("lte", 0, False),
        ("regex", ".*", False),
        ("exists", None, False),
        ("not_exists", None, True),
    ],
)
@pytest.mark.parametrize("path", ["properties.missing", "context.page.missing", "properties.url.deeper", "nothing"])
def test_missing_paths_only_satisfy_negative_operators(path, op, value, expected):
    assert cond(path, op, value).holds(SUBJECT) is expected


def test_a_null_value_is_treated_like_a_missing_one():
    subject = {"properties": {"url": None}}
    assert not cond("properties.url", "eq", "None").holds(subject)
    assert not cond("properties.url", "contains", "none").holds(subject)
    assert cond("properties.url", "neq", "none").holds(subject)


def test_every_operator_is_covered():
    assert set(engine.OPERATORS) == {
        "eq", "neq", "contains", "not_contains", "starts_with", "ends_with", "in",
        "gt", "gte", "lt", "lte", "exists", "not_exists", "regex",
    }  # fmt: skip


def test_conditions_see_event_properties_and_context():
    event = engine.EventFact("e1", "page_view", T0, {"url": "/pricing"}, {"page": {"path": "/pricing"}}, type="page")
    assert event.subject() == {
        "event": "page_view",
        "type": "page",
        "properties": {"url": "/pricing"},
        "context": {"page": {"path": "/pricing"}},
    }
    rule = engine.Rule(1, "page_view", 5, (cond("context.page.path", "eq", "/pricing"), cond("type", "eq", "page")))
    assert rule.matches(event.subject())


def test_a_rule_matches_only_when_all_its_conditions_hold():
    rule = engine.Rule(
        1, "page_view", 5, (cond("properties.url", "contains", "/pricing"), cond("properties.seats", "gte", 100))
    )
    assert not rule.matches(SUBJECT)
    assert engine.Rule(1, "page_view", 5, rule.conditions[:1]).matches(SUBJECT)
    assert engine.Rule(1, "page_view", 5).matches({})  # no conditions: every event of the type


# --- compile_condition --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("properties.url contains /pricing", ""),
        ({"path": "properties.url", "op": "like", "value": "x"}, "op"),
        ({"path": "properties.url", "value": "x"}, "op"),
        ({"path": "properties.url", "op": "regex", "value": "(unclosed"}, "value"),
        ({"path": "properties.url", "op": "regex", "value": r"(a)\1"}, "value"),  # backreference: not in RE2
        ({"path": "properties.url", "op": "regex", "value": r"foo(?=bar)"}, "value"),  # lookahead: not in RE2
        ({"path": "properties.url", "op": "regex", "value": ""}, "value"),
        ({"path": "properties.url", "op": "regex", "value": "a" * 501}, "value"),
        ({"path": "properties.url", "op": "regex", "value": 5}, "value"),
        ({"path": "properties.seats", "op": "gt", "value": "many"}, "value"),
        ({"path": "properties.seats", "op": "gte", "value": None}, "value"),
        ({"path": "properties.seats", "op": "lt", "value": True}, "value"),
        ({"path": "properties.seats", "op": "lte", "value": [1]}, "value"),
        ({"path": "properties.seats", "op": "in", "value": 5}, "value"),
        ({"path": "properties.seats", "op": "in", "value": []}, "value"),
        ({"path": "properties.seats", "op": "in", "value": list(range(501))}, "value"),
        ({"path": "properties.url", "op": "eq", "value": ""}, "value"),
        ({"path": "properties.url", "op": "eq", "value": None}, "value"),
        ({"path": "properties.url", "op": "contains", "value": ["a"]}, "value"),
        ({"path": "properties.url", "op": "starts_with", "value": False}, "value"),
        ({"path": "", "op": "eq", "value": "x"}, "path"),
        ({"op": "eq", "value": "x"}, "path"),
        ({"path": 5, "op": "eq", "value": "x"}, "path"),
        ({"path": "properties..url", "op": "eq", "value": "x"}, "path"),
        ({"path": "properties.url.", "op": "eq", "value": "x"}, "path"),
        ({"path": ".".join(["a"] * 9), "op": "eq", "value": "x"}, "path"),
        ({"path": "properties." + "x" * 65, "op": "eq", "value": "x"}, "path"),
    ],
)
def test_compile_condition_rejects_bad_input_naming_the_field(raw, field):
    with pytest.raises(engine.ConditionError) as error:
        engine.compile_condition(raw)
    assert error.value.field == field
    assert error.value.message


def test_compile_condition_accepts_the_limits():
    assert cond(".".join(["a"] * 8), "eq", "x").path == ".".join(["a"] * 8)
    assert cond("properties." + "x" * 64, "eq", "x")
    assert cond("properties.n", "in", list(range(500))).value == list(range(500))
    assert cond("properties.n", "gt", "10").value == "10"  # numeric strings are numbers
    assert cond("properties.url", "regex", "a" * 500).pattern is not None


def test_exists_ignores_any_value_given():
    assert cond("properties.url", "exists", "ignored").value is None


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_compile_condition_rejects_nan_as_a_number(op):
    with pytest.raises(engine.ConditionError):
        engine.compile_condition({"path": "traits.employees", "op": op, "value": "nan"})


def test_a_catastrophic_pattern_runs_in_linear_time():
    # given a pattern that makes a backtracking engine take exponential time
    condition = cond("properties.q", "regex", "(a+)+$")
    subject = {"properties": {"q": "a" * 50_000 + "b"}}

    started = time.perf_counter()
    matched = condition.holds(subject)
    elapsed = time.perf_counter() - started

    assert matched is False
    assert elapsed < 1.0
    assert cond("properties.q", "regex", "(a+)+$").holds({"properties": {"q": "a" * 50_000}})


# --- rules in the fold ----------------------------------------------------------------------------------------

PRICING = engine.Rule(
    7, "page_view", 15, (cond("properties.url", "contains", "/pricing"),), max_per_day=1, name="Pricing view"
)


def test_pricing_page_views_are_capped_once_per_day():
    # given two pricing views on one day
    same_day = [fact("page_view", 0, "a", url="/pricing"), fact("page_view", 60, "b", url="/Pricing#faq")]
    state, steps = engine.fold(same_day, rules=[PRICING], policy=NO_DECAY)
    # then the rule applies once
    assert state.score == 15
    assert [step.applied for step in steps] == [((7, 15),), ()]
    assert state.tallies[7] == engine.RuleTally(count=1, points=15, day=T0.date().isoformat(), day_count=1)

    # given the same two views on two days, then it applies on each
    two_days = [fact("page_view", 0, "a", url="/pricing"), fact("page_view", days(1), "b", url="/pricing")]
    state, steps = engine.fold(two_days, rules=[PRICING], policy=NO_DECAY)
    assert state.score == 30
    assert state.tallies[7].count == 2 and state.tallies[7].day_count == 1


def test_the_day_cap_uses_calendar_days_not_24_hours():
    late = T0.replace(hour=23, minute=50)
    events = [
        engine.EventFact("a", "page_view", late, {"url": "/pricing"}),
        engine.EventFact("b", "page_view", late + timedelta(minutes=20), {"url": "/pricing"}),  # 00:10 next day
        engine.EventFact("c", "page_view", late + timedelta(hours=5), {"url": "/pricing"}),
    ]
    assert engine.fold(events, rules=[PRICING], policy=NO_DECAY)[0].score == 30


def test_non_matching_events_do_not_use_up_the_cap():
    events = [fact("page_view", 0, "a", url="/blog"), fact("page_view", 1, "b", url="/pricing")]
    state, steps = engine.fold(events, rules=[PRICING], policy=NO_DECAY)
    assert state.score == 15 and steps[0].applied == () and steps[1].applied == ((7, 15),)


def test_max_per_day_above_one():
    rule = engine.Rule(1, "email_open", 10, max_per_day=2)
    events = [fact("email_open", m) for m in range(5)] + [fact("email_open", days(1) + m) for m in range(3)]
    assert engine.fold(events, rules=[rule], policy=NO_DECAY)[0].score == 40


def test_max_per_lead_caps_applications_for_ever():
    rule = engine.Rule(1, "signup", 30, max_per_lead=1)
    events = [fact("signup", 0), fact("signup", days(1)), fact("signup", days(30))]
    state, steps = engine.fold(events, rules=[rule], policy=NO_DECAY)
    assert state.score == 30
    assert [step.delta for step in steps] == [30, 0, 0]
    assert state.tallies[1].count == 1


def test_max_points_gives_a_partial_last_application():
    rule = engine.Rule(1, "download", 15, max_points=40)
    state, steps = engine.fold([fact("download", m) for m in range(4)], rules=[rule], policy=NO_DECAY)
    assert [step.applied for step in steps] == [((1, 15),), ((1, 15),), ((1, 10),), ()]
    assert state.score == 40
    assert state.tallies[1].count == 3 and state.tallies[1].points == 40


def test_max_points_caps_negative_rules_by_size():
    rule = engine.Rule(1, "bounce", -15, max_points=40)
    boost = engine.Rule(2, "demo_request", 100)
    events = [fact("demo_request", 0), *[fact("bounce", m) for m in range(1, 5)]]
    state, steps = engine.fold(events, rules=[rule, boost], policy=NO_DECAY)
    assert [step.applied for step in steps[1:]] == [((1, -15),), ((1, -15),), ((1, -10),), ()]
    assert state.score == 60 and state.tallies[1].points == -40


def test_caps_combine():
    rule = engine.Rule(1, "page_view", 10, max_per_day=2, max_per_lead=3, max_points=25)
    events = [fact("page_view", m) for m in range(3)] + [fact("page_view", days(1) + m) for m in range(3)]
    state, steps = engine.fold(events, rules=[rule], policy=NO_DECAY)
    assert [step.delta for step in steps] == [10, 10, 0, 5, 0, 0]
    assert state.tallies[1] == engine.RuleTally(3, 25, (T0 + timedelta(days=1)).date().isoformat(), 1)


def test_negative_points_lower_the_score_and_clamp_at_zero():
    rules = [engine.Rule(1, "signup", 30), engine.Rule(2, "unsubscribe", -20)]
    events = [fact("signup", 0), fact("unsubscribe", 1), fact("unsubscribe", 2)]
    state, steps = engine.fold(events, rules=rules, policy=NO_DECAY)
    assert [(step.old_score, step.new_score) for step in steps] == [(0, 30), (30, 10), (10, 0)]
    assert state.clamped == 10  # -20 applied to 10: 10 points lost to the clamp
    assert state.tallies[2].points == -40


def test_a_wildcard_rule_scores_every_event_beside_the_typed_rules():
    rules = [engine.Rule(1, "page_view", 5), engine.Rule(2, "*", 1)]
    state, steps = engine.fold(
        [fact("page_view", 0), fact("anything", 1), fact("signup", 2)], rules=rules, policy=NO_DECAY
    )
    assert [step.applied for step in steps] == [((1, 5), (2, 1)), ((2, 1),), ((2, 1),)]
    assert state.score == 8


def test_a_wildcard_rule_with_conditions_and_caps():
    rule = engine.Rule(1, "*", 3, (cond("properties.utm", "eq", "linkedin"),), max_per_lead=2)
    events = [fact("page_view", 0, utm="LinkedIn"), fact("signup", 1, utm="google"), fact("x", 2, utm="linkedin")]
    events.append(fact("y", 3, utm="linkedin"))
    assert engine.fold(events, rules=[rule], policy=NO_DECAY)[0].score == 6


def test_every_rule_matching_an_event_applies():
    rules = [
        engine.Rule(1, "page_view", 5),
        PRICING,
        engine.Rule(9, "page_view", 20, (cond("properties.plan", "in", ["team", "enterprise"]),)),
    ]
    state, steps = engine.fold([fact("page_view", 0, url="/pricing", plan="Team")], rules=rules, policy=NO_DECAY)
    assert steps[0].applied == ((1, 5), (7, 15), (9, 20))
    assert state.score == 40


def test_a_zero_point_rule_still_counts_as_applied():
    state, steps = engine.fold([fact("ping", 0)], rules=[engine.Rule(1, "ping", 0)], policy=NO_DECAY)
    assert steps[0].applied == ((1, 0),) and state.tallies[1].count == 1 and state.score == 0


# --- decay ----------------------------------------------------------------------------------------------------

DECAY = engine.Decay(rate_percent=5, grace_days=7)


@pytest.mark.parametrize(
    ("idle", "expected"),
    [
        (timedelta(0), 100),
        (timedelta(days=7), 100),
        (timedelta(days=7, hours=23, minutes=59), 100),  # whole days only
        (timedelta(days=8), 95),
        (timedelta(days=9), 90),  # 100 * 0.95 ** 2 = 90.25
        (timedelta(days=10), 86),  # 85.74
        (timedelta(days=10, hours=20), 86),
        (timedelta(days=37), 21),  # 100 * 0.95 ** 30 = 21.46
    ],
)
def test_decay_after_the_grace_period_compounds_daily(idle, expected):
    assert DECAY.apply(100, T0, T0 + idle) == expected


def test_decay_edge_cases():
    assert DECAY.apply(100, None, T0) == 100  # never seen
    assert DECAY.apply(0, T0, T0 + timedelta(days=30)) == 0
    assert DECAY.apply(100, T0, T0 - timedelta(days=30)) == 100  # clock skew: never grows
    assert engine.Decay(enabled=False).apply(100, T0, T0 + timedelta(days=300)) == 100
    assert engine.Decay(rate_percent=0).apply(100, T0, T0 + timedelta(days=300)) == 100
    assert engine.Decay(rate_percent=100, grace_days=0).apply(100, T0, T0 + timedelta(days=1)) == 0
    assert engine.Decay(rate_percent=10, grace_days=0).days(T0, T0 + timedelta(days=3, hours=1)) == 3
    assert engine.Decay(enabled=False).days(T0, T0 + timedelta(days=30)) == 0


def test_the_default_policy_decays_5_percent_a_day_after_7_days():
    assert engine.Policy().decay == DECAY
    assert engine.Policy().decay.enabled


def test_decay_applies_between_events_inside_the_fold():
    # given 100 points, then 10 idle days (3 past the grace period), then a page view
    rules = [engine.Rule(1, "contract_signed", 100), engine.Rule(2, "page_view", 5)]
    policy = engine.Policy(decay=DECAY)
    events = [fact("contract_signed", 0), fact("page_view", days(10))]

    state, steps = engine.fold(events, rules=rules, policy=policy)

    # then the score decays to 86 before the page view adds 5
    assert [(s.old_score, s.decay, s.new_score) for s in steps] == [(0, 0, 100), (100, -14, 91)]
    assert state.score == 91 and state.decayed == -14
    # and the idle clock restarts at the page view: within the grace period nothing more is lost
    later, _ = engine.fold([fact("page_view", days(17))], rules=rules, policy=policy, state=state)
    assert later.score == 96 and later.decayed == -14


def test_decay_disabled_in_the_policy_keeps_the_score():
    rules = [engine.Rule(1, "contract_signed", 100), engine.Rule(2, "page_view", 5)]
    state, steps = engine.fold([fact("contract_signed", 0), fact("page_view", days(100))], rules=rules, policy=NO_DECAY)
    assert state.score == 105 and state.decayed == 0 and steps[1].decay == 0


def test_fold_state_round_trips_through_json_with_tallies_clamp_and_decay():
    rules = [PRICING, engine.Rule(2, "unsubscribe", -20), engine.Rule(3, "signup", 40)]
    events = [
        fact("unsubscribe", 0),
        fact("page_view", 1, url="/pricing"),
        fact("signup", 2),
        fact("page_view", days(12), url="/pricing"),
    ]
    state, _ = engine.fold(events, rules=rules, policy=engine.Policy(decay=DECAY))
    assert state.clamped == 20 and state.decayed < 0 and len(state.tallies) == 3

    stored = json.loads(json.dumps(state.to_json()))

    assert engine.FoldState.from_json(stored) == state
    assert stored["rules"]["7"] == [2, 30, (T0 + timedelta(days=12)).date().isoformat(), 1]
    assert engine.FoldState.from_json(None) == engine.FoldState()


# --- fit and grade --------------------------------------------------------------------------------------------

FIT_RULES = [
    engine.Rule(1, "", 15, (cond("traits.employees", "gte", 200),), name="Big company"),
    engine.Rule(2, "", -10, (cond("email", "ends_with", "@gmail.com"),), name="Free mail"),
    engine.Rule(3, "", 20, (cond("traits.title", "contains", "VP"),), name="VP"),
]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"email": "a@acme.test", "traits": {"employees": 500, "title": "VP Sales"}}, (35, [(1, 15), (3, 20)])),
        ({"email": "A@Gmail.com", "traits": {"employees": "199"}}, (-10, [(2, -10)])),
        (
            {"email": "a@gmail.com", "traits": {"title": "svp marketing", "employees": "200"}},
            (25, [(1, 15), (2, -10), (3, 20)]),
        ),
        ({"email": "", "traits": {}}, (0, [])),
        ({}, (0, [])),
    ],
)
def test_fit_score_adds_each_matching_fit_rule_once(profile, expected):
    assert engine.fit_score(profile, FIT_RULES) == expected


@pytest.mark.parametrize(
    ("fit", "grade"), [(100, "A"), (25, "A"), (24, "B"), (10, "B"), (9, "C"), (0, "C"), (-1, "D"), (-50, "D")]
)
def test_grade_for_boundaries(fit, grade):
    assert engine.grade_for(fit) == grade


def test_total_score_adds_fit_to_engagement_within_the_range():
    policy = engine.Policy(max_score=100)
    assert engine.total_score(40, 25, policy) == 65
    assert engine.total_score(5, -10, policy) == 0
    assert engine.total_score(90, 20, policy) == 100


# --- intelligence ---------------------------------------------------------------------------------------------


def intel(last=0, previous=0, idle_days: float | None = 0, stage="cold") -> engine.Intelligence:
    now = T0 + timedelta(days=60)
    last_event_at = None if idle_days is None else now - timedelta(days=idle_days)
    return engine.intelligence(
        events_last_24h=last, events_previous_24h=previous, last_event_at=last_event_at, now=now, stage=stage
    )


@pytest.mark.parametrize(
    ("last", "previous", "trend"),
    [
        (0, 0, "steady"),
        (1, 0, "increasing"),
        (12, 10, "steady"),  # +20 %: inside the band
        (13, 10, "increasing"),
        (8, 10, "steady"),  # -20 %: inside the band
        (7, 10, "decreasing"),
        (0, 1, "decreasing"),
        (5, 5, "steady"),
    ],
)
def test_trend_against_the_previous_24_hours(last, previous, trend):
    assert intel(last=last, previous=previous).trend == trend


@pytest.mark.parametrize(
    ("idle_days", "risk", "shown"),
    [
        (0, "low", 0),
        (7.9, "low", 7),
        (8, "medium", 8),
        (14.9, "medium", 14),
        (15, "high", 15),
        (None, "high", None),
        (-1, "low", 0),  # an event stamped in the future
    ],
)
def test_risk_by_idle_days(idle_days, risk, shown):
    result = intel(idle_days=idle_days)
    assert (result.risk, result.days_since_last_event) == (risk, shown)


@pytest.mark.parametrize(
    ("stage", "last", "idle_days", "action"),
    [
        ("qualified", 0, 0, "immediate_sales_contact"),
        ("qualified", 0, 10, "immediate_sales_contact"),  # medium risk: still call
        ("qualified", 9, 20, "re_engagement_required"),
        ("hot", 5, 0, "immediate_sales_contact"),
        ("hot", 4, 0, "schedule_demo"),
        ("hot", 8, 10, "schedule_demo"),  # fast but not recent
        ("hot", 0, 30, "re_engagement_required"),
        ("warm", 3, 1, "nurture_campaign"),
        ("warm", 0, 9, "re_engagement_required"),
        ("warm", 0, 20, "re_engagement_required"),
        ("cold", 10, 0, "monitor"),
        ("cold", 0, 30, "monitor"),
        ("cold", 0, None, "monitor"),
    ],
)
def test_next_action(stage, last, idle_days, action):
    assert intel(last=last, idle_days=idle_days, stage=stage).next_action == action


def test_intelligence_reports_velocity():
    result = intel(last=14, previous=3, stage="hot")
    assert (result.velocity, result.velocity_score) == (14, 10)


# --- properties -----------------------------------------------------------------------------------------------

PROPERTY_POLICY = engine.Policy(max_score=120, decay=engine.Decay(rate_percent=10, grace_days=2))
PROPERTY_RULES = [
    engine.Rule(1, "page_view", 5),
    engine.Rule(2, "page_view", 15, (cond("properties.url", "contains", "/pricing"),), max_per_day=1),
    engine.Rule(3, "signup", 30, max_per_lead=1),
    engine.Rule(4, "download", 20, max_points=50),
    engine.Rule(5, "unsubscribe", -25),
    engine.Rule(6, "*", 1, (cond("properties.plan", "in", ["team", "enterprise"]),), max_points=7),
    engine.Rule(7, "demo_request", 50, (cond("properties.seats", "gte", 10),), max_per_day=2, max_per_lead=3),
    engine.Rule(8, "email_open", -3, (cond("properties.url", "not_exists"),), max_points=10),
]

property_events = st.lists(
    st.tuples(
        st.sampled_from(["page_view", "signup", "download", "unsubscribe", "demo_request", "email_open", "other"]),
        st.integers(0, 60 * 24 * 40),  # minutes over 40 days: several decay gaps
        st.sampled_from(["/pricing", "/blog", None]),
        st.sampled_from(["team", "free", None]),
        st.integers(0, 30),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda item: item[1],
).map(
    lambda items: [
        engine.EventFact(
            f"e{minute:06d}",
            name,
            T0 + timedelta(minutes=minute),
            {k: v for k, v in (("url", url), ("plan", plan), ("seats", seats)) if v is not None},
        )
        for name, minute, url, plan, seats in items
    ]
)


def fold(events, state=None):
    return engine.fold(events, rules=PROPERTY_RULES, policy=PROPERTY_POLICY, state=state)


@settings(max_examples=200, deadline=None)
@given(events=property_events, data=st.data())
def test_property_arrival_order_never_changes_the_result(events, data):
    shuffled = data.draw(st.permutations(events))
    assert fold(shuffled) == fold(events)


@settings(max_examples=200, deadline=None)
@given(events=property_events, data=st.data())
def test_property_incremental_fold_equals_a_full_refold(events, data):
    ordered = sorted(events, key=lambda e: e.key)
    splits = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=3)))
    state, steps = None, []
    for start, end in itertools.pairwise([0, *splits, len(ordered)]):
        state = engine.FoldState.from_json(json.loads(json.dumps(state.to_json()))) if state else None
        state, more = fold(ordered[start:end], state=state)
        steps += more

    full_state, full_steps = fold(events)

    assert state == full_state
    assert steps == full_steps
    for previous, step in itertools.pairwise(full_steps):
        assert step.old_score == previous.new_score


@settings(max_examples=300, deadline=None)
@given(events=property_events)
def test_property_the_breakdown_adds_up_to_the_score(events):
    state, steps = fold(events)
    assert sum(tally.points for tally in state.tallies.values()) + state.clamped + state.decayed == state.score
    assert 0 <= state.score <= PROPERTY_POLICY.max_score
    # and per rule, the tallies are the sum of what the steps applied
    applied: dict[int, list[int]] = {}
    for step in steps:
        for rule_id, points in step.applied:
            applied.setdefault(rule_id, []).append(points)
    assert {rule_id: (len(p), sum(p)) for rule_id, p in applied.items()} == {
        rule_id: (tally.count, tally.points) for rule_id, tally in state.tallies.items()
    }
