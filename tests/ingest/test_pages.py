"""Events, simulator and integrations pages: scoping, validation, key rotation, query budgets."""

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Membership
from accounts.selectors import write_key_for_project
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services.fold import primary_model
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member_of(project, role="member"):
    user = UserFactory()
    Membership.objects.create(user=user, project=project, role=role)
    return user


def seed(project, n, *, prefix="", name=None):
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{prefix}{project.id}-{i}",
                name=name or ("signup" if i % 2 else "page_view"),
                anonymous_id=f"{prefix}{project.name}-visitor-{i}",
                properties={"url": f"/p/{i}", "plan": "pro"},
                timestamp=timezone.now(),
            )
            for i in range(n)
        ],
    )


# --- Events --------------------------------------------------------------------------------


def test_events_page_lists_only_the_current_projects_events_with_lead_links(tenant, other_tenant):
    # given
    seed(tenant.project, 3)
    seed(other_tenant.project, 3, name="secret_b_event")
    # when
    page = browser(tenant.owner).get("/events/")
    # then
    html = page.content.decode()
    assert page.status_code == 200
    lead = Lead.objects.filter(project=tenant.project).first()
    assert f"/leads/{lead.id}/" in html
    assert "&quot;url&quot;: &quot;/p/1&quot;" in html and "signup" in html
    assert "secret_b_event" not in html and "Tenant B" not in html
    assert 'src="/static/js/events.js"' in html


def test_events_page_filters_by_type_and_offers_the_projects_types(tenant, other_tenant):
    seed(tenant.project, 4)
    seed(other_tenant.project, 2, name="other_type")
    page = browser(tenant.owner).get("/events/", {"type": "signup"}).content.decode()
    rows = [line for line in page.splitlines() if "data-event-id=" in line]
    assert len(rows) == 2
    assert '<option value="page_view"' in page and '<option value="signup" selected' in page
    assert "other_type" not in page
    assert 'data-filter="signup"' in page


def test_events_page_shows_the_newest_first_and_at_most_100(tenant):
    seed(tenant.project, 105)
    page = browser(tenant.owner).get("/events/").content.decode()
    assert page.count("data-event-id=") == 100


def test_events_page_keeps_a_fixed_query_budget(tenant, django_assert_max_num_queries):
    seed(tenant.project, 3)
    client = browser(tenant.owner)
    client.get("/events/")
    with django_assert_max_num_queries(7) as few:
        client.get("/events/")
    seed(tenant.project, 60, prefix="more-")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/events/").status_code == 200


# --- Simulator -----------------------------------------------------------------------------


def test_simulator_stores_a_track_event_and_links_its_lead(tenant):
    client = browser(member_of(tenant.project))  # members may simulate too
    page = client.post(
        "/simulator/",
        {"event_type": "demo_request", "anonymous_id": "sim-1", "properties": '{"plan": "pro"}', "event_id": "sim-e1"},
    )
    assert page.status_code == 200
    event = Event.objects.get(project=tenant.project, event_id="sim-e1")
    assert event.name == "demo_request" and event.type == "track" and event.properties == {"plan": "pro"}
    html = page.content.decode()
    assert "stored" in html and "sim-e1" in html
    assert f'data-sim-lead="{event.lead_id}"' in html and f"/leads/{event.lead_id}/" in html

    again = client.post("/simulator/", {"event_type": "demo_request", "anonymous_id": "sim-1", "event_id": "sim-e1"})
    assert "duplicate" in again.content.decode()
    assert Event.objects.filter(project=tenant.project, event_id="sim-e1").count() == 1


def test_simulator_can_identify_with_an_email(tenant):
    browser(tenant.owner).post(
        "/simulator/",
        {"event_type": "signup", "anonymous_id": "sim-2", "email": "ada@x.io", "identify": "on", "properties": ""},
    )
    identify = Event.objects.get(project=tenant.project, type="identify")
    assert identify.properties == {"email": "ada@x.io"} and identify.anonymous_id == "sim-2"
    assert Event.objects.filter(project=tenant.project, type="track", name="signup").count() == 1


