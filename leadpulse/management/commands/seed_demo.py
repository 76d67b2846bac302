"""Create a demo user and project and feed it believable journeys through the real pipeline."""

import random
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import membership_for_user, write_key_for_project
from accounts.services import project_create
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from predictions.models import TrainingJob
from predictions.services import OutcomeInput, outcome_record, outcome_recorder
from predictions.services.training import prediction_model_train
from predictions.synthetic import HISTORY_DAYS, OUTCOME_SPREAD_DAYS, leads_generate
from scoring.models import ScoringModel, ScoringRule
from scoring.services import lead_score

DEMO_EMAIL = "demo@leadpulse.local"
DEMO_PASSWORD = "leadpulse-demo"  # noqa: S105 (printed by make run on purpose)

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Dennis", "Radia"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen", "Ritchie", "Perlman"]
COMPANIES = [("Initech", 250), ("Globex", 1200), ("Hooli", 5000), ("Vandelay", 40), ("Acme", 800), ("Umbrella", 90)]
TITLES = ["VP Sales", "Head of Growth", "Marketing Manager", "Engineer", "CTO", "VP Marketing", "Analyst"]
FIT_RULES = [
    {
        "name": "VP title",
        "kind": "fit",
        "points": 20,
        "conditions": [{"path": "traits.title", "op": "contains", "value": "VP"}],
    },
    {
        "name": "200+ employees",
        "kind": "fit",
        "points": 15,
        "conditions": [{"path": "traits.employees", "op": "gte", "value": 200}],
    },
    {
        "name": "Free email",
        "kind": "fit",
        "points": -10,
        "conditions": [{"path": "email", "op": "ends_with", "value": "@gmail.com"}],
    },
    {
        "name": "Pricing page",
        "event_type": "page_view",
        "points": 10,
        "max_per_day": 1,
        "conditions": [{"path": "properties.url", "op": "contains", "value": "/pricing"}],
    },
]

# Journeys: (share of leads, events to draw from with weights, events per lead range)
JOURNEYS = {
    "browser": (0.45, {"page_view": 8, "download": 1, "email_open": 1}, (1, 6)),
    "evaluator": (
        0.3,
        {"page_view": 6, "pricing_page_visit": 3, "email_open": 2, "form_submit": 1, "webinar_attendance": 1},
        (5, 14),
    ),
    "buyer": (
        0.15,
        {"page_view": 4, "pricing_page_visit": 3, "signup": 1, "demo_request": 1, "form_submit": 1},
        (6, 16),
    ),
    "churner": (0.1, {"page_view": 3, "email_open": 2, "unsubscribe": 1}, (2, 8)),
}


PAGES = {"page_view": "docs", "pricing_page_visit": "pricing"}


