import pytest

from accounts.models import ApiKey, Membership
from scoring.models import ScoringRule
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def register(api_client, email="ada@example.com", password="s3cure-enough-pass", name="Ada"):
    return api_client.post("/api/auth/register", {"email": email, "password": password, "name": name}, format="json")


def test_register_creates_user_with_own_project_key_and_default_rules(api_client):
    response = register(api_client)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access", "refresh", "token"}
    assert body["token"] == body["access"]
    membership = Membership.objects.get(user__email="ada@example.com")
    assert membership.role == "owner"
    key = ApiKey.objects.get(project=membership.project, kind="write")
    assert key.key.startswith("lp_pub_") and len(key.key) >= len("lp_pub_") + 22  # >= 128 bits
    assert ScoringRule.objects.filter(project=membership.project).count() == 10


def test_each_registration_gets_a_separate_project(api_client):
    register(api_client, email="a@example.com")
    register(api_client, email="b@example.com")
    assert Membership.objects.values("project").distinct().count() == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "s3cure-enough-pass"}, "email"),
        ({"email": "x@example.com", "password": "123"}, "password"),
        ({"password": "s3cure-enough-pass"}, "email"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(api_client, payload, field):
    response = api_client.post("/api/auth/register", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_register_refuses_a_taken_email_case_insensitively(api_client):
    register(api_client, email="ada@example.com")
    response = register(api_client, email="ADA@example.com")
    assert response.status_code == 400
    assert "email" in response.json()["error"]["fields"]


def test_register_with_a_long_email_domain_names_the_project_within_its_limit(api_client):
    # found by the fuzzer: "<domain> project" overflowed the 200 characters of a project's name (a 500)
    domain = ".".join(["a" * 60] * 4)
    response = register(api_client, email=f"ada@{domain}", name="")
    assert response.status_code == 201, response.json()
    project = Membership.objects.get(user__email=f"ada@{domain}").project
    assert project.domain == domain and project.name == f"{domain} project"[:200]


def test_login_returns_tokens_and_401_on_bad_credentials(api_client):
    register(api_client)
    ok = api_client.post(
        "/api/auth/login", {"email": "ada@example.com", "password": "s3cure-enough-pass"}, format="json"
    )
    assert ok.status_code == 200 and set(ok.json()) == {"user", "access", "refresh", "token"}
    bad = api_client.post("/api/auth/login", {"email": "ada@example.com", "password": "wrong"}, format="json")
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_credentials"


def test_refresh_and_me(api_client):
    tokens = register(api_client).json()
    refreshed = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    me = api_client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ada@example.com"
    assert len(me.json()["projects"]) == 1


def test_protected_endpoints_need_a_token(api_client):
    for path in ("/api/auth/me", "/api/auth/project", "/api/leads"):
        response = api_client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"
    assert api_client.post("/api/projects/1/rotate-key").status_code == 401


def test_current_project_shows_the_write_key(tenant):
    body = tenant.client.get("/api/auth/project").json()
    assert body == {"project": {"id": tenant.project.id, "name": "Tenant A", "domain": "", "apiKey": tenant.write_key}}


def test_rotate_key_revokes_the_old_key_at_once(tenant, api_client, django_capture_on_commit_callbacks):
    # the old key works (and is now cached)
    assert (
        api_client.post(
            "/api/events", {"eventType": "x", "leadId": "l"}, format="json", HTTP_X_API_KEY=tenant.write_key
        ).status_code
        == 202
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.post(f"/api/projects/{tenant.project.id}/rotate-key")

    assert response.status_code == 200
    new_key = response.json()["project"]["apiKey"]
    assert new_key.startswith("lp_pub_") and new_key != tenant.write_key
    assert tenant.client.get("/api/auth/project").json()["project"]["apiKey"] == new_key
    old = api_client.post(
        "/api/events", {"eventType": "x", "leadId": "l"}, format="json", HTTP_X_API_KEY=tenant.write_key
    )
    assert old.status_code == 401
    assert (
        api_client.post(
            "/api/events", {"eventType": "x", "leadId": "l"}, format="json", HTTP_X_API_KEY=new_key
        ).status_code
        == 202
    )


def test_rotate_key_of_another_project_is_404(tenant, other_tenant):
    response = tenant.client.post(f"/api/projects/{other_tenant.project.id}/rotate-key")
    assert response.status_code == 404
    assert ApiKey.objects.get(project=other_tenant.project, revoked_at__isnull=True).key == other_tenant.write_key


def test_rotate_key_needs_an_admin(tenant):
    from tests.accounts.factories import UserFactory

    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role="member")
    response = client_for(member).post(f"/api/projects/{tenant.project.id}/rotate-key")
    assert response.status_code == 403


def test_project_header_selects_among_memberships_and_refuses_others(tenant, other_tenant):
    Membership.objects.create(user=tenant.owner, project=other_tenant.project, role="member")
    chosen = tenant.client.get("/api/auth/project", HTTP_X_LEADPULSE_PROJECT=str(other_tenant.project.id))
    assert chosen.json()["project"]["id"] == other_tenant.project.id
    stranger = other_tenant.client.get("/api/auth/project", HTTP_X_LEADPULSE_PROJECT=str(tenant.project.id))
    assert stranger.status_code == 404
    for junk in ("", " ", "-1", "1.0", "abc"):  # a header that names no project never means "the default one"
        response = tenant.client.get("/api/auth/project", HTTP_X_LEADPULSE_PROJECT=junk)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", junk


def test_deactivating_a_project_in_the_admin_stops_ingest_at_once(
    tenant, api_client, django_capture_on_commit_callbacks
):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    from accounts.models import Project

    body = {"eventType": "x", "leadId": "l"}
    assert api_client.post("/api/events", body, format="json", HTTP_X_API_KEY=tenant.write_key).status_code == 202
    admin = site._registry[Project]
    project = Project.objects.get(pk=tenant.project.pk)
    project.is_active = False
    form = type("Form", (), {"changed_data": ["is_active"]})()
    with django_capture_on_commit_callbacks(execute=True):
        admin.save_model(RequestFactory().post("/"), project, form, change=True)
    assert api_client.post("/api/events", body, format="json", HTTP_X_API_KEY=tenant.write_key).status_code == 403


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/auth/login", {"email": "ada@example.com", "password": 12345678}, "password"),
        ("/api/auth/register", {"email": "ada@example.com", "password": "s3cure-enough-pass", "name": 7}, "name"),
        ("/api/projects", {"name": 0}, "name"),
        ("/api/projects", {"name": "Acme", "isActive": 0}, "isActive"),
        ("/api/projects", {"name": "  " + "x" * 199}, "name"),  # max 200 as sent, not after trimming
    ],
)
def test_json_types_are_not_coerced(tenant, path, payload, field):
    response = tenant.client.post(path, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_revoking_a_non_numeric_key_id_is_404(tenant):
    from rest_framework.test import APIRequestFactory, force_authenticate

    from accounts.api import SecretKeyDetailApi

    request = APIRequestFactory().delete("/")
    force_authenticate(request, user=tenant.owner)
    response = SecretKeyDetailApi.as_view()(request, project_id=tenant.project.id, key_id="abc")
    assert response.status_code == 404
