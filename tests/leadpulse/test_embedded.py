"""`make run`'s embedded mode end to end: SQLite, in-process worker and beat, over real HTTP."""

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.live import embedded_server, wait_until

pytestmark = pytest.mark.live


RECONCILER_EVERY_SECONDS = 2


def reconciler_every_two_seconds(database: Path) -> None:
    """Put the seeded reconciler on a 2 s interval of its own (30 s as seeded: the test would wait up to that)."""
    with closing(sqlite3.connect(database)) as db, db:
        interval = db.execute(
            "INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES (?, 'seconds')",
            [RECONCILER_EVERY_SECONDS],
        ).lastrowid
        changed = db.execute(
            "UPDATE django_celery_beat_periodictask SET interval_id = ? WHERE task = 'scoring.events_reconcile_task'",
            [interval],
        ).rowcount
    assert changed == 1


@pytest.fixture
def embedded(tmp_path: Path, migrated_sqlite: Path):
    """`make run`'s steps: a fresh SQLite file migrated (the session's, copied), the demo seeded, the server."""
    with embedded_server(
        tmp_path,
        migrated=migrated_sqlite,
        seed_args=("--leads", "5", "--outcomes", "120"),
        before_start=reconciler_every_two_seconds,
    ) as server:
        write_key = re.search(r"(lp_pub_\S+)", server.seeded).group(1)
        yield server.base, write_key, server.seeded, server.log


def test_make_run_mode_ingests_and_scores_with_nothing_but_python(embedded):
    base, write_key, seeded, log_path = embedded
    assert "demo@leadpulse.local" in seeded
    assert "Predictions: Trained v1 on 90 outcomes" in seeded  # outcomes and a model, on SQLite

    for event_type in ("signup", "demo_request"):
        response = httpx.post(
            f"{base}/api/events",
            json={"eventType": event_type, "leadId": "visitor-1"},
            headers={"X-API-Key": write_key},
        )
        assert response.status_code == 202
    tokens = httpx.post(f"{base}/api/auth/login", json={"email": "demo@leadpulse.local", "password": "leadpulse-demo"})
    auth = {"Authorization": f"Bearer {tokens.json()['access']}"}

    def scored():
        results = httpx.get(f"{base}/api/leads?anonymousId=visitor-1", headers=auth).json()["results"]
        return results and results[0]["currentScore"] == 80

    wait_until(scored, timeout=30, message="the in-process worker to score the lead")
    health = httpx.get(f"{base}/api/health").json()
    assert health == {**health, "status": "ok", "database": "ok", "redis": "embedded"}
    # the seeded demo leads were scored too
    leads = httpx.get(f"{base}/api/leads", headers=auth).json()
    assert leads["count"] == 5 + 120 + 1 and any(lead["currentScore"] > 0 for lead in leads["results"])

    # celery-beat runs in-process on the database schedule (the reconciler is due every 2 s, as set there):
    # it sends the reconciler again and again, not only once at start
    wait_until(
        lambda: log_path.read_text().count("Sending due task scoring: re-enqueue unscored events") >= 3,
        timeout=60,
        message="embedded beat to send the reconciler on its schedule",
    )
