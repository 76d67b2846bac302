"""The score as a pure function of the event log: `fold(events, rules, ...)`.

No ORM here. Services feed plain values in and persist what comes out, so the same
code scores incrementally, refolds after a late event and can be tested without a
database.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STAGES = ("cold", "warm", "hot", "qualified")


@dataclass(frozen=True)
class Rule:
    id: int
    event_type: str
    points: int


@dataclass(frozen=True)
class EventFact:
    """What the fold needs of one stored event."""

    event_id: str
    name: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.timestamp, self.event_id)


@dataclass(frozen=True)
class Policy:
    warm_threshold: int = 11
    hot_threshold: int = 31
    qualified_threshold: int = 60
    max_score: int = 10000


@dataclass(frozen=True)
class FoldState:
    """Everything needed to continue a fold: the score and where it stopped."""

    score: int = 0
    last_timestamp: datetime | None = None
    last_event_id: str = ""

    @property
    def key(self) -> tuple[datetime, str] | None:
        return None if self.last_timestamp is None else (self.last_timestamp, self.last_event_id)

    def continues_with(self, events: Sequence[EventFact]) -> bool:
        """True when every event comes after the last one folded (no refold needed)."""
        return self.key is None or all(event.key > self.key for event in events)

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "lastTimestamp": self.last_timestamp.isoformat() if self.last_timestamp else None,
            "lastEventId": self.last_event_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "FoldState":
        if not data or not data.get("lastTimestamp"):
            return cls()
        return cls(
            score=int(data["score"]),
            last_timestamp=datetime.fromisoformat(data["lastTimestamp"]),
            last_event_id=str(data["lastEventId"]),
        )


@dataclass(frozen=True)
class Step:
    """The effect of one event on the score."""

    event_id: str
    timestamp: datetime
    old_score: int
    new_score: int
    applied: tuple[tuple[int, int], ...]  # (rule id, points)

    @property
    def delta(self) -> int:
        return self.new_score - self.old_score


def rules_by_event_type(rules: Iterable[Rule]) -> dict[str, list[Rule]]:
    index: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        index[rule.event_type].append(rule)
    return index


def fold(
    events: Iterable[EventFact], *, rules: Iterable[Rule], policy: Policy, state: FoldState | None = None
) -> tuple[FoldState, list[Step]]:
    """Apply `events` in `(timestamp, event_id)` order to `state`; return the new state and one step per event."""
    state = state or FoldState()
    index = rules_by_event_type(rules)
    score = state.score
    steps: list[Step] = []
    last: EventFact | None = None
    for event in sorted(events, key=lambda e: e.key):
        applied = tuple((rule.id, rule.points) for rule in index.get(event.name, ()))
        new_score = min(max(score + sum(points for _, points in applied), 0), policy.max_score)
        steps.append(Step(event.event_id, event.timestamp, score, new_score, applied))
        score = new_score
        last = event
    if last is None:
        return state, steps
    return FoldState(score=score, last_timestamp=last.timestamp, last_event_id=last.event_id), steps


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
