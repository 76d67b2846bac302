from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Project
from accounts.services import key_hash
from scoring.models import ScoringRule
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def create_key(tenant) -> dict:
    response = tenant.client.post(f"/api/projects/{tenant.project.id}/secret-keys")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def member(tenant):
    user = UserFactory()
    Membership.objects.create(user=user, project=tenant.project, role=Membership.Role.MEMBER)
    return client_for(user)


def test_a_created_secret_key_authenticates_the_api_for_its_project(tenant):
    scored_lead(tenant.project, "anon-1", "signup")
    # when
    body = create_key(tenant)
    # then
    assert set(body) == {"id", "prefix", "createdAt", "key"}
    assert body["key"].startswith("lp_sec_") and body["prefix"] == body["key"][:12]
    client = key_client(body["key"])
    leads = client.get("/api/leads")
    assert leads.status_code == 200 and [r["anonymousId"] for r in leads.json()["results"]] == ["anon-1"]
    assert client.get("/api/auth/project").json()["project"]["id"] == tenant.project.id
    assert client.get("/api/rules").status_code == 200


def test_a_secret_key_has_admin_rights_in_its_project(tenant):
    client = key_client(create_key(tenant)["key"])
    rule = ScoringRule.objects.filter(project=tenant.project).first()
    assert rule is not None
    response = client.patch(f"/api/rules/{rule.id}", {"points": 7}, format="json")
    assert response.status_code == 200, response.content


def test_only_the_hash_and_prefix_are_stored(tenant):
    body = create_key(tenant)
    row = ApiKey.objects.get(pk=body["id"])
    assert row.kind == ApiKey.Kind.SECRET and row.project_id == tenant.project.id
    assert row.key_hash == key_hash(body["key"]) and row.prefix == body["key"][:12]
    stored = [str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values()]
    assert not any(body["key"] in value for value in stored)


def test_list_shows_prefix_and_last_use_but_never_the_key(tenant):
    body = create_key(tenant)
    assert key_client(body["key"]).get("/api/leads").status_code == 200
    response = tenant.client.get(f"/api/projects/{tenant.project.id}/secret-keys")
    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert set(listed) == {"id", "prefix", "createdAt", "lastUsedAt", "revokedAt"}
    assert listed["prefix"] == body["prefix"] and listed["lastUsedAt"] is not None and listed["revokedAt"] is None
    assert body["key"] not in response.content.decode()


def test_last_used_is_written_at_most_once_a_minute(tenant):
    body = create_key(tenant)
    client = key_client(body["key"])
    assert ApiKey.objects.get(pk=body["id"]).last_used_at is None
    client.get("/api/auth/project")
    first = ApiKey.objects.get(pk=body["id"]).last_used_at
    assert first is not None
    client.get("/api/auth/project")
    assert ApiKey.objects.get(pk=body["id"]).last_used_at == first
    stale = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=body["id"]).update(last_used_at=stale)
    client.get("/api/auth/project")
    assert ApiKey.objects.get(pk=body["id"]).last_used_at > stale + timedelta(minutes=1)


def test_a_revoked_key_is_refused_at_once(tenant):
    body = create_key(tenant)
    client = key_client(body["key"])
    assert client.get("/api/leads").status_code == 200
    # when
    assert tenant.client.delete(f"/api/projects/{tenant.project.id}/secret-keys/{body['id']}").status_code == 204
    # then
    response = client.get("/api/leads")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    listed = tenant.client.get(f"/api/projects/{tenant.project.id}/secret-keys").json()["results"]
    assert listed[0]["revokedAt"] is not None


@pytest.mark.parametrize("path", ["/api/leads", "/api/auth/project", "/api/rules", "/api/projects"])
def test_a_write_key_or_an_unknown_secret_key_does_not_authenticate_the_api(tenant, path):
    assert key_client(tenant.write_key).get(path).status_code == 401
    assert key_client("lp_sec_" + "x" * 43).get(path).status_code == 401
    assert APIClient().get(path).status_code == 401


def test_unauthenticated_key_endpoints_are_401(tenant):
    client = APIClient()
    assert client.get(f"/api/projects/{tenant.project.id}/secret-keys").status_code == 401
    assert client.post(f"/api/projects/{tenant.project.id}/secret-keys").status_code == 401
    assert client.delete(f"/api/projects/{tenant.project.id}/secret-keys/1").status_code == 401
    assert client.post("/api/projects", {"name": "x"}, format="json").status_code == 401
    assert client.patch(f"/api/projects/{tenant.project.id}", {"name": "x"}, format="json").status_code == 401


