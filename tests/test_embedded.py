"""`make run`'s embedded mode end to end: SQLite, in-process worker and beat, over real HTTP."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, wait_until

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def embedded(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DJANGO_SETTINGS_MODULE": "leadpulse.settings.local", "LEADPULSE_SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, capture_output=True, cwd=ROOT)
    seeded = subprocess.run(
        [*manage, "seed_demo", "--leads", "5"], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    )
    write_key = re.search(r"(lp_pub_\S+)", seeded.stdout).group(1)
    port = free_port()
    log = (tmp_path / "embedded.log").open("w")
    server = subprocess.Popen(
        [*manage, "runembedded", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, message="the embedded server")
        yield base, write_key, seeded.stdout, tmp_path / "embedded.log"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_make_run_mode_ingests_and_scores_with_nothing_but_python(embedded):
    base, write_key, seeded, log_path = embedded
    assert "demo@leadpulse.local" in seeded

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
    assert leads["count"] == 6 and any(lead["currentScore"] > 0 for lead in leads["results"])

    # celery-beat runs in-process on the database schedule (the reconciler is due every 30 s)
    wait_until(
        lambda: "Sending due task scoring: re-enqueue unscored events" in log_path.read_text(),
        timeout=60,
        message="embedded beat to send the reconciler",
    )
