"""The score as a pure function of the event log: `fold(events, rules, ...)`.

No ORM here. Services feed plain values in and persist what comes out, so the same
code scores incrementally, refolds after a late event and can be tested without a
database.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from operator import attrgetter
from typing import Any, NamedTuple

STAGES = ("cold", "warm", "hot", "qualified")
OPERATORS = (
    "eq", "neq", "contains", "not_contains", "starts_with", "ends_with", "in",
    "gt", "gte", "lt", "lte", "exists", "not_exists", "regex",
)  # fmt: skip
MISSING = object()


@dataclass(frozen=True)
class Condition:
    """`path op value` on an event (`properties.url contains "/pricing"`) or a lead profile."""

    path: str
    op: str
    value: Any = None
    pattern: Any = None  # the compiled (RE2, linear-time) regex for `regex`

    def holds(self, subject: dict[str, Any]) -> bool:
        actual = resolve(subject, self.path)
        if self.op == "exists":
            return actual is not MISSING and actual is not None
        if self.op == "not_exists":
            return actual is MISSING or actual is None
        if actual is MISSING or actual is None:
            return self.op in ("neq", "not_contains")
        return _OPERATIONS[self.op](actual, self.value, self.pattern)


def resolve(subject: dict[str, Any], path: str) -> Any:
    value: Any = subject
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _text(value: Any) -> str:
    return str(value).lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _equals(actual: Any, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return _text(actual) == _text(expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_equals(item, expected) for item in actual)
    return _text(expected) in _text(actual)


def _compare(op):
    def compare(actual: Any, expected: Any, _pattern: Any) -> bool:
        a, b = _number(actual), _number(expected)
        return a is not None and b is not None and op(a, b)

    return compare


_OPERATIONS = {
    "eq": lambda a, v, _: _equals(a, v),
    "neq": lambda a, v, _: not _equals(a, v),
    "contains": lambda a, v, _: _contains(a, v),
    "not_contains": lambda a, v, _: not _contains(a, v),
    "starts_with": lambda a, v, _: _text(a).startswith(_text(v)),
    "ends_with": lambda a, v, _: _text(a).endswith(_text(v)),
    "in": lambda a, v, _: any(_equals(a, item) for item in v),
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "regex": lambda a, _v, pattern: pattern.search(str(a)) is not None,
}


WINDOW_COUNT_RANGE = (1, 100)
WINDOW_DAYS_RANGE = (1, 365)


@dataclass(frozen=True)
class Window:
    """A rule's frequency: at least `count` matching events within `days` days (this one included), then a rest."""

    count: int
    days: int

    @property
    def span(self) -> timedelta:
        return timedelta(days=self.days)

    @property
    def label(self) -> str:
        """How the pages show it: "3\u00d7 in 7 days"."""
        return f"{self.count}\u00d7 in {self.days} day{'s' if self.days != 1 else ''}"


@dataclass(frozen=True)
class Rule:
    """Points for events of a type (or `*`) whose conditions all hold, within optional window and caps."""

    id: int
    event_type: str
    points: int
    conditions: tuple[Condition, ...] = ()
    max_per_day: int | None = None
    max_per_lead: int | None = None
    max_points: int | None = None
    name: str = ""
    window: Window | None = None

    def matches(self, subject: dict[str, Any]) -> bool:
        return all(condition.holds(subject) for condition in self.conditions)


@dataclass(frozen=True)
class EventFact:
    """What the fold needs of one stored event."""

    event_id: str
    name: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    type: str = "track"

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.timestamp, self.event_id)

    @cached_property
    def day(self) -> str:
        """The event's calendar day (daily caps count by it), computed once for every model's fold."""
        return self.timestamp.date().isoformat()

    def subject(self) -> dict[str, Any]:
        """The document conditions are evaluated on: `properties.x`, `context.page.path`, `event`."""
        return {
            "event": self.name,
            "type": self.type,
            "properties": self.properties,
            "context": self.context,
        }


