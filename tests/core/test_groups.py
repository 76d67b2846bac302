"""Group commit (core.groups.GroupCommit): concurrent callers share a round, each gets its own outcome."""

import threading
import time

import pytest

from core.groups import GroupCommit
from core.metrics import GROUPED_ITEMS


class Recorder:
    """A round function that records each round's items and, while `gate` is clear, holds the first round."""

    def __init__(self, outcome=lambda item: item * 10) -> None:
        self.rounds: list[list] = []
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.outcome = outcome

    def __call__(self, items):
        self.rounds.append(list(items))
        self.threads.append(threading.current_thread().name)
        self.started.set()
        if len(self.rounds) == 1:
            assert self.gate.wait(5)
        return [self.outcome(item) for item in items]


def submit_in_threads(group, items, results):
    threads = [
        threading.Thread(target=lambda item=item: results.__setitem__(item, _outcome(group, item)), name=f"t{item}")
        for item in items
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.01)  # queued in this order
    return threads


def _outcome(group, item):
    try:
        return group.submit(item)
    except Exception as error:
        return error


def grouped(name: str) -> float:
    return GROUPED_ITEMS.labels(group=name)._value.get()


def test_a_lone_caller_runs_its_item_at_once_in_its_own_thread():
    run = Recorder()
    run.gate.set()
    group = GroupCommit("lone", run)
    before = grouped("lone")
    assert group.submit(4) == 40
    assert run.rounds == [[4]]
    assert run.threads == [threading.current_thread().name]
    assert grouped("lone") == before  # a round of one is not a shared round


def test_callers_arriving_during_a_round_share_the_next_one_led_by_the_first_of_them():
    run = Recorder()
    group = GroupCommit("shared", run)
    before = grouped("shared")
    results: dict = {}
    first = submit_in_threads(group, [1], results)
    assert run.started.wait(5)
    others = submit_in_threads(group, [2, 3, 4, 5], results)
    time.sleep(0.05)
    assert run.rounds == [[1]]  # nobody runs while the round is under way
    run.gate.set()
    for thread in first + others:
        thread.join(5)

    assert run.rounds == [[1], [2, 3, 4, 5]]
    assert run.threads == ["t1", "t2"]  # each leader runs one round: the first waiting caller leads the next
    assert results == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    assert grouped("shared") - before == 4


def test_each_caller_gets_its_own_exception_and_a_raised_one_reaches_every_caller_of_the_round():
    def outcome(item):
        return ValueError(f"bad {item}") if item % 2 else item

    run = Recorder(outcome)
    group = GroupCommit("errors", run)
    results: dict = {}
    threads = submit_in_threads(group, [2], results)
    assert run.started.wait(5)
    threads += submit_in_threads(group, [3, 4], results)
    run.gate.set()
    for thread in threads:
        thread.join(5)
    assert results[2] == 2 and results[4] == 4
    assert str(results[3]) == "bad 3"

    def broken(items):
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):
        GroupCommit("broken", broken).submit(1)

    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        GroupCommit("wrong", lambda items: []).submit(1)


def test_items_with_equal_keys_never_share_a_round_and_rounds_are_bounded():
    run = Recorder()
    group = GroupCommit("keyed", run, key=lambda item: item % 3, max_items=2)
    results: dict = {}
    threads = submit_in_threads(group, [0], results)
    assert run.started.wait(5)
    threads += submit_in_threads(group, [3, 1, 4, 2], results)  # keys 0, 1, 1, 2
    run.gate.set()
    for thread in threads:
        thread.join(5)

    assert run.rounds[0] == [0]
    assert all(len(r) <= 2 and len({i % 3 for i in r}) == len(r) for r in run.rounds)
    assert sorted(i for r in run.rounds for i in r) == [0, 1, 2, 3, 4]
    assert results == {0: 0, 1: 10, 2: 20, 3: 30, 4: 40}