def test_simulator_suggests_the_projects_event_types_and_rule_names(tenant, other_tenant):
    from scoring.models import ScoringRule

    ScoringRule.objects.create(
        project=tenant.project, model=primary_model(tenant.project), event_type="webinar_joined", points=5,
        name="Webinar attendee",
    )  # fmt: skip
    ScoringRule.objects.create(
        project=other_tenant.project, model=primary_model(other_tenant.project), event_type="their_event", points=5,
        name="Their secret rule",
    )  # fmt: skip
    seed(tenant.project, 1, name="video_played")
    seed(other_tenant.project, 1, name="their_seen_event")
    html = browser(tenant.owner).get("/simulator/").content.decode()
    assert '<datalist id="rule-event-types">' in html
    assert '<option value="webinar_joined" label="rule: Webinar attendee">' in html
    assert '<option value="video_played" label="seen, no rule">' in html
    assert "their_event" not in html and "Their secret rule" not in html and "their_seen_event" not in html


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"event_type": "x", "anonymous_id": "a", "properties": "{not json"}, "properties", "Malformed JSON"),
        ({"event_type": "x", "anonymous_id": "a", "properties": "[1, 2]"}, "properties", "Must be a JSON object"),
        ({"event_type": "bad\x01name", "anonymous_id": "a", "properties": "{}"}, "event_type", "printable"),
        ({"event_type": "x", "anonymous_id": "", "properties": "{}"}, "anonymous_id", "required"),
        ({"event_type": "x", "anonymous_id": "a", "properties": '{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}'},
         "properties", "deeper"),
        ({"event_type": "x", "anonymous_id": "a", "identify": "on", "properties": "{}"}, "email", "email"),
    ],
)  # fmt: skip
def test_simulator_rejects_bad_input_with_a_field_error(tenant, data, field, message):
    page = browser(tenant.owner).post("/simulator/", data)
    assert page.status_code == 200
    errors = page.context["form"].errors
    assert field in errors and message.lower() in " ".join(errors[field]).lower()
    assert f'data-error-for="{field}"' in page.content.decode()
    assert not Event.objects.filter(project=tenant.project).exists()


# --- Integrations --------------------------------------------------------------------------


def test_integrations_shows_this_projects_key_snippets_and_team(tenant, other_tenant):
    mate = member_of(tenant.project, role="admin")
    html = browser(tenant.owner).get("/integrations/").content.decode()
    assert tenant.write_key in html and other_tenant.write_key not in html
    assert "http://testserver/sdk/ls.js" in html
    assert "http://testserver/api/ingest/event" in html and "http://testserver/api/events/batch" in html
    assert "http://testserver/v1/track" in html
    assert 'href="/api/docs/"' in html and f"/api/projects/{tenant.project.id}/secret-keys" in html
    assert "segment.analytics" in html and "AnalyticsBrowser.load" in html
    assert mate.email in html and other_tenant.owner.email not in html
    # the copy buttons are wired by static/js/dashboard.js (no inline script under the CSP)
    assert 'action="/projects/invite/"' in html and 'data-copy="#write-key"' in html and "js/dashboard.js" in html


def test_rotate_requires_confirmation_and_changes_the_key(tenant):
    client = browser(tenant.owner)
    unconfirmed = client.post("/integrations/rotate-key/", {})
    assert unconfirmed.status_code == 200 and "confirm" in unconfirmed.context["rotate_form"].errors
    assert write_key_for_project(project=tenant.project) == tenant.write_key

    done = client.post("/integrations/rotate-key/", {"confirm": "on"}, follow=True)
    new_key = write_key_for_project(project=tenant.project)
    assert new_key != tenant.write_key
    assert new_key in done.content.decode() and tenant.write_key not in done.content.decode()
    assert ApiKey.objects.filter(project=tenant.project, revoked_at__isnull=False).count() == 1


@pytest.mark.parametrize("url", ["/integrations/rotate-key/"])
def test_members_cannot_rotate(tenant, url):
    client = browser(member_of(tenant.project))
    assert client.post(url, {"confirm": "on"}).status_code == 403
    assert write_key_for_project(project=tenant.project) == tenant.write_key
    assert "Rotate key" not in client.get("/integrations/").content.decode()


def test_send_test_event_stores_one(tenant, other_tenant):
    page = browser(tenant.owner).post("/integrations/test-event/")
    assert page.status_code == 200
    event = Event.objects.get(project=tenant.project)
    assert event.name == "test_event"
    assert not Event.objects.filter(project=other_tenant.project).exists()
    html = page.content.decode()
    assert "data-test-result" in html and event.event_id in html and f"/leads/{event.lead_id}/" in html


def test_pages_need_sign_in(client):
    for url in ("/events/", "/simulator/", "/integrations/"):
        assert client.get(url).status_code == 302
    assert client.post("/integrations/test-event/").status_code == 302