@dataclass(frozen=True)
class Decay:
    """Inactivity decay: after `grace_days` idle whole days, lose `rate_percent` % per further day."""

    enabled: bool = True
    rate_percent: float = 5.0
    grace_days: int = 7

    def days(self, since: datetime, until: datetime) -> int:
        idle = (until - since).days  # whole days only: the same answer all day long
        return max(0, idle - self.grace_days) if self.enabled else 0

    def apply(self, score: int, since: datetime | None, until: datetime) -> int:
        if since is None or score <= 0:
            return score
        days = self.days(since, until)
        if not days:
            return score
        return round(score * (1 - self.rate_percent / 100) ** days)

    def apply_between(self, score: int, idle_since: datetime | None, since: datetime | None, until: datetime) -> int:
        """Decay from `since` to `until` of a lead idle since `idle_since` (not after `since`).

        Only the idle days past the grace that fall after `since` count: a manual adjustment
        between two events moves the score, not the start of the lead's idleness.
        """
        if idle_since is None or since is None or score <= 0 or not self.enabled:
            return score
        if (until - idle_since).days <= self.grace_days:
            return score  # still within the grace (the usual case): no idle day counts yet
        days = self.days(idle_since, until) - self.days(idle_since, since)
        if days <= 0:
            return score
        return round(score * (1 - self.rate_percent / 100) ** days)


@dataclass(frozen=True)
class Policy:
    warm_threshold: int = 11
    hot_threshold: int = 31
    qualified_threshold: int = 60
    max_score: int = 10000
    decay: Decay = field(default_factory=Decay)


@dataclass(frozen=True)
class RuleTally:
    """A rule's running totals on one lead: what caps are checked against and breakdowns show."""

    count: int = 0
    points: int = 0
    day: str = ""
    day_count: int = 0


NO_TALLY = RuleTally()  # a rule that has not applied yet


@dataclass(frozen=True)
class WindowTally:
    """A window rule's bounded memory on one lead: its last `count - 1` matching events' times, its last award."""

    recent: tuple[datetime, ...] = ()
    awarded: datetime | None = None

    def to_json(self) -> list[Any]:
        return [[ts.isoformat() for ts in self.recent], self.awarded.isoformat() if self.awarded else None]

    @classmethod
    def from_json(cls, data: list[Any]) -> "WindowTally":
        recent, awarded = data
        return cls(
            tuple(datetime.fromisoformat(ts) for ts in recent), datetime.fromisoformat(awarded) if awarded else None
        )


