"""The condition builders' suggestions: names and paths seen in the project's newest events and leads."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.selectors import condition_suggestions_for_project
from ingest.services import events_ingest

pytestmark = pytest.mark.django_db


def send(project, *events: tuple[str, dict, dict], minutes_ago: int = 0, lead: str = "visitor") -> None:
    now = timezone.now() - timedelta(minutes=minutes_ago)
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{lead}-{minutes_ago}-{i}",
                name=name,
                anonymous_id=lead,
                properties=properties,
                context=context,
                timestamp=now + timedelta(seconds=i),
            )
            for i, (name, properties, context) in enumerate(events)
        ],
    )


def test_paths_of_properties_context_and_traits_nested_and_sorted(tenant):
    # given
    send(
        tenant.project,
        ("page_view", {"url": "/pricing", "utm": {"source": "ads", "campaign": {"id": 7}}}, {"page": {"path": "/p"}}),
        ("signup", {"plan": "pro", "not.reachable": 1}, {}),
    )
    Lead.objects.filter(project=tenant.project).update(traits={"plan": "team", "company": {"size": 50}})
    # when
    found = condition_suggestions_for_project(project=tenant.project)
    # then
    assert found.event_names == ["page_view", "signup"]
    assert found.event_paths == [
        "context.page", "context.page.path", "properties.plan", "properties.url", "properties.utm",
        "properties.utm.campaign", "properties.utm.campaign.id", "properties.utm.source",
    ]  # fmt: skip
    assert found.profile_paths == [
        "email", "name", "company", "userId", "traits.company", "traits.company.size", "traits.plan"
    ]  # fmt: skip


def test_another_projects_names_and_paths_never_appear(tenant, other_tenant):
    send(tenant.project, ("page_view", {"url": "/"}, {}))
    send(other_tenant.project, ("secret_event", {"secretProperty": 1}, {"secretContext": 1}), lead="theirs")
    Lead.objects.filter(project=other_tenant.project).update(traits={"secretTrait": 1})

    found = condition_suggestions_for_project(project=tenant.project)

    everything = " ".join([*found.event_names, *found.event_paths, *found.profile_paths])
    assert "secret" not in everything.lower()
    assert found.event_paths == ["properties.url"]
    mine = condition_suggestions_for_project(project=other_tenant.project)
    assert mine.event_paths == ["context.secretContext", "properties.secretProperty"]
    assert "traits.secretTrait" in mine.profile_paths


def test_only_a_bounded_sample_of_the_newest_events_is_read(tenant, django_assert_num_queries):
    send(tenant.project, ("old", {"oldPath": 1}, {}), minutes_ago=60)
    send(tenant.project, *[("page_view", {"newPath": i}, {}) for i in range(3)], minutes_ago=1)

    with django_assert_num_queries(3):  # events sample, leads sample, event names
        found = condition_suggestions_for_project(project=tenant.project, sample=3)

    assert found.event_paths == ["properties.newPath"]
    assert condition_suggestions_for_project(project=tenant.project, sample=4).event_paths == [
        "properties.newPath", "properties.oldPath"
    ]  # fmt: skip
