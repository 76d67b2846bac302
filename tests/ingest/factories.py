"""Leads and events stored directly, as rows: for tests that must not go through ingest (which enqueues
scoring after commit) or that need a state ingest would not produce. Otherwise ingest for real, as
`tests.scoring.factories.scored_lead` does."""

import factory
from django.utils import timezone

from ingest.models import Event, Lead
from tests.accounts.factories import project_with_owner


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    project = factory.LazyFunction(lambda: project_with_owner()[0])
    anonymous_id = factory.Sequence(lambda n: f"lead-{n}")


class EventFactory(factory.django.DjangoModelFactory):
    """An unscored track event of a lead (pass `lead=`; its project and anonymous id follow)."""

    class Meta:
        model = Event

    lead = factory.SubFactory(LeadFactory)
    project = factory.SelfAttribute("lead.project")
    event_id = factory.Sequence(lambda n: f"event-{n}")
    name = "page_view"
    anonymous_id = factory.SelfAttribute("lead.anonymous_id")
    timestamp = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
