import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.accounts.factories import project_with_owner
from tests.live import WorkerPool


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


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker):
    """Two real `celery worker` processes (prefork, 2 children each) on the test database."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    pool = WorkerPool(count=2, concurrency=2)
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def live_pipeline(transactional_db, workers):
    """Committed data, real workers; waits for them to go idle before the database is flushed."""
    yield workers
    if workers.processes:
        workers.wait_idle()