def _identify(rng: random.Random, anonymous_id: str, index: int, at) -> CanonicalEvent:
    """A person behind the device: the traits fit rules look at."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company, employees = rng.choice(COMPANIES)
    domain = "gmail.com" if rng.random() < 0.2 else f"{company.lower()}.example"
    traits = {
        "email": f"{first}.{last}{index}@{domain}".lower(),
        "name": f"{first} {last}",
        "company": company,
        "title": rng.choice(TITLES),
        "employees": employees,
    }
    return CanonicalEvent(
        event_id=f"{anonymous_id}-id",
        name="identify",
        type="identify",
        anonymous_id=anonymous_id,
        timestamp=at,
        properties=traits,
    )


class Command(BaseCommand):
    help = "Create (or top up) the demo account: user, project and scored demo events."

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=500)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--outcomes", type=int, default=400, help="leads with a won/lost outcome (0: none)")
        parser.add_argument("--no-train", action="store_true", help="record outcomes but train no model")

    def handle(self, *args, leads: int, days: int, seed: int, outcomes: int, no_train: bool, **options):
        rng = random.Random(seed)
        with transaction.atomic():
            user = User.objects.filter(email=DEMO_EMAIL).first()
            # A well-known password is fine on a developer's machine, never on a reachable server.
            password: str | None = DEMO_PASSWORD if settings.DEBUG else secrets.token_urlsafe(12)
            created = user is None
            if user is None:
                user = User.objects.create_user(
                    email=DEMO_EMAIL, password=password, name="Demo", is_staff=True, is_superuser=True
                )
                project = project_create(owner=user, name="Demo project", domain="demo.example")
                for rule in FIT_RULES:
                    ScoringRule.objects.create(
                        project=project, model=project.scoring_models.get(is_primary=True), **rule
                    )
        project = membership_for_user(user=user).project

        now = timezone.now()
        journeys = list(JOURNEYS.items())
        touched = 0
        for index in range(leads):
            name, (_, weights, (low, high)) = rng.choices(journeys, weights=[j[1][0] for j in journeys])[0]
            anonymous_id = f"demo-{index:04d}"
            start = now - timedelta(days=rng.uniform(0, days))
            events = []
            if name in ("evaluator", "buyer") or rng.random() < 0.2:
                events.append(_identify(rng, anonymous_id, index, start))
            for n in range(rng.randint(low, high)):
                event_type = rng.choices(list(weights), weights=list(weights.values()))[0]
                at = min(start + timedelta(hours=rng.uniform(0, 48) * n), now)
                events.append(
                    CanonicalEvent(
                        event_id=f"{anonymous_id}-{n}",
                        name=event_type,
                        anonymous_id=anonymous_id,
                        timestamp=at,
                        properties={"url": f"https://demo.example/{PAGES.get(event_type, 'docs')}", "journey": name},
                    )
                )
            result = events_ingest(project_id=project.id, events=events)
            touched += len(result.accepted)
        synthetic = _synthetic_leads(project.id, count=outcomes, seed=seed, now=now)
        touched += synthetic["events"]
        # Score right away (the worker would too) so the first page view shows scores.
        for lead_id in project.leads.values_list("id", flat=True):
            lead_score(lead_id=lead_id)
        trained = ""
        if synthetic["leads"]:
            _outcomes_record(project.id, synthetic["leads"])
            if not no_train:
                trained = _train(project)

        if created or settings.DEBUG:
            self.stdout.write(f"Demo login:  {DEMO_EMAIL} / {password}")
        else:
            self.stdout.write(f"Demo login:  {DEMO_EMAIL} (its password was printed when it was created)")
        self.stdout.write(f"Write key:   {write_key_for_project(project=project)}")
        self.stdout.write(f"Demo events: {touched} new ({leads} leads over {days} days)")
        if synthetic["leads"]:
            self.stdout.write(f"Outcomes:    {len(synthetic['leads'])} leads won or lost, from a hidden ground truth")
        if trained:
            self.stdout.write(f"Predictions: {trained}")


def _synthetic_leads(project_id: int, *, count: int, seed: int, now) -> dict:
    """Leads whose outcome follows a hidden buying intent (`predictions.synthetic`), their outcomes in the last
    half year; their events up to now (a won lead's signature and onboarding included) go through ingest."""
    if count <= 0:
        return {"leads": [], "events": 0}
    start = now - timedelta(days=HISTORY_DAYS + OUTCOME_SPREAD_DAYS + 1)
    generated = leads_generate(count, seed=seed, start=start)
    accepted = 0
    for lead in generated:
        key = f"demo-won-lost-{lead.key}"
        events = [
            CanonicalEvent(event_id=f"{key}-{i}", name=event.name, anonymous_id=key, timestamp=event.timestamp,
                           properties=dict(event.properties))
            for i, event in enumerate(lead.events)
            if event.timestamp < now
        ]  # fmt: skip
        traits = {**lead.traits, "email": lead.email}
        first = lead.events[0].timestamp if lead.events else start
        identify = CanonicalEvent(event_id=f"{key}-id", name="identify", type="identify", anonymous_id=key,
                                  timestamp=first, properties=traits)  # fmt: skip
        accepted += len(events_ingest(project_id=project_id, events=[identify, *events]).accepted)
    return {"leads": generated, "events": accepted}


def _outcomes_record(project_id: int, generated: list) -> None:
    recorder = outcome_recorder(source="api")
    stored = Lead.objects.filter(project_id=project_id, anonymous_id__startswith="demo-won-lost-")
    leads = {lead.anonymous_id: lead for lead in stored}
    for synthetic in generated:
        lead = leads.get(f"demo-won-lost-{synthetic.key}")
        if lead is not None:
            data = OutcomeInput(outcome="won" if synthetic.won else "lost", at=synthetic.at, reason="demo ground truth")
            outcome_record(lead=lead, data=data, recorder=recorder)


def _train(project) -> str:
    """Train the primary model's predictions now (a second or two), as the Predictions page's button would."""
    model = ScoringModel.objects.get(project=project, is_primary=True)
    job = TrainingJob.objects.create(project=project, scoring_model=model, message="Seeded.")
    return prediction_model_train(job_id=job.id).message
