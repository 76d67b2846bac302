import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.accounts.factories import project_with_owner


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def tenant(db):
    """A project with its owner, an authenticated client and the write key."""
    project, owner, write_key = project_with_owner(name="Tenant A")
    return type("Tenant", (), {"project": project, "owner": owner, "write_key": write_key, "client": client_for(owner)})


@pytest.fixture
def other_tenant(db):
    project, owner, write_key = project_with_owner(name="Tenant B")
    return type("Tenant", (), {"project": project, "owner": owner, "write_key": write_key, "client": client_for(owner)})