def test_a_secret_key_never_reaches_another_project(tenant, other_tenant):
    scored_lead(other_tenant.project, "theirs", "signup")
    client = key_client(create_key(tenant)["key"])
    other_id = other_tenant.project.id
    assert client.get("/api/leads", HTTP_X_LEADPULSE_PROJECT=str(other_id)).status_code == 404
    assert client.get("/api/auth/project", HTTP_X_LEADPULSE_PROJECT="nonsense").status_code == 404
    assert client.get("/api/leads", HTTP_X_LEADPULSE_PROJECT=str(tenant.project.id)).status_code == 200
    assert client.get(f"/api/projects/{other_id}/secret-keys").status_code == 404
    assert client.patch(f"/api/projects/{other_id}", {"name": "pwned"}, format="json").status_code == 404
    assert client.post(f"/api/projects/{other_id}/rotate-key").status_code == 404
    assert [p["id"] for p in client.get("/api/projects").json()["results"]] == [tenant.project.id]
    assert Project.objects.get(pk=other_id).name == "Tenant B"


def test_another_projects_key_ids_are_404(tenant, other_tenant):
    theirs = create_key(other_tenant)
    response = tenant.client.delete(f"/api/projects/{tenant.project.id}/secret-keys/{theirs['id']}")
    assert response.status_code == 404
    response = tenant.client.delete(f"/api/projects/{other_tenant.project.id}/secret-keys/{theirs['id']}")
    assert response.status_code == 404
    assert tenant.client.post(f"/api/projects/{other_tenant.project.id}/secret-keys").status_code == 404
    assert key_client(theirs["key"]).get("/api/leads").status_code == 200


def test_members_list_keys_but_cannot_create_or_revoke(tenant, member):
    body = create_key(tenant)
    assert member.get(f"/api/projects/{tenant.project.id}/secret-keys").status_code == 200
    assert member.post(f"/api/projects/{tenant.project.id}/secret-keys").status_code == 403
    assert member.delete(f"/api/projects/{tenant.project.id}/secret-keys/{body['id']}").status_code == 403
    assert ApiKey.objects.get(pk=body["id"]).revoked_at is None


def test_a_secret_key_cannot_mint_keys_or_use_user_endpoints(tenant):
    client = key_client(create_key(tenant)["key"])
    assert client.post(f"/api/projects/{tenant.project.id}/secret-keys").status_code == 403
    assert client.get("/api/auth/me").status_code == 403
    assert client.post("/api/projects", {"name": "New"}, format="json").status_code == 403


def test_projects_list_shows_the_callers_projects_with_role(tenant, other_tenant):
    Membership.objects.create(user=tenant.owner, project=other_tenant.project, role=Membership.Role.MEMBER)
    response = tenant.client.get("/api/projects")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(p["id"], p["role"]) for p in results] == [
        (tenant.project.id, "owner"),
        (other_tenant.project.id, "member"),
    ]
    assert set(results[0]) == {"id", "name", "domain", "isActive", "createdAt", "role"}


def test_create_project_provisions_rules_and_a_write_key(tenant):
    response = tenant.client.post("/api/projects", {"name": "Second", "domain": "second.example"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    project = Project.objects.get(pk=body["id"])
    assert (body["name"], body["domain"], body["role"], body["isActive"]) == ("Second", "second.example", "owner", True)
    assert body["apiKey"].startswith("lp_pub_")
    assert ApiKey.objects.filter(project=project, kind=ApiKey.Kind.WRITE, key=body["apiKey"]).exists()
    assert ScoringRule.objects.filter(project=project).exists()
    assert project.memberships.get().user == tenant.owner


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}])
def test_create_project_rejects_a_bad_name_naming_the_field(tenant, payload):
    response = tenant.client.post("/api/projects", payload, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


def test_patch_project_updates_fields_and_refreshes_ingest(tenant, api_client, django_capture_on_commit_callbacks):
    event = {"eventType": "x", "leadId": "l"}
    assert api_client.post("/api/events", event, format="json", HTTP_X_API_KEY=tenant.write_key).status_code == 202
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.patch(
            f"/api/projects/{tenant.project.id}", {"name": "Renamed", "isActive": False}, format="json"
        )
    # then
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["isActive"], response.json()["role"]) == (
        "Renamed",
        False,
        "owner",
    )
    project = Project.objects.get(pk=tenant.project.id)
    assert (project.name, project.is_active, project.domain) == ("Renamed", False, tenant.project.domain)
    assert api_client.post("/api/events", event, format="json", HTTP_X_API_KEY=tenant.write_key).status_code == 403


def test_patch_project_rejects_bad_input_and_other_projects(tenant, other_tenant, member):
    response = tenant.client.patch(f"/api/projects/{tenant.project.id}", {"name": ""}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    response = tenant.client.patch(f"/api/projects/{tenant.project.id}", {"isActive": "maybe"}, format="json")
    assert response.status_code == 400 and "isActive" in response.json()["error"]["fields"]
    assert (
        tenant.client.patch(f"/api/projects/{other_tenant.project.id}", {"name": "x"}, format="json").status_code == 404
    )
    assert member.patch(f"/api/projects/{tenant.project.id}", {"name": "x"}, format="json").status_code == 403
    assert Project.objects.get(pk=tenant.project.id).name == "Tenant A"
