"""Production is the default, secure and refuses to start without a real secret key.

Processes start as a deploy starts them: no DJANGO_SETTINGS_MODULE (the entry points'
default decides), the Procfile's commands, the test database and Redis.
"""

import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from leadpulse.health import worker_heartbeat_record
from leadpulse.settings.base import INSECURE_DEVELOPMENT_SECRET_KEY
from tests.accounts.factories import project_with_owner
from tests.live import ROOT, free_port, procfile_commands, procfile_env, procfile_web, worker_env

SECRET_KEY = secrets.token_urlsafe(50)
NO_KEY = "DJANGO_SECRET_KEY is not set"
PREFIX = "LeadPulse cannot start (leadpulse.settings.production): "
SHOW = "from django.conf import settings as s; print(s.SETTINGS_MODULE, s.DEBUG)"


def deploy_env(**extra: str) -> dict[str, str]:
    """A deploy's environment: the test stores, no settings module named, no secret key unless given."""
    env = {k: v for k, v in worker_env().items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY")}
    # Set even when empty: a developer's .env must not fill it in (settings read .env without overwriting).
    return {**env, "DJANGO_SECRET_KEY": "", **extra}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", NO_KEY),
        (INSECURE_DEVELOPMENT_SECRET_KEY, "DJANGO_SECRET_KEY is the public development key"),
        ("change-me", "DJANGO_SECRET_KEY is too weak"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key_in_one_line(key, reason):
    done = run([sys.executable, "manage.py", "check"], deploy_env(DJANGO_SECRET_KEY=key))
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip().splitlines()
    assert len(output) == 1, output  # no traceback
    assert output[0].startswith(PREFIX + reason)


def test_check_deploy_passes_on_production_settings_with_no_warning():
    done = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        deploy_env(DJANGO_SECRET_KEY=SECRET_KEY),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "shell", "--no-imports", "-c", SHOW],
        ["-c", f"import leadpulse.asgi; {SHOW}"],
        ["-c", f"from leadpulse.celery import app; {SHOW}"],
    ],
    ids=["manage.py", "asgi", "celery"],
)
def test_the_default_settings_module_is_production(argv):
    done = run([sys.executable, *argv], deploy_env(DJANGO_SECRET_KEY=SECRET_KEY))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["leadpulse.settings.production", "False"]


def test_every_procfile_process_runs_production_and_refuses_to_start_without_a_secret_key(tmp_path):
    env = procfile_env(deploy_env(PORT=str(free_port())))
    processes = {}
    for name, command in procfile_commands().items():
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes[name] = (process, log)
    outcomes = {}
    for name, (process, log) in processes.items():
        try:
            outcomes[name] = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            outcomes[name] = "still running"  # served on development settings, or hung
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    assert set(outcomes) == {"release", "web", "worker", "beat"}
    for name, outcome in outcomes.items():
        output = (tmp_path / f"{name}.log").read_text()
        assert outcome != "still running", f"{name}: {output[-2000:]}"
        assert PREFIX + NO_KEY in output and "Traceback" not in output, f"{name}: {output[-2000:]}"
        # uvicorn's supervisor stops after its workers fail to start, but exits 0 itself.
        assert name == "web" or outcome != 0, name


@pytest.fixture(scope="module")
def production_web(django_db_setup, tmp_path_factory):
    """The Procfile's web process as deployed: production by default, a real secret key, behind TLS.

    Its tests take `transactional_db`: the server reads the test database, which must exist and hold committed rows.
    """
    log = tmp_path_factory.mktemp("production") / "web.log"
    with procfile_web(deploy_env(DJANGO_SECRET_KEY=SECRET_KEY), log=log) as base:
        yield base


HTTPS = {"X-Forwarded-Proto": "https"}  # what the TLS-terminating proxy sets


def test_a_jwt_signed_with_the_public_development_key_is_refused(production_web, transactional_db):
    _project, owner, _key = project_with_owner(name="Victim Co")
    claims = AccessToken.for_user(owner).payload
    forged = jwt.encode(claims, INSECURE_DEVELOPMENT_SECRET_KEY, algorithm="HS256")
    genuine = jwt.encode(claims, SECRET_KEY, algorithm="HS256")

    refused = httpx.get(f"{production_web}/api/auth/me", headers={**HTTPS, "Authorization": f"Bearer {forged}"})
    accepted = httpx.get(f"{production_web}/api/auth/me", headers={**HTTPS, "Authorization": f"Bearer {genuine}"})

    assert refused.status_code == 401, refused.text
    assert accepted.status_code == 200 and accepted.json()["user"]["email"] == owner.email


def test_production_redirects_plain_http_except_probes_and_sends_hsts_and_csp(production_web, transactional_db):
    plain = httpx.get(f"{production_web}/api/auth/me")
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    # a load balancer's or Prometheus' plain-HTTP probe is answered, not redirected
    assert httpx.get(f"{production_web}/api/health").status_code in (200, 503)
    assert httpx.get(f"{production_web}/metrics").status_code != 301

    secure = httpx.get(f"{production_web}/api/auth/me", headers=HTTPS)
    assert secure.status_code == 401
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self'" in secure.headers["content-security-policy"]


def test_the_web_process_keeps_an_idle_connection_open_longer_than_its_clients_do(production_web, transactional_db):
    # A client (httpx: 5 s) or load balancer (ALB: 60 s) reuses an idle connection until its own timeout: if the
    # server closed it first (uvicorn's default: 5 s), the request sent on it gets a reset or a 502.
    worker_heartbeat_record(hostname="w1@test")  # so that the health check answers 200
    url = urlsplit(production_web)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        # given a keep-alive connection that has carried one request
        connection.request("GET", "/api/health")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close
        sock = connection.sock
        # when it stays idle longer than uvicorn's default keep-alive timeout
        time.sleep(6.5)
        connection.request("GET", "/api/health")
        second = connection.getresponse()
        second.read()
        # then the next request on the same socket is answered
        assert second.status == 200
        assert connection.sock is sock, "http.client reconnected"
    finally:
        connection.close()


def test_every_long_running_procfile_process_shares_one_metrics_directory():
    # given the environment a deploy gives (no PROMETHEUS_MULTIPROC_DIR of its own)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    seen = {}
    for name in ("web", "worker", "beat"):
        # when the shell runs the process's command line up to its program
        probe = procfile_commands()[name].split(" ", 1)[0] + " sh -c 'printf %s \"$PROMETHEUS_MULTIPROC_DIR\"'"
        seen[name] = subprocess.run(["/bin/sh", "-c", probe], env=env, capture_output=True, text=True).stdout
    # then each writes its figures where the web process's /metrics reads them
    assert set(seen.values()) == {"var/prometheus"}, seen
