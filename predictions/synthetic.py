"""Deterministic leads with a hidden ground truth: events over time, fit traits, won/lost outcomes.

Each lead has a hidden buying intent. Intent raises the rate of some events (pricing visits,
demo requests, integration docs) and pulls them into the last days before the outcome; other
events (page views, email opens, downloads) are the same for everyone, although the default
rules give them points. Fit traits (industry, size, role) move the odds too, and the default
rules ignore them. So a model that learns from outcomes should beat the rules, and one that
does not leak should stay at chance on shuffled labels.

After the outcome a won lead signs (`contract_signed` at the outcome time) and onboards
(`onboarding_step` events); a lost one mostly goes quiet. Those events give the answer away
to any model that looks past the outcome time: the tests plant them on purpose.

Used by the tests, `bench/predict.py` and `seed_demo`. The same arguments give the same leads.
"""

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from .features import EventRow, LeadFacts

START = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 60  # a lead's events before its outcome fall in the 60 days before it
OUTCOME_SPREAD_DAYS = 180  # outcomes fall over this many days after START + HISTORY_DAYS
RECENT_DAYS = 7

# event type -> (events per lead in the history at average intent, how much intent multiplies that rate)
BEHAVIOUR: dict[str, tuple[float, float]] = {
    "page_view": (4.0, 0.1),
    "email_open": (2.0, 0.0),
    "download": (0.5, 0.0),
    "form_submit": (0.4, 0.7),
    "signup": (0.3, 0.6),
    "pricing_page_visit": (0.8, 1.3),
    "webinar_attendance": (0.2, 0.3),
    "demo_request": (0.15, 1.5),
    "unsubscribe": (0.12, -0.9),
    "integration_docs_view": (0.5, 1.3),  # no default rule scores it
}
TRAITS: dict[str, dict[str, float]] = {  # trait -> value -> its effect on the log-odds of winning
    "industry": {"saas": 0.8, "finance": 0.4, "retail": 0.0, "health": 0.0, "education": -0.8},
    "company_size": {"1-10": -0.4, "11-50": 0.2, "51-200": 0.5, "201-1000": 0.3, "1000+": -0.2},
    "role": {"engineer": 0.0, "manager": 0.3, "executive": 0.5, "student": -1.2},
}
INTENT_WEIGHT = 2.5
BASE_LOG_ODDS = -0.6
PAGES = ("/", "/pricing", "/docs", "/blog/lead-scoring", "/features")


@dataclass(frozen=True)
class SyntheticLead:
    key: str
    email: str
    traits: dict[str, Any]
    events: tuple[EventRow, ...]  # in time order, including those after the outcome
    won: bool
    at: datetime  # the outcome's time
    intent: float  # the hidden truth

    @property
    def facts(self) -> LeadFacts:
        return LeadFacts(events=self.events, traits=self.traits)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def leads_generate(
    count: int,
    *,
    seed: int = 7,
    activity: float = 1.0,
    after_outcome: bool = True,
    start: datetime = START,
) -> list[SyntheticLead]:
    """`count` leads with outcomes; `activity` scales every event rate (1.0: about 10 events a lead)."""
    rng = np.random.default_rng(seed)
    leads: list[SyntheticLead] = []
    trait_values = {trait: tuple(values) for trait, values in TRAITS.items()}
    for number in range(count):
        key = f"syn-{seed}-{number}"
        intent = float(rng.standard_normal())
        traits: dict[str, Any] = {
            trait: values[int(rng.integers(len(values)))] for trait, values in trait_values.items()
        }
        fit = sum(TRAITS[trait][value] for trait, value in traits.items())
        won = bool(rng.random() < _sigmoid(BASE_LOG_ODDS + INTENT_WEIGHT * intent + fit))
        at = (start + timedelta(days=HISTORY_DAYS + float(rng.random()) * OUTCOME_SPREAD_DAYS)).replace(microsecond=0)
        recent_share = _sigmoid(1.5 * intent - 0.5)  # eager leads act in the last week
        events: list[EventRow] = []
        for name, (rate, lift) in BEHAVIOUR.items():
            for _ in range(int(rng.poisson(activity * rate * math.exp(lift * intent)))):
                recent = lift > 0 and rng.random() < recent_share
                days_before = rng.random() * RECENT_DAYS if recent else rng.random() * HISTORY_DAYS
                moment = at - timedelta(days=max(days_before, 1 / 86400))
                events.append(_event(name, moment, rng))
        if after_outcome:
            events.extend(_after(at, won, activity, rng))
        events.sort(key=lambda event: event.timestamp)
        leads.append(
            SyntheticLead(
                key=key, email=f"{key}@example.com", traits=traits, events=tuple(events), won=won, at=at, intent=intent
            )
        )
    return leads


def _event(name: str, moment: datetime, rng: np.random.Generator) -> EventRow:
    properties: dict[str, Any] = {}
    if name == "page_view":
        properties = {"url": PAGES[int(rng.integers(len(PAGES)))]}
    elif name == "pricing_page_visit":
        properties = {"url": "/pricing"}
    return EventRow(name=name, timestamp=moment.replace(microsecond=0), properties=properties)


def _after(at: datetime, won: bool, activity: float, rng: np.random.Generator) -> list[EventRow]:
    """What the outcome causes: a signature and onboarding for a won lead, a last visit or two for a lost one."""
    if won:
        events = [EventRow(name="contract_signed", timestamp=at)]  # at the outcome: unseen by its features
        for _ in range(1 + int(rng.poisson(activity * 2))):
            events.append(_event("onboarding_step", at + timedelta(days=float(rng.random()) * 14), rng))
        return events
    return [
        _event("page_view", at + timedelta(days=float(rng.random()) * 14), rng)
        for _ in range(int(rng.poisson(activity * 0.5)))
    ]


def labels_shuffle(leads: list[SyntheticLead], *, seed: int = 11) -> list[SyntheticLead]:
    """The same leads with their won/lost labels permuted: nothing left to learn."""
    order = np.random.default_rng(seed).permutation(len(leads))
    return [replace(lead, won=leads[int(other)].won) for lead, other in zip(leads, order, strict=True)]
