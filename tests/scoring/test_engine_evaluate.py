"""`engine.lead_evaluate`: the one evaluation batch scoring, refit, decay, re-score and preview share."""

import itertools
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import engine
from tests.scoring.test_engine import POLICY, RULES, T0, event_lists, fact

FIT = [engine.Rule(90, "", 12, (engine.Condition("traits.role", "eq", "cto"),))]
NOW = T0 + timedelta(days=20)


def evaluate(lead: engine.Materialised, events, *, refold=False, purpose="score", profile=None, now=NOW):
    return engine.lead_evaluate(
        lead=lead, events=events, profile=profile or {"traits": {"role": "cto"}}, rules=RULES, fit_rules=FIT,
        policy=POLICY, now=now, refold=refold, purpose=purpose,
    )  # fmt: skip


def materialised(evaluation: engine.Evaluation) -> engine.Materialised:
    """What the service stores of an evaluation (and reads back next time)."""
    return engine.Materialised(
        score=evaluation.score, engagement=evaluation.engagement, fit=evaluation.fit, stage=evaluation.stage,
        state=evaluation.state, fit_applied=evaluation.fit_applied,
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(events=event_lists, split=st.integers(0, 40))
def test_evaluating_in_two_batches_equals_one_refold_and_the_history_chains(events, split):
    ordered = sorted(events, key=lambda e: e.key)
    first = evaluate(engine.Materialised(), ordered[:split])
    second = evaluate(materialised(first), ordered[split:])
    full = evaluate(engine.Materialised(), events, refold=True)

    assert (second.score, second.stage, second.state, second.fit) == (full.score, full.stage, full.state, full.fit)
    history = [*first.history, *second.history]
    for previous, step in itertools.pairwise(history):
        assert step.old_score == previous.new_score
    assert history[-1].new_score == second.score
    assert sum(1 for step in history if step.event_id) == len(events)


def test_decay_is_a_step_and_evaluating_again_the_same_day_writes_nothing():
    scored = evaluate(engine.Materialised(), [fact("demo_request", 0)], now=T0)
    assert (scored.score, scored.engagement) == (62, 50)

    decayed = evaluate(materialised(scored), (), purpose="decay", now=T0 + timedelta(days=10))
    again = evaluate(materialised(decayed), (), purpose="decay", now=T0 + timedelta(days=10, hours=5))

    assert [(s.reason, s.old_score, s.new_score) for s in decayed.history] == [("decay", 62, 55)]  # 50*.95**3 + 12
    assert decayed.writes and not again.writes and again.history == ()


def test_a_refit_moves_only_the_fit_and_no_fit_change_writes_nothing():
    scored = evaluate(engine.Materialised(), [fact("signup", 0)], now=T0)
    same = evaluate(materialised(scored), (), now=T0)
    demoted = evaluate(materialised(scored), (), profile={"traits": {"role": "intern"}}, now=T0)

    assert not same.writes
    assert [(s.reason, s.old_score, s.new_score) for s in demoted.history] == [("fit", 42, 30)]
    assert (demoted.fit, demoted.grade, demoted.path) == (0, "C", (42, 30))


def test_a_rescore_leaves_an_audit_step_and_a_path_for_automations():
    scored = evaluate(engine.Materialised(), [fact("page_view", 0), fact("signup", 1)], now=T0)
    rescored = engine.lead_evaluate(
        lead=materialised(scored), events=[fact("page_view", 0), fact("signup", 1)], profile={}, rules=RULES[:1],
        fit_rules=FIT, policy=POLICY, now=T0, purpose="rescore",
    )  # fmt: skip

    assert rescored.refolded and rescored.score == 5
    assert [(s.reason, s.old_score, s.new_score) for s in rescored.history] == [
        ("rule", 0, 5),
        ("rule", 5, 5),
        ("rescore", 47, 5),
    ]
    assert rescored.path == (47, 5)
