"""The company roll-up: a pure function of the set of member results."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from companies.rollup import CompanyResult, Member, RollupConfig, company_moved, company_rollup
from scoring.contracts import Condition, Policy, Rule

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = Policy()  # cold < 11 <= warm < 31 <= hot < 60 <= qualified, range 0..10000
CONFIG = RollupConfig()


def rollup(members, *, traits=None, policy=POLICY, config=CONFIG):
    return company_rollup(members, traits=traits or {}, policy=policy, now=NOW, config=config)


def active(lead_id, score, days_ago=1):
    return Member(lead_id, score, NOW - timedelta(days=days_ago))


def test_the_top_three_members_plus_breadth_for_each_engaged_member():
    members = [active(1, 25), active(2, 20), active(3, 15), active(4, 12), active(5, 5)]
    result = rollup(members)
    assert (result.top, result.engaged, result.breadth) == (60, 4, 40)  # 25+20+15; 1-4 are warm and recent
    assert (result.score, result.stage) == (100, "qualified")
    assert result.contributions == {1: 35, 2: 30, 3: 25, 4: 10, 5: 0}


def test_three_warm_leads_make_a_hot_company():
    leads = [active(1, 12), active(2, 12), active(3, 12)]
    assert all(POLICY.warm_threshold <= lead.score < POLICY.hot_threshold for lead in leads)
    assert rollup(leads, config=RollupConfig(breadth_points=0)).stage == "hot"  # 36
    assert rollup(leads[:2], config=RollupConfig(breadth_points=0)).stage == "warm"  # 24
    assert rollup(leads).stage == "qualified"  # 36 + 3 engaged x 10


def test_engaged_means_warm_and_active_within_the_window():
    members = [active(1, 40, days_ago=31), active(2, 40, days_ago=29), Member(3, 40, None), active(4, 10)]
    assert rollup(members).engaged == 1


def test_breadth_is_capped():
    members = [active(lead_id, 20) for lead_id in range(1, 9)]
    result = rollup(members, config=RollupConfig(breadth_cap=5, breadth_points=10))
    assert (result.engaged, result.breadth) == (8, 50)


def test_company_fit_rules_apply_once_on_the_company_traits():
    rules = (
        Rule(id=7, event_type="*", points=20, conditions=(Condition("industry", "eq", "software"),)),
        Rule(id=8, event_type="*", points=-5, conditions=(Condition("employees", "lt", 10),)),
        Rule(id=9, event_type="*", points=99, conditions=(Condition("plan", "eq", "enterprise"),)),
    )
    result = rollup([active(1, 5)], traits={"industry": "Software", "employees": 3, "plan": "free"},
                    config=RollupConfig(fit_rules=rules))  # fmt: skip
    assert (result.fit, result.fit_applied, result.score) == (15, ((7, 20), (8, -5)), 20)


def test_the_score_is_clamped_to_the_models_range():
    small = Policy(warm_threshold=5, hot_threshold=10, qualified_threshold=20, max_score=50)
    assert rollup([active(1, 50), active(2, 50)], policy=small).score == 50
    minus = (Rule(id=1, event_type="*", points=-100, conditions=()),)
    assert rollup([active(1, 5)], config=RollupConfig(fit_rules=minus)).score == 0


def test_the_company_may_have_its_own_thresholds():
    own = Policy(warm_threshold=100, hot_threshold=200, qualified_threshold=300)
    assert rollup([active(1, 50)], config=RollupConfig(thresholds=own)).stage == "cold"
    assert rollup([active(1, 50)]).stage == "qualified"  # 50 + 10 breadth


def test_no_members_is_a_cold_zero():
    result = rollup([])
    assert (result.score, result.stage, result.contributions) == (0, "cold", {})


def test_a_lead_is_a_member_once():
    with pytest.raises(ValueError, match="once"):
        rollup([active(1, 5), active(1, 6)])


def test_the_mover_is_the_member_whose_contribution_changed_most():
    before = rollup([active(1, 30), active(2, 20)])
    after = company_moved(rollup([active(1, 30), active(2, 45), active(3, 2)]), previous=before.contributions)
    assert after.moved_by == 2
    gone = company_moved(rollup([active(2, 20)]), previous=before.contributions)
    assert gone.moved_by == 1  # a member leaving moves the company too
    same = company_moved(rollup([active(1, 30), active(2, 20)]), previous=before.contributions)
    assert same.moved_by is None
    assert after.to_json()["movedBy"] == 2 and after.to_json()["contributions"]["2"] == 55


members_strategy = st.lists(
    st.builds(
        Member,
        lead_id=st.integers(1, 10**6),
        score=st.integers(0, 200),
        active_at=st.one_of(st.none(), st.integers(0, 60).map(lambda days: NOW - timedelta(days=days))),
    ),
    max_size=12,
    unique_by=lambda member: member.lead_id,
)
configs = st.builds(
    RollupConfig, top_n=st.integers(0, 5), breadth_points=st.integers(0, 30), breadth_cap=st.integers(0, 6),
    window_days=st.integers(1, 45),
)  # fmt: skip
policies = st.sampled_from(
    [POLICY, Policy(warm_threshold=20, hot_threshold=60, qualified_threshold=150, max_score=300)]
)


def score_of(result: CompanyResult) -> tuple[int, str]:
    return result.score, result.stage


@given(members=members_strategy, config=configs, policy=policies, seed=st.randoms())
def test_member_order_and_arrival_order_do_not_matter(members, config, policy, seed):
    shuffled = list(members)
    seed.shuffle(shuffled)
    assert rollup(shuffled, config=config, policy=policy) == rollup(members, config=config, policy=policy)
    # arriving one at a time (each arrival a recompute): the last result is the whole set's
    arrived: list[Member] = []
    result = rollup([], config=config, policy=policy)
    for member in shuffled:
        arrived.append(member)
        result = rollup(arrived, config=config, policy=policy)
    assert result == rollup(members, config=config, policy=policy)


@given(members=members_strategy, config=configs, policy=policies, data=st.data())
def test_removing_a_member_equals_never_having_had_it(members, config, policy, data):
    if not members:
        return
    gone = data.draw(st.sampled_from(members))
    rest = [member for member in members if member is not gone]
    removed = rollup(rest, config=config, policy=policy)
    assert removed == rollup(list(reversed(rest)), config=config, policy=policy)
    assert gone.lead_id not in removed.contributions
    assert company_moved(removed, previous={}).contributions == removed.contributions


@given(members=members_strategy, config=configs, policy=policies, data=st.data())
def test_raising_a_members_score_never_lowers_the_company(members, config, policy, data):
    if not members:
        return
    index = data.draw(st.integers(0, len(members) - 1))
    raised = list(members)
    member = raised[index]
    raised[index] = Member(member.lead_id, member.score + data.draw(st.integers(0, 100)), member.active_at)
    assert rollup(raised, config=config, policy=policy).score >= rollup(members, config=config, policy=policy).score


def test_the_properties_see_a_difference_when_there_is_one():
    # the assertions above compare results that can differ: one member more changes the company
    members = [active(lead_id, random.Random(lead_id).randint(11, 40)) for lead_id in range(1, 5)]
    assert score_of(rollup(members)) != score_of(rollup(members[:-1]))
