"""The fit x engagement matrix cell as a pure function: every grade and tier boundary (no database)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring import engine

POLICY = engine.Policy(warm_threshold=11, hot_threshold=31, qualified_threshold=60)


@pytest.mark.parametrize(
    ("engagement", "tier"),
    [(10_000, 1), (31, 1), (30, 2), (11, 2), (10, 3), (0, 3), (-5, 3)],
)
def test_engagement_tier_boundaries_are_the_models_hot_and_warm_thresholds(engagement, tier):
    assert engine.engagement_tier(engagement, POLICY) == tier


def test_tiers_follow_each_models_own_thresholds():
    low = engine.Policy(warm_threshold=5, hot_threshold=8, qualified_threshold=12)
    assert [engine.engagement_tier(e, low) for e in (4, 5, 7, 8)] == [3, 2, 2, 1]
    assert [engine.engagement_tier(e, POLICY) for e in (4, 5, 7, 8)] == [3, 3, 3, 3]


@pytest.mark.parametrize(
    ("fit", "engagement", "cell"),
    [
        (25, 31, "A1"), (25, 30, "A2"), (25, 11, "A2"), (25, 10, "A3"),
        (24, 31, "B1"), (10, 11, "B2"), (10, 10, "B3"),
        (9, 31, "C1"), (0, 30, "C2"), (0, 0, "C3"),
        (-1, 31, "D1"), (-1, 11, "D2"), (-50, 10, "D3"),
    ],
)  # fmt: skip
def test_matrix_cell_is_the_fit_grade_then_the_engagement_tier(fit, engagement, cell):
    assert engine.matrix_cell(engine.grade_for(fit), engagement, POLICY) == cell


def test_the_cells_run_from_best_fit_and_most_engaged_to_worst():
    assert engine.MATRIX_CELLS == ("A1", "A2", "A3", "B1", "B2", "B3", "C1", "C2", "C3", "D1", "D2", "D3")


def test_the_cell_ignores_fit_points_in_the_engagement_tier():
    # a total score of 40 (hot) from fit alone is still tier 3: the tier is behaviour only
    assert engine.matrix_cell(engine.grade_for(40), 0, POLICY) == "A3"


@given(
    fit=st.integers(-1000, 1000),
    engagement=st.integers(0, 10_000),
    warm=st.integers(1, 500),
    gap=st.integers(1, 500),
)
def test_every_lead_lands_in_exactly_one_cell_and_more_engagement_never_lowers_its_tier(fit, engagement, warm, gap):
    policy = engine.Policy(warm_threshold=warm, hot_threshold=warm + gap, qualified_threshold=warm + 2 * gap)
    cell = engine.matrix_cell(engine.grade_for(fit), engagement, policy)
    assert cell in engine.MATRIX_CELLS
    assert engine.engagement_tier(engagement + 1, policy) <= engine.engagement_tier(engagement, policy)
