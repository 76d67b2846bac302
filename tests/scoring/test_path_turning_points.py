"""A lead change carries the turning points of its score path: every crossing survives the squeeze."""

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from automations.triggers.stage_entered import stage_entered
from scoring import engine
from scoring.services.fold import _squeeze

POLICY = engine.Policy(warm_threshold=10, hot_threshold=20, qualified_threshold=30)
paths = st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60)


def crossed(path: list[int], threshold: int) -> tuple[bool, bool]:
    """(crossed upwards, crossed downwards) between two consecutive points."""
    return (any(a < threshold <= b for a, b in pairwise(path)), any(b < threshold <= a for a, b in pairwise(path)))


def staged(path: list[int]) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    return list(pairwise((score, engine.stage_for(score, POLICY)) for score in path))


@given(paths, st.integers(min_value=-1, max_value=42))
def test_every_threshold_crossed_on_the_path_is_crossed_between_its_turning_points(path, threshold):
    squeezed = _squeeze(path)
    assert squeezed[0] == path[0] and squeezed[-1] == path[-1]
    assert crossed(squeezed, threshold) == crossed(path, threshold)


@given(paths, st.sampled_from(engine.STAGES))
def test_a_stage_entered_on_the_path_is_entered_on_its_turning_points(path, stage):
    assert (stage_entered(staged(_squeeze(path)), stage) is None) == (stage_entered(staged(path), stage) is None)


def test_runs_in_one_direction_keep_their_ends():
    assert _squeeze([5, 10, 10, 15, 30, 20, 12, 12, 25]) == [5, 30, 12, 25]
    assert len(_squeeze(list(range(0, 2000, 2)))) == 2
    zigzag = [i % 2 for i in range(2000)]
    assert len(_squeeze(zigzag)) == 500 and _squeeze(zigzag)[-1] == zigzag[-1]
