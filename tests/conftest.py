import socket
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import django_ratelimit.core
import pytest
import redis
import redis.connection
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

import core.ratelimits
from accounts.models import Project, User
from tests.accounts.factories import project_with_owner
from tests.live import ROOT, WorkerPool, sqlite_migrate, web_server

# Modules whose tests run in the test process alone: no server, worker, browser or other process, no threads, no
# clock, nothing but this process's requests to the test database and Redis. `make test` runs them (`-m in_process`)
# in a second pytest session beside the rest, at a lower CPU priority, with its own test database and Redis database
# (LEADPULSE_TEST_SESSION, leadpulse/settings/test.py): they fill the CPU the main session leaves idle while it waits
# on its servers, workers and browsers, and no timing of the main session's tests depends on them. A new module runs
# in the main session unless it is added here.
IN_PROCESS_MODULES = frozenset(
    {
        "tests/accounts/test_api.py",
        "tests/accounts/test_invitations.py",
        "tests/accounts/test_secret_keys.py",
        "tests/accounts/test_sign_in_limits.py",
        "tests/accounts/test_tokens.py",
        "tests/api/test_access.py",
        "tests/api/test_fuzz.py",
        "tests/automations/test_api.py",
        "tests/automations/test_engine.py",
        "tests/automations/test_lead_document_facets.py",
        "tests/automations/test_pages.py",
        "tests/automations/test_registry.py",
        "tests/companies/test_api.py",
        "tests/companies/test_pages.py",
        "tests/companies/test_rollup.py",
        "tests/companies/test_selectors.py",
        "tests/companies/test_services.py",
        "tests/companies/test_triggers.py",
        "tests/core/test_charts.py",
        "tests/core/test_contracts.py",
        "tests/core/test_errors.py",
        "tests/core/test_fanout.py",
        "tests/core/test_json_format.py",
        "tests/core/test_nav.py",
        "tests/core/test_queries.py",
        "tests/core/test_ratelimits.py",
        "tests/ingest/test_admission.py",
        "tests/ingest/test_json_bodies.py",
        "tests/ingest/test_lead_tallies.py",
        "tests/ingest/test_pages.py",
        "tests/ingest/test_schema.py",
        "tests/ingest/test_segment_api.py",
        "tests/ingest/test_server_event_view.py",
        "tests/ingest/test_store_statements.py",
        "tests/ingest/test_suggestions.py",
        "tests/leadpulse/test_admin.py",
        "tests/leadpulse/test_csp.py",
        "tests/leadpulse/test_dashboard.py",
        "tests/leadpulse/test_health.py",
        "tests/leadpulse/test_seed_demo.py",
        "tests/predictions/test_features.py",
        "tests/predictions/test_outcomes.py",
        "tests/predictions/test_predictions_api.py",
        "tests/predictions/test_predictions_pages.py",
        "tests/predictions/test_training.py",
        "tests/predictions/test_training_seed.py",
        "tests/scoring/test_adjustment_pages.py",
        "tests/scoring/test_adjustments_api.py",
        "tests/scoring/test_adjustments_properties.py",
        "tests/scoring/test_adjustments_replay.py",
        "tests/scoring/test_api.py",
        "tests/scoring/test_batch_properties.py",
        "tests/scoring/test_batch_statements.py",
        "tests/scoring/test_csv_export.py",
        "tests/scoring/test_engine.py",
        "tests/scoring/test_engine_adjustments.py",
        "tests/scoring/test_engine_evaluate.py",
        "tests/scoring/test_engine_matrix.py",
        "tests/scoring/test_engine_windows.py",
        "tests/scoring/test_history_folded.py",
        "tests/scoring/test_identity.py",
        "tests/scoring/test_lead_facets.py",
        "tests/scoring/test_leads_gdpr.py",
        "tests/scoring/test_matrix.py",
        "tests/scoring/test_model_pages.py",
        "tests/scoring/test_models.py",
        "tests/scoring/test_pages.py",
        "tests/scoring/test_path_turning_points.py",
        "tests/scoring/test_reports_api.py",
        "tests/scoring/test_rescore_decay.py",
        "tests/scoring/test_rescore_slices.py",
        "tests/scoring/test_rules_api.py",
        "tests/scoring/test_rules_windows_api.py",
        "tests/scoring/test_services.py",
        "tests/scoring/test_version_pages.py",
        "tests/scoring/test_versions.py",
        "tests/scoring/test_window_pages.py",
        "tests/tools/test_architecture.py",
    }
)


