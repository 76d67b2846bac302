"""Server-rendered pages: sign-in, project scoping, fixed query budgets."""

import re

import pytest
from django.test import Client

from accounts.models import Membership
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_score
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
PAGES = [
    "project_overview",
    "ingest:event_list",
    "scoring:lead_list",
    "scoring:rule_list",
    "scoring:scoring_model_list",
    "automations:automation_list",
    "ingest:event_simulate",
    "ingest:integration_list",
    "system_status",
]


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def seed(project, n):
    from django.utils import timezone

    events_ingest(
        project_id=project.id,
        events=[CanonicalEvent(event_id=f"{project.id}-{i}", name="signup" if i % 3 else "page_view",
                               anonymous_id=f"{project.name}-{i}", timestamp=timezone.now()) for i in range(n)],
    )  # fmt: skip
    for lead in project.leads.all():
        lead_score(lead_id=lead.id)


def test_register_signs_in_and_lands_on_the_new_projects_overview(client):
    response = client.post("/register/", {"name": "Ada", "email": "ada@x.io", "password": "s3cure-enough-pass"})
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and b"Ada&#x27;s project" in page.content


def test_login_logout_and_csrf(tenant):
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/login/")
    token = login_page.cookies["csrftoken"].value
    bad = client.post("/login/", {"username": tenant.owner.email, "password": "wrong", "csrfmiddlewaretoken": token})
    assert bad.status_code == 200 and b"correct email" in bad.content.lower()
    assert client.post("/login/", {"username": tenant.owner.email, "password": "x"}).status_code == 403  # no token
    ok = client.post("/login/", {"username": tenant.owner.email, "password": "correct horse battery staple",
                                 "csrfmiddlewaretoken": token})  # fmt: skip
    assert ok.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert client.get("/").status_code == 302


def test_password_reset_sends_a_link_that_sets_the_password(tenant, mailoutbox):
    client = Client()
    client.post("/password-reset/", {"email": tenant.owner.email})
    assert len(mailoutbox) == 1
    link = next(line for line in mailoutbox[0].body.splitlines() if "/password-reset/" in line).split("testserver")[1]
    form = client.get(link, follow=True)
    assert form.status_code == 200 and b"new password" in form.content.lower()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "an0ther-long-pass", "new_password2": "an0ther-long-pass"}
    )
    assert done.status_code == 302 and done["Location"] == "/password-reset/done/"
    assert Client().login(username=tenant.owner.email, password="an0ther-long-pass")


@pytest.mark.parametrize("configured", [False, True])
def test_google_sign_in_is_offered_only_when_configured(client, settings, configured):
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "key.apps.googleusercontent.com" if configured else ""
    page = client.get("/login/").content.decode()
    assert ("Sign in with Google" in page) is configured
    if configured:
        start = client.post("/login/google-oauth2/")  # redirects to Google, never followed
        assert start.status_code == 302 and start["Location"].startswith("https://accounts.google.com/")


def test_google_sign_up_gets_its_own_project():
    from accounts.social import project_for_new_user

    user = UserFactory()
    project_for_new_user(user=user, is_new=True)
    assert Membership.objects.filter(user=user, role="owner").count() == 1


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_for_the_current_project_only(tenant, other_tenant, page):
    seed(other_tenant.project, 3)
    from django.urls import reverse

    response = browser(tenant.owner).get(reverse(page))
    assert response.status_code == 200
    assert b"Tenant B" not in response.content
    assert other_tenant.write_key.encode() not in response.content


def test_the_navigation_lists_every_apps_pages_in_order_and_marks_the_current_one(tenant):
    html = browser(tenant.owner).get("/rules/").content.decode()
    links = re.findall(r'<a href="([^"]*)" class="([^"]*)">([^<]*)</a>', re.search(r"<nav>(.*?)</nav>", html).group(1))
    assert [(href, label) for href, _, label in links] == [
        ("/", "Overview"),
        ("/events/", "Events"),
        ("/leads/", "Leads"),
        ("/companies/", "Companies"),
        ("/rules/", "Rules"),
        ("/models/", "Models"),
        ("/predictions/", "Predictions"),
        ("/automations/", "Automations"),
        ("/simulator/", "Simulator"),
        ("/integrations/", "Integrations"),
        ("/system/", "System"),
    ]
    assert [label for _, css, label in links if css == "active"] == ["Rules"]


def test_project_switcher_only_switches_to_own_projects(tenant, other_tenant):
    client = browser(tenant.owner)
    assert client.post("/projects/switch/", {"project_id": other_tenant.project.id}).status_code == 403
    Membership.objects.create(user=tenant.owner, project=other_tenant.project, role="member")
    client.post("/projects/switch/", {"project_id": other_tenant.project.id})
    assert b"Tenant B" in client.get("/").content


def test_overview_keeps_a_fixed_query_budget(tenant, django_assert_max_num_queries):
    seed(tenant.project, 5)
    client = browser(tenant.owner)
    client.get("/")
    with django_assert_max_num_queries(14) as few:
        client.get("/")
    seed(tenant.project, 60)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/").status_code == 200


def test_the_project_switcher_does_not_redirect_off_site(tenant):
    response = browser(tenant.owner).post(
        "/projects/switch/", {"project_id": tenant.project.id, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_a_user_without_a_project_gets_one():
    user = UserFactory()
    assert browser(user).get("/").status_code == 200
    assert Membership.objects.filter(user=user, role="owner").count() == 1
