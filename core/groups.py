"""Group commit: concurrent callers of one process share a round trip.

A web process serves requests on several threads (leadpulse/http.py). Under load, many of them
each make the same small round trip at the same moment (an ingest admission in Redis, a
single event's INSERT), and each pays the fixed cost of its own: the client library's work, a
system call each way, the server parsing, planning and committing one statement. A
`GroupCommit` runs those of a moment as one, as a database's group commit does with its log
flushes (or LevelDB's writer queue):

- a caller that finds nobody waiting runs its own item at once, alone: a lone request is never
  delayed, and there is no timer;
- callers that arrive while a round runs queue up; when the round ends, the first of them
  leads the next round, which runs every item queued by then (up to `max_items`) in one call
  of `run`. Each caller gets its own result, or its own exception, in its own thread.

A caller runs at most one round (its own), so no thread is kept busy serving others.
"""

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from . import metrics

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiter:
    __slots__ = ("done", "item", "outcome", "turn")

    def __init__(self, item: Any, lock: threading.Lock) -> None:
        self.item = item
        self.turn = threading.Condition(lock)
        self.done = False
        self.outcome: Any = None


class GroupCommit(Generic[Item, Result]):
    """Run `run(items)` for the items of concurrent `submit` calls, a round at a time (see the module).

    `run` returns one result per item, in order: a result, or an exception instance that is raised in
    that item's caller. An exception `run` raises is raised in every caller of the round. Items with
    equal `key(item)` never share a round (a later one waits for the next): `run` may then treat the
    items of a round as distinct.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_items: int = 64,
        key: Callable[[Item], Hashable] | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self._max_items = max_items
        self._key = key
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has none of the parent's callers

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []

    def submit(self, item: Item) -> Result:
        with self._lock:
            waiter = _Waiter(item, self._lock)
            self._queue.append(waiter)
            while not waiter.done and self._queue[0] is not waiter:
                waiter.turn.wait()
            if not waiter.done:
                group = self._round()
        if not waiter.done:
            self._lead(group)
        if isinstance(waiter.outcome, BaseException):
            raise waiter.outcome
        return waiter.outcome

    def _round(self) -> list[_Waiter]:
        """The queued items the front waiter runs now (under the lock; they stay queued until done)."""
        if self._key is None:
            return self._queue[: self._max_items]
        group, keys = [], set()
        for waiter in self._queue:
            key = self._key(waiter.item)
            if key not in keys:
                keys.add(key)
                group.append(waiter)
                if len(group) == self._max_items:
                    break
        return group

    def _lead(self, group: list[_Waiter]) -> None:
        outcomes: Sequence[Any]
        try:
            outcomes = self._run([waiter.item for waiter in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"{self.name}: {len(outcomes)} results for {len(group)} items")
        except BaseException as error:  # every caller of the round gets it, the leader too
            outcomes = [error] * len(group)
        if len(group) > 1:
            metrics.group_round(group=self.name, items=len(group))
        with self._lock:
            for waiter, outcome in zip(group, outcomes, strict=True):
                waiter.outcome, waiter.done = outcome, True
            done = {id(waiter) for waiter in group}
            self._queue[:] = [waiter for waiter in self._queue if id(waiter) not in done]
            for waiter in group[1:]:
                waiter.turn.notify()
            if self._queue:
                self._queue[0].turn.notify()  # it leads the next round