def pytest_configure(config):
    if missing := sorted(module for module in IN_PROCESS_MODULES if not (ROOT / module).is_file()):
        raise pytest.UsageError(f"IN_PROCESS_MODULES names modules that do not exist: {missing}")


# What an in-process module's test may not use: each starts or needs processes of its own.
NOT_IN_PROCESS_FIXTURES = frozenset({"workers", "live_web", "live_pipeline", "migrated_sqlite", "receiver"})


@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item):
    if item.nodeid.split("::", 1)[0] not in IN_PROCESS_MODULES:
        return
    used = NOT_IN_PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used or item.get_closest_marker("live"):
        raise pytest.UsageError(
            f"{item.nodeid} uses {sorted(used) or 'live'}: take its module out of IN_PROCESS_MODULES"
        )
    item.add_marker(pytest.mark.in_process)


def pytest_collection_modifyitems(items):
    """Run the tests that share the Celery worker processes last (in their order, after pytest-django's).

    Once started, the session's workers consume every task sent to the test Redis until the session
    ends. A test that does not ask for them (one that runs a task itself, counts what is queued, or
    expects nothing to be scored) would otherwise depend on whether a live test happened to run first.
    """
    shared = [item for item in items if "workers" in getattr(item, "fixturenames", ())]
    # a module's live tests together, so its module-scoped servers start once
    first = {}
    for index, item in enumerate(shared):
        first.setdefault(item.module, index)
    shared.sort(key=lambda item: first[item.module])
    items[:] = [item for item in items if "workers" not in getattr(item, "fixturenames", ())] + shared


@pytest.fixture
def frozen_rate_windows(monkeypatch):
    """Hold the rate limits' clocks still, so that no fixed window ends in the middle of a test.

    Windows are aligned to the wall clock: one ending between two requests resets the count and
    the expected 429 is a 2xx. Both counters read `time.time()`: django-ratelimit's (per IP, user,
    account) and ours (`core.ratelimits`, the write key's events).
    """
    frozen = SimpleNamespace(time=lambda: 1_800_000_000.5)
    monkeypatch.setattr(django_ratelimit.core, "time", frozen)
    monkeypatch.setattr(core.ratelimits, "time", frozen)


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 recording what it is sent (webhooks, Slack): tests/automations/receiver.py."""
    from tests.automations.receiver import receiver_start

    receiver = receiver_start()
    yield receiver
    receiver.stop()


@pytest.fixture
def refusing_port():
    """A port of 127.0.0.1 that refuses connections during the test: bound, never listening.

    Unlike a `free_port()`, nobody else can start listening on it in the meantime.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Count the commands and pipelines this process sends to Redis (each is one round trip): [count]."""
    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent[0] += 1
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A fresh SQLite file migrated by `manage.py migrate` with the embedded settings, once per session: the
    embedded-mode tests copy it rather than migrate their own (seconds each)."""
    path = tmp_path_factory.mktemp("migrated-sqlite") / "migrated.sqlite3"
    sqlite_migrate(path)
    return path


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


@dataclass(frozen=True)
class Tenant:
    """A project with its owner, the owner's authenticated API client and the project's write key."""

    project: Project
    owner: User
    write_key: str
    client: APIClient

    @classmethod
    def create(cls, *, name: str) -> "Tenant":
        project, owner, write_key = project_with_owner(name=name)
        return cls(project=project, owner=owner, write_key=write_key, client=client_for(owner))


@pytest.fixture
def tenant(db) -> Tenant:
    """A project created as registration creates one, its owner, their API client and the write key."""
    return Tenant.create(name="Tenant A")


@pytest.fixture
def other_tenant(db) -> Tenant:
    """A second project, for the checks that nothing crosses projects."""
    return Tenant.create(name="Tenant B")


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker):
    """Two real `celery worker` processes (prefork, 2 children each) on the test database."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    pool = WorkerPool(count=2, concurrency=2)
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def live_web(workers):
    """One `uvicorn leadpulse.asgi:application` (the Procfile's web process) on the test database and Redis, for the
    browser tests that only need a server to be there: each makes its own project and user, so one start (and one
    graceful stop, checked at the end) serves them all instead of seconds of both per test."""
    with web_server(ROOT / "test-artifacts" / "web.log") as base:
        yield base


@pytest.fixture
def live_pipeline(transactional_db, workers):
    """Committed data, real workers; waits for them to go idle before the database is flushed."""
    yield workers
    if workers.processes:
        workers.wait_idle()
