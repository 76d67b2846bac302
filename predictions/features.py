"""What the model sees of one lead: features from its events strictly before a cutoff, and its fit traits.

Pure: plain values in, a vector out, no ORM. The cutoff is the outcome's time when training
and now when scoring; an event at or after it is never seen, so nothing the outcome caused
(a `contract_signed`, onboarding visits) can teach the model the answer.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

WINDOWS = (1, 7, 30)  # days: each event type is counted in each window
RECENCY_CAP_DAYS = 90.0  # a lead with no event before the cutoff is this idle (and so is a longer idle one)
VELOCITY_HOURS = 24
# traits that name a person or a company are identities, not fit: they never become features
IDENTITY_TRAITS = frozenset(
    {"email", "name", "firstName", "lastName", "first_name", "last_name", "company", "phone", "userId", "id"}
)
MAX_TRAIT_VALUES = 20  # a trait with more distinct values is an identifier, not a category
MIN_SUPPORT = 5  # an event type or trait value seen on fewer leads gets no feature

SPANS = tuple(timedelta(days=days) for days in WINDOWS)
VELOCITY_SPAN = timedelta(hours=VELOCITY_HOURS)
RECENCY = "recency_days"
VELOCITY = "velocity_24h"


@dataclass(frozen=True)
class EventRow:
    """What features need of one stored event (`name` is the event type the rules score: `page_view`)."""

    name: str
    timestamp: datetime
    type: str = "track"
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadFacts:
    """One lead's log and fit traits, as features read them."""

    events: Sequence[EventRow]
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Vocabulary:
    """The event types and trait values a model has features for, fixed when it is trained."""

    events: tuple[str, ...]
    traits: tuple[tuple[str, str], ...]  # (trait, value) pairs, one-hot

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each event type's index in `events` (computed once per vocabulary, as scoring reuses it per lead)."""
        return {event: i for i, event in enumerate(self.events)}

    def names(self) -> tuple[str, ...]:
        """Every feature name, in vector order."""
        counts = tuple(count_name(event, days) for event in self.events for days in WINDOWS)
        return (*counts, RECENCY, VELOCITY, *(trait_name(key, value) for key, value in self.traits))

    def to_json(self) -> dict[str, Any]:
        return {"events": list(self.events), "traits": [list(pair) for pair in self.traits]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Vocabulary":
        return cls(
            events=tuple(str(event) for event in data["events"]),
            traits=tuple((str(key), str(value)) for key, value in data["traits"]),
        )


def count_name(event: str, days: int) -> str:
    return f"{event}_{days}d"


def trait_name(key: str, value: str) -> str:
    return f"trait:{key}={value}"


def trait_value(value: Any) -> str | None:
    """A trait's category as text, or None when it is not categorical (numbers, lists, objects, blanks)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip():
        return value.strip().lower()
    return None


def vocabulary_learn(leads: Iterable[tuple[LeadFacts, datetime]], *, min_support: int = MIN_SUPPORT) -> Vocabulary:
    """The event types and categorical trait values seen on at least `min_support` leads (before each cutoff)."""
    event_leads: Counter[str] = Counter()
    value_leads: Counter[tuple[str, str]] = Counter()
    for lead, cutoff in leads:
        event_leads.update({event.name for event in lead.events if event.timestamp < cutoff})
        for key, raw in lead.traits.items():
            value = trait_value(raw)
            if value is not None and key not in IDENTITY_TRAITS:
                value_leads[(key, value)] += 1
    per_trait = Counter(key for key, _ in value_leads)
    return Vocabulary(
        events=tuple(sorted(name for name, n in event_leads.items() if n >= min_support)),
        traits=tuple(
            sorted(
                pair for pair, n in value_leads.items() if n >= min_support and per_trait[pair[0]] <= MAX_TRAIT_VALUES
            )
        ),
    )


def features_compute(lead: LeadFacts, *, cutoff: datetime, vocabulary: Vocabulary) -> list[float]:
    """The lead's feature vector at `cutoff`, in `vocabulary.names()` order; events at or after it are ignored."""
    index = vocabulary.positions
    counts = [0.0] * (len(vocabulary.events) * len(WINDOWS))
    spans, velocity_span = SPANS, VELOCITY_SPAN
    last: datetime | None = None
    velocity = 0
    for event in lead.events:
        if event.timestamp >= cutoff:  # the leak guard
            continue
        age = cutoff - event.timestamp
        if last is None or event.timestamp > last:
            last = event.timestamp
        if age <= velocity_span:
            velocity += 1
        position = index.get(event.name)
        if position is None:
            continue
        base = position * len(WINDOWS)
        for offset, span in enumerate(spans):
            if age <= span:
                counts[base + offset] += 1
    recency = RECENCY_CAP_DAYS if last is None else min(RECENCY_CAP_DAYS, (cutoff - last).total_seconds() / 86400)
    traits = {key: trait_value(value) for key, value in lead.traits.items()}
    one_hot = [1.0 if traits.get(key) == value else 0.0 for key, value in vocabulary.traits]
    return [*counts, recency, float(velocity), *one_hot]


def features_named(lead: LeadFacts, *, cutoff: datetime, vocabulary: Vocabulary) -> dict[str, float]:
    """`features_compute` as a dict by feature name."""
    return dict(zip(vocabulary.names(), features_compute(lead, cutoff=cutoff, vocabulary=vocabulary), strict=True))