@dataclass(frozen=True)
class FoldState:
    """Everything needed to continue a fold: the engagement score and where it stopped."""

    score: int = 0
    last_timestamp: datetime | None = None
    last_event_id: str = ""
    tallies: dict[int, RuleTally] = field(default_factory=dict)
    clamped: int = 0  # points lost to the 0..max clamp
    decayed: int = 0  # points lost to decay between events
    windows: dict[int, WindowTally] = field(default_factory=dict)  # window rules' memory, by rule id
    # the newest folded event that is the lead's activity (not a manual adjustment): decay counts from it
    active_at: datetime | None = None
    adjusted: int = 0  # points manual adjustments moved the score by
    # what `score` is decayed up to: the last event, unless the newest were other models' adjustments
    scored_at: datetime | None = None

    @property
    def key(self) -> tuple[datetime, str] | None:
        return None if self.last_timestamp is None else (self.last_timestamp, self.last_event_id)

    def decayed_to(self, decay: "Decay", now: datetime) -> int:
        """The folded score decayed up to `now` (idle since the last activity, not the last adjustment)."""
        return decay.apply_between(self.score, self.active_at, self.scored_at, now)

    def continues_with(self, events: Sequence[EventFact]) -> bool:
        """True when every event comes after the last one folded (no refold needed)."""
        return self.key is None or all(event.key > self.key for event in events)

    def to_json(self) -> dict[str, Any]:
        data = {
            "score": self.score,
            "lastTimestamp": self.last_timestamp.isoformat() if self.last_timestamp else None,
            "lastEventId": self.last_event_id,
            "rules": {str(rule_id): [t.count, t.points, t.day, t.day_count] for rule_id, t in self.tallies.items()},
            "clamped": self.clamped,
            "decayed": self.decayed,
            "activeAt": self.active_at.isoformat() if self.active_at else None,
            "adjusted": self.adjusted,
            "scoredAt": self.scored_at.isoformat() if self.scored_at else None,
        }
        if self.windows:  # only leads of projects with window rules carry them
            data["windows"] = {str(rule_id): w.to_json() for rule_id, w in self.windows.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "FoldState":
        if not data or not data.get("lastTimestamp"):
            return cls()
        return cls(
            score=int(data["score"]),
            last_timestamp=datetime.fromisoformat(data["lastTimestamp"]),
            last_event_id=str(data["lastEventId"]),
            tallies={int(k): RuleTally(*v) for k, v in data.get("rules", {}).items()},
            clamped=int(data.get("clamped", 0)),
            decayed=int(data.get("decayed", 0)),
            windows={int(k): WindowTally.from_json(v) for k, v in data.get("windows", {}).items()},
            # a checkpoint written before adjustments existed: every event it folded was activity
            active_at=_moment(data.get("activeAt", data["lastTimestamp"])),
            adjusted=int(data.get("adjusted", 0)),
            scored_at=_moment(data.get("scoredAt", data["lastTimestamp"])),
        )


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Step(NamedTuple):
    """The effect of one event on the engagement score (decay since the previous event included).

    Immutable like the fold's other values; a named tuple, as `HistoryStep`, because the fold makes
    one per event and model (a frozen dataclass costs three times as much to make).
    """

    event_id: str
    timestamp: datetime
    old_score: int
    new_score: int
    applied: tuple[tuple[int, int], ...]  # (rule id, points after caps)
    decay: int = 0
    adjustment: dict[str, Any] | None = None  # a manual adjustment of this model: what it did

    @property
    def delta(self) -> int:
        return self.new_score - self.old_score


FOLD_ORDER = attrgetter("timestamp", "event_id")  # `EventFact.key`, as the fold sorts by it (C, not a property)


def rules_by_event_type(rules: Iterable[Rule]) -> dict[str, list[Rule]]:
    index: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        index[rule.event_type].append(rule)
    return index


def _capped_points(rule: Rule, tally: RuleTally, day: str) -> int | None:
    """The points `rule` may still give on `day` after its caps; None when a cap stops it applying."""
    if rule.max_per_lead is not None and tally.count >= rule.max_per_lead:
        return None
    if rule.max_per_day is not None and tally.day == day and tally.day_count >= rule.max_per_day:
        return None
    points = rule.points
    if rule.max_points is not None:
        room = abs(rule.max_points) - abs(tally.points)
        if room <= 0 and points != 0:
            return None
        points = max(0, min(abs(points), room)) * (1 if points >= 0 else -1)
    return points


def _window_due(rule_id: int, window: Window, windows: dict[int, WindowTally], timestamp: datetime) -> bool:
    """Record a match of a window rule in `windows`; True when the window lets the rule award on this event.

    It does when, counting this event, at least `count` matching events fall in the trailing
    window `(t - days, t]`, and the rule's last award is `days` or more before `t`. So the events
    of one award never count towards the next (the next window starts after it), and a lead
    matching every day earns the rule once every `days` days. Only the last `count - 1`
    matches are kept: enough to tell whether the window holds `count`.
    """
    tally = windows.get(rule_id, WindowTally())
    since = timestamp - window.span
    keep = window.count - 1
    recent = tally.recent[-keep:] if keep else ()
    due = 1 + sum(ts > since for ts in recent) >= window.count and (
        tally.awarded is None or timestamp >= tally.awarded + window.span
    )
    windows[rule_id] = WindowTally((*recent, timestamp)[-keep:] if keep else (), tally.awarded)
    return due


ADJUSTMENT = "adjustment"  # the event type of a manual adjustment (named `$adjustment`): never ingested
ADJUSTMENT_NAME = "$adjustment"


def adjustment_of(event: EventFact, model: str) -> dict[str, Any] | None:
    """What a manual adjustment event does to `model`: `{"points": n}` or `{"setTo": n}`, with its reason
    and author; None when `event` is no adjustment, or one of another model."""
    if event.type != ADJUSTMENT or event.properties.get("model") != model:
        return None
    props = event.properties
    change = {key: props[key] for key in ("points", "setTo") if type(props.get(key)) is int}
    if len(change) != 1:
        return None
    return {**change, "reason": props.get("reason", ""), "author": props.get("author") or {}}


def adjustment_apply(score: int, adjustment: dict[str, Any]) -> int:
    """The engagement score after an adjustment (before the clamp): `points` add, `setTo` replaces it.

    `setTo` acts on the engagement component only: the fit still adds to it in the total.
    """
    if "setTo" in adjustment:
        return int(adjustment["setTo"])
    return score + int(adjustment["points"])


def fold(
    events: Iterable[EventFact],
    *,
    rules: Iterable[Rule],
    policy: Policy,
    state: FoldState | None = None,
    index: Mapping[str, Sequence[Rule]] | None = None,
    model: str = "",
) -> tuple[FoldState, list[Step]]:
    """Apply `events` in `(timestamp, event_id)` order to `state`; return the new state and one step per event.

    Before each event the score decays for the idle days since the previous one; then
    every matching rule adds its points (within its window, see `_window_due`, and its caps)
    and the score is clamped. A window rule stopped by a cap has not awarded (no rest follows).
    `index`: `rules_by_event_type(rules)` when the caller already has it (a model keeps its own).
    A manual adjustment of `model` (the model's key) adds or sets points instead: no rule
    matches one, and it is not the lead's activity, so decay keeps counting from the last event.
    Another model's adjustment changes nothing here (not even decay's rounding); it only moves
    the checkpoint, as every model of a lead folds the same events.
    """
    state = state or FoldState()
    index = rules_by_event_type(rules) if index is None else index
    wildcard = index.get("*", [])
    score, last_ts, last_id = state.score, state.last_timestamp, state.last_event_id
    tallies, clamped, decayed = dict(state.tallies), state.clamped, state.decayed
    windows = dict(state.windows)
    active_at, adjusted, scored_at = state.active_at, state.adjusted, state.scored_at
    steps: list[Step] = []
    for event in sorted(events, key=FOLD_ORDER):
        adjustment = adjustment_of(event, model) if event.type == ADJUSTMENT else None
        if event.type == ADJUSTMENT and adjustment is None:
            # another model's adjustment: this model's fold passes it by (a step, so checkpoints stay in line)
            steps.append(Step(event.event_id, event.timestamp, score, score, ()))
            last_ts, last_id = event.timestamp, event.event_id
            continue
        decayed_score = policy.decay.apply_between(score, active_at, scored_at, event.timestamp)
        decay = decayed_score - score
        day = event.day
        subject: dict[str, Any] | None = None
        applied: list[tuple[int, int]] = []
        candidates = () if event.type == ADJUSTMENT else (*index.get(event.name, ()), *wildcard)
        for rule in candidates:
            if rule.conditions:
                subject = subject or event.subject()
                if not rule.matches(subject):
                    continue
            if rule.window is not None and not _window_due(rule.id, rule.window, windows, event.timestamp):
                continue
            tally = tallies.get(rule.id, NO_TALLY)
            points = _capped_points(rule, tally, day)
            if points is None:
                continue  # capped: the rule did not apply
            if rule.window is not None:
                windows[rule.id] = replace(windows[rule.id], awarded=event.timestamp)
            day_count = tally.day_count + 1 if tally.day == day else 1
            tallies[rule.id] = RuleTally(tally.count + 1, tally.points + points, day, day_count)
            applied.append((rule.id, points))
        raw = decayed_score + sum(points for _, points in applied) if applied else decayed_score
        if adjustment is not None:
            raw = adjustment_apply(decayed_score, adjustment)
            adjusted += raw - decayed_score
        else:
            active_at = event.timestamp
        new_score = min(max(raw, 0), policy.max_score)
        clamped += new_score - raw
        decayed += decay
        steps.append(Step(event.event_id, event.timestamp, score, new_score, tuple(applied), decay, adjustment))
        score, last_ts, last_id, scored_at = new_score, event.timestamp, event.event_id, event.timestamp
    if not steps:
        return state, steps
    return FoldState(
        score=score, last_timestamp=last_ts, last_event_id=last_id, tallies=tallies, clamped=clamped, decayed=decayed,
        windows=windows, active_at=active_at, adjusted=adjusted, scored_at=scored_at,
    ), steps  # fmt: skip


@dataclass(frozen=True)
class Materialised:
    """What a lead holds now (its score columns and fold checkpoint): where an evaluation starts."""

    score: int = 0
    engagement: int = 0
    fit: int = 0
    stage: str = "cold"
    state: FoldState = field(default_factory=FoldState)
    fit_applied: tuple[tuple[int, int], ...] = ()


class HistoryStep(NamedTuple):
    """One history row an evaluation leaves: each old score is the previous step's new score."""

    reason: str  # rule | decay | fit | rescore
    old_score: int
    new_score: int
    occurred_at: datetime
    details: dict[str, Any]
    event_id: str | None = None  # the event a `rule` step folded

    @property
    def delta(self) -> int:
        return self.new_score - self.old_score


@dataclass(frozen=True)
class Evaluation:
    """A lead's scores after an evaluation, and the history that leads there from `Materialised`."""

    state: FoldState
    engagement: int
    fit: int
    fit_applied: tuple[tuple[int, int], ...]
    score: int
    stage: str
    grade: str
    history: tuple[HistoryStep, ...]
    path: tuple[int, ...]  # every total score the lead went through, so automations see each crossing
    refolded: bool
    folded: int  # events folded
    first_timestamp: datetime | None  # of the events folded
    writes: bool  # False: nothing to persist (e.g. a refit whose fit did not move)
    changed: bool  # the score or stage moved


PURPOSES = ("score", "rescore", "decay")
SEGMENT = "steps"  # the reason of a stored segment: a run of folded events whose `rule` steps are made on read


def rule_history(steps: Sequence[Step], *, totals: Sequence[int], fit: int, chain: int) -> list[HistoryStep]:
    """The `rule` history steps of folded `steps` (their total scores `totals`), chained from `chain`."""
    history: list[HistoryStep] = []
    explained: dict[tuple[tuple[int, int], ...], list[dict[str, int]]] = {}  # one list per set of rules applied
    for step, total in zip(steps, totals, strict=True):
        rules_applied = explained.get(step.applied)
        if rules_applied is None:
            rules_applied = explained[step.applied] = [{"ruleId": r, "points": p} for r, p in step.applied]
        details = {"rules": rules_applied, "decay": step.decay, "fit": fit}
        if step.adjustment is not None:
            details["adjustment"] = step.adjustment
        history.append(HistoryStep("rule", chain, total, step.timestamp, details, step.event_id))
        chain = total
    return history


def _segment_step(
    steps: Sequence[Step], *, totals: Sequence[int], fit: int, chain: int, start: FoldState
) -> HistoryStep:
    """One step standing for the `rule` steps of a run of folded events: all `segment_history` needs to make them
    again from the log (the fold's state before the run, the fit, the chain's start; the run's first event and
    span), under the version of the model that folded it."""
    first, last = steps[0], steps[-1]
    details = {"fit": fit, "count": len(steps), "from": [first.timestamp.isoformat(), first.event_id],
               "to": [last.timestamp.isoformat(), last.event_id], "state": start.to_json()}  # fmt: skip
    return HistoryStep(SEGMENT, chain, totals[-1], steps[-1].timestamp, details)


def segment_history(
    events: Iterable[EventFact], *, details: Mapping[str, Any], chain: int, model: "Model"
) -> list[HistoryStep]:
    """The `rule` steps a segment stands for: its events (those of the log from `details["from"]` to `["to"]`)
    folded again from the state it stored, by the same fold and the same steps as `lead_evaluate`."""
    start = FoldState.from_json(details["state"])
    policy, fit = model.policy, int(details["fit"])
    _, steps = fold(events, rules=model.rules, policy=policy, state=start, index=model.index, model=model.key)
    totals = [min(max(step.new_score + fit, 0), policy.max_score) for step in steps]
    return rule_history(steps, totals=totals, fit=fit, chain=chain)


def lead_evaluate(
    *,
    lead: Materialised,
    events: Iterable[EventFact],
    profile: dict[str, Any],
    rules: Iterable[Rule],
    fit_rules: Iterable[Rule],
    policy: Policy,
    now: datetime,
    refold: bool = False,
    purpose: str = "score",
    final: bool = True,
    before: Materialised | None = None,
    index: Mapping[str, Sequence[Rule]] | None = None,
    model: str = "",
    expand: bool = True,
) -> Evaluation:
    """Fold + fit + decay + total + stage for one lead: the one function every score comes from.

    `score`: fold `events` on from the lead's checkpoint (or, with `refold`, the lead's whole
    log from nothing; the caller decides, see `FoldState.continues_with`); with no events
    only the fit can move. `rescore`: a refold that also leaves a `rescore` audit step.
    `decay`: materialise decay up to `now` on the stored fit, folding nothing.
    History steps carry the total score (engagement + fit) and chain from `lead.score`
    (from 0 on a refold, whose rule steps replace the lead's folded history).

    A long log is evaluated a chunk at a time: each chunk but the last with `final=False`
    (no decay-to-now or fit step after it: the next chunk carries on from its state) and
    every chunk with `before`, the lead as it was before the first one, which the `rescore`
    step, the path and `changed` compare against. `model`: the key of the model evaluated (the
    manual adjustments it applies are those naming it). `expand=False`: the folded events leave one
    `SEGMENT` step instead of a `rule` step each, from which `segment_history` makes those steps again
    (a non-primary model's history is folded on read: its rows cost more than its fold).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    if purpose == "decay":
        return _decay_evaluate(lead, policy, now)
    refold = refold or (purpose == "rescore" and before is None)  # a later chunk of a rescore continues
    fit, fit_applied = fit_score(profile, fit_rules)
    events = list(events)
    if not events and not refold:
        return _refit_evaluate(lead, fit, tuple(fit_applied), policy, now)
    before = before or lead
    start = FoldState() if refold else lead.state
    state, steps = fold(events, rules=rules, policy=policy, state=start, index=index, model=model)
    chain = 0 if refold else lead.score
    max_score = policy.max_score
    totals = [min(max(step.new_score + fit, 0), max_score) for step in steps]  # total_score, inline
    if not steps:
        history: list[HistoryStep] = []
    elif expand:
        history = rule_history(steps, totals=totals, fit=fit, chain=chain)
    else:
        history = [_segment_step(steps, totals=totals, fit=fit, chain=chain, start=start)]
    chain = totals[-1] if totals else chain
    path = [before.score] if refold else [lead.score, *totals]
    engagement = state.decayed_to(policy.decay, now) if final else state.score
    score = total_score(engagement, fit, policy)
    if score != chain and final:
        # decay since the last event (e.g. a backfill of old events), or a changed fit
        kind = "decay" if engagement != state.score else "fit"
        history.append(HistoryStep(kind, chain, score, now, {"fit": fit}))
    if purpose == "rescore" and final and score != before.score:
        history.append(HistoryStep("rescore", before.score, score, now, {"fit": fit}))
    stage = stage_for(score, policy)
    return Evaluation(
        state=state,
        engagement=engagement,
        fit=fit,
        fit_applied=tuple(fit_applied),
        score=score,
        stage=stage,
        grade=grade_for(fit),
        history=tuple(history),
        path=(*path, score),
        refolded=refold,
        folded=len(steps),
        first_timestamp=steps[0].timestamp if steps else None,
        writes=True,
        changed=score != before.score or stage != before.stage,
    )


@dataclass(frozen=True)
class Model:
    """A scoring model as the engine takes it: its engagement rules, fit rules and policy."""

    id: int
    key: str
    rules: tuple[Rule, ...] = ()
    fit_rules: tuple[Rule, ...] = ()
    policy: Policy = field(default_factory=Policy)
    primary: bool = True
    version: int = 0  # the rule-set version the rules and policy are (history rows cite it)
    # a `rule` history row per event even when not primary (otherwise a segment per run of events, see lead_evaluate)
    rule_rows: bool = False

    @cached_property
    def index(self) -> dict[str, list[Rule]]:
        """The engagement rules by event type, built once per model, not once per lead."""
        return rules_by_event_type(self.rules)


def models_evaluate(
    *,
    models: Sequence[Model],
    leads: Mapping[int, Materialised],
    events: Iterable[EventFact],
    profile: dict[str, Any],
    now: datetime,
    refold: bool = False,
    purpose: str = "score",
    final: bool = True,
    before: Mapping[int, Materialised] | None = None,
) -> dict[int, Evaluation]:
    """`lead_evaluate` under each of the project's models, over one read of the events: model id -> evaluation.

    `leads` (and `before`): the lead as each model left it (a model with none starts from nothing).
    """
    events = list(events)
    return {
        model.id: lead_evaluate(
            lead=leads.get(model.id) or Materialised(),
            events=events,
            profile=profile,
            rules=model.rules,
            fit_rules=model.fit_rules,
            policy=model.policy,
            now=now,
            refold=refold,
            purpose=purpose,
            final=final,
            before=None if before is None else before.get(model.id) or Materialised(),
            index=model.index,
            model=model.key,
            expand=model.primary or model.rule_rows,
        )
        for model in models
    }


def _unchanged(lead: Materialised, policy: Policy) -> Evaluation:
    return Evaluation(
        state=lead.state, engagement=lead.engagement, fit=lead.fit, fit_applied=lead.fit_applied, score=lead.score,
        stage=lead.stage, grade=grade_for(lead.fit), history=(), path=(lead.score,), refolded=False, folded=0,
        first_timestamp=None, writes=False, changed=False,
    )  # fmt: skip


def _refit_evaluate(
    lead: Materialised, fit: int, fit_applied: tuple[tuple[int, int], ...], policy: Policy, now: datetime
) -> Evaluation:
    """No new events: only the fit can have moved (traits edited, fit rules changed)."""
    if fit == lead.fit:
        return _unchanged(lead, policy)
    engagement = lead.state.decayed_to(policy.decay, now)
    score = total_score(engagement, fit, policy)
    stage = stage_for(score, policy)
    return Evaluation(
        state=lead.state, engagement=engagement, fit=fit, fit_applied=fit_applied, score=score, stage=stage,
        grade=grade_for(fit), history=(HistoryStep("fit", lead.score, score, now, {"fit": fit}),),
        path=(lead.score, score), refolded=False, folded=0, first_timestamp=None, writes=True,
        changed=score != lead.score or stage != lead.stage,
    )  # fmt: skip


def _decay_evaluate(lead: Materialised, policy: Policy, now: datetime) -> Evaluation:
    """Decay up to `now` as one `decay` step; a second run the same day changes nothing."""
    engagement = lead.state.decayed_to(policy.decay, now)
    score = total_score(engagement, lead.fit, policy)
    if score == lead.score and engagement == lead.engagement:
        return _unchanged(lead, policy)
    stage = stage_for(score, policy)
    step = HistoryStep("decay", lead.score, score, now, {"engagement": engagement})
    return Evaluation(
        state=lead.state, engagement=engagement, fit=lead.fit, fit_applied=lead.fit_applied, score=score,
        stage=stage, grade=grade_for(lead.fit), history=(step,), path=(lead.score, score), refolded=False,
        folded=0, first_timestamp=None, writes=True, changed=score != lead.score or stage != lead.stage,
    )  # fmt: skip


def fit_score(profile: dict[str, Any], fit_rules: Iterable[Rule]) -> tuple[int, list[tuple[int, int]]]:
    """Points from fit rules whose conditions hold on the lead's profile (each applies once)."""
    applied = [(rule.id, rule.points) for rule in fit_rules if rule.matches(profile)]
    return sum(points for _, points in applied), applied


def grade_for(fit: int) -> str:
    """A-D from the fit score: A >= 25, B >= 10, C >= 0, D below."""
    if fit >= 25:
        return "A"
    if fit >= 10:
        return "B"
    if fit >= 0:
        return "C"
    return "D"


GRADES = ("A", "B", "C", "D")
TIERS = (1, 2, 3)
# The fit x engagement matrix, best first: A1 (best fit, most engaged) … D3.
MATRIX_CELLS = tuple(f"{grade}{tier}" for grade in GRADES for tier in TIERS)


def engagement_tier(engagement: int, policy: Policy) -> int:
    """1 when the engagement score alone reaches the hot threshold, 2 when it reaches warm, 3 below."""
    if engagement >= policy.hot_threshold:
        return 1
    if engagement >= policy.warm_threshold:
        return 2
    return 3


def matrix_cell(grade: str, engagement: int, policy: Policy) -> str:
    """The lead's fit x engagement cell, `A1` … `D3`: its fit grade, then its engagement tier."""
    return f"{grade}{engagement_tier(engagement, policy)}"


def total_score(engagement: int, fit: int, policy: Policy) -> int:
    return min(max(engagement + fit, 0), policy.max_score)


def stage_for(score: int, policy: Policy) -> str:
    if score >= policy.qualified_threshold:
        return "qualified"
    if score >= policy.hot_threshold:
        return "hot"
    if score >= policy.warm_threshold:
        return "warm"
    return "cold"


def velocity_score(events_last_24h: int) -> int:
    """0 to 10: one point per event in the last 24 hours, capped at 10."""
    return max(0, min(10, events_last_24h))


@dataclass(frozen=True)
class IdentityCall:
    """What identity resolution needs of one event."""

    type: str
    user_id: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Identity:
    """Who a run of identify/alias/group calls says the lead is (latest call wins)."""

    user_id: str = ""
    email: str = ""
    name: str = ""
    company: str = ""
    traits: dict[str, Any] = field(default_factory=dict)


IDENTITY_TRAIT_KEYS = ("email", "name", "firstName", "lastName", "company")


def normalise_email(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    email = value.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or any(ch.isspace() for ch in email):
        return ""
    return email


def identity_fold(calls: Iterable[IdentityCall]) -> Identity:
    """Fold identify (traits), alias (user id) and group (company) calls in order."""
    user_id = email = name = company = ""
    traits: dict[str, Any] = {}
    for call in calls:
        user_id = call.user_id or user_id
        props = call.properties
        if call.type == "group":
            company = str(props.get("name") or company)
            traits["company"] = {**traits.get("company", {}), **props}
            continue
        if call.type != "identify":
            continue
        email = normalise_email(props.get("email")) or email
        full_name = " ".join(str(props[k]) for k in ("firstName", "lastName") if props.get(k))
        name = str(props.get("name") or full_name or name)
        raw_company = props.get("company")
        company = str(raw_company.get("name", "") if isinstance(raw_company, dict) else raw_company or company)
        traits.update({k: v for k, v in props.items() if k not in IDENTITY_TRAIT_KEYS})
    return Identity(user_id=user_id, email=email, name=name[:255], company=company[:255], traits=traits)


@dataclass(frozen=True)
class Intelligence:
    velocity: int
    velocity_score: int
    trend: str
    risk: str
    next_action: str
    days_since_last_event: int | None


def intelligence(
    *, events_last_24h: int, events_previous_24h: int, last_event_at: datetime | None, now: datetime, stage: str
) -> Intelligence:
    """Velocity, trend, risk and the next sales action for a lead."""
    # more than 20 % up or down against the previous 24 hours
    if events_last_24h > events_previous_24h * 1.2:
        trend = "increasing"
    elif events_last_24h < events_previous_24h * 0.8:
        trend = "decreasing"
    else:
        trend = "steady"
    idle = None if last_event_at is None else max(0, (now - last_event_at).days)
    risk = "high" if idle is None or idle > 14 else "medium" if idle > 7 else "low"
    speed = velocity_score(events_last_24h)
    if risk == "high" and stage != "cold":
        action = "re_engagement_required"
    elif stage == "qualified" or (stage == "hot" and speed >= 5 and risk == "low"):
        action = "immediate_sales_contact"
    elif stage == "hot":
        action = "schedule_demo"
    elif stage == "warm":
        action = "re_engagement_required" if risk == "medium" else "nurture_campaign"
    else:
        action = "monitor"
    return Intelligence(events_last_24h, speed, trend, risk, action, idle)


class ConditionError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


PATH_PART_LIMIT = 8


CONDITION_FIELDS = ("path", "op", "value")


def compile_condition(raw: Any) -> Condition:
    """Validate one `{path, op, value}` and compile its regex with RE2 (linear time, no backtracking)."""
    if not isinstance(raw, dict):
        raise ConditionError("", "Must be an object with path, op and value.")
    path, op, value = raw.get("path"), raw.get("op"), raw.get("value")
    parts = path.split(".") if isinstance(path, str) else []
    if not parts or len(parts) > PATH_PART_LIMIT or not all(part and len(part) <= 64 for part in parts):
        raise ConditionError("path", "Must be a dotted path such as properties.url.")
    if op not in OPERATORS:
        raise ConditionError("op", f"Unknown operator; use one of {', '.join(OPERATORS)}.")
    pattern = None
    if op in ("exists", "not_exists"):
        value = None
    elif op == "in":
        if not isinstance(value, list) or not value or len(value) > 500:
            raise ConditionError("value", "Must be a non-empty list (at most 500 items).")
    elif op in ("gt", "gte", "lt", "lte"):
        if _number(value) is None:
            raise ConditionError("value", "Must be a number.")
    elif op == "regex":
        if not isinstance(value, str) or not value or len(value) > 500:
            raise ConditionError("value", "Must be a regular expression of at most 500 characters.")
        pattern = _compile_regex(value)
    elif not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
        raise ConditionError("value", "Must be a non-empty string or number.")
    return Condition(path=str(path), op=op, value=value, pattern=pattern)


def _compile_regex(value: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    options.max_mem = 1 << 20
    try:
        return re2.compile(value, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ConditionError("value", f"Invalid or unsupported regular expression ({detail}).") from None
