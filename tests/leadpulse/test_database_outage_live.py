"""A PostgreSQL restart and outage under steady ingest, against the real web process.

The shared test server is never touched: a private PostgreSQL cluster (initdb in a temporary
directory, on a free port) is migrated and served by `uvicorn leadpulse.asgi`, then restarted
and stopped while batches keep coming. While it is away the answer is 503 in the one error
shape with Retry-After, never 500; `/api/health` says `database: down`; every acknowledged
event is stored; the same web process (its psycopg pool) recovers by itself.
"""

import contextlib
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from tests.live import ROOT, free_port, listening_port, wait_until

pytestmark = pytest.mark.live

LOG_DIR = ROOT / "test-artifacts"
PASSWORD = "correct horse battery staple"  # tests.accounts.factories.UserFactory's


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout), or wherever `initdb` is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster; run as the `postgres` OS user when the tests run as root."""

    def __init__(self, bin_dir: Path, root: Path):
        self.bin = bin_dir
        self.data = root / "data"
        self.log = root / "postgres.log"  # copied to test-artifacts/ afterwards
        self.port = free_port()
        self.socket_dir = root
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def pg_ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *args)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/leadpulse"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb is not installed: cannot start a private cluster to restart")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="lp-outage-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")  # mkdtemp's 0700 keeps it the cluster owner's alone
    pg = PrivateCluster(bin_dir, root)
    try:
        pg.init()
        pg.pg_ctl("start")
        with psycopg.connect(pg.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE leadpulse")
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg.pg_ctl("stop", "-m", "immediate")
        if pg.log.exists():
            shutil.copy(pg.log, LOG_DIR / "outage-postgres.log")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def web(cluster) -> Iterator[SimpleNamespace]:
    """The Procfile's web process on the private cluster, with a project and its write key."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadpulse.settings.test",
        "DATABASE_URL": cluster.url,
        # no Redis: nothing this process enqueues may reach the shared test workers
        "REDIS_URL": "",
        "DATABASE_POOL_TIMEOUT": "3",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True, capture_output=True)
    seed = "from tests.accounts.factories import project_with_owner as p; _, o, k = p(name='Outage'); print(o.email, k)"
    shell = subprocess.run([*manage, "shell", "-c", seed], env=env, cwd=ROOT, check=True, capture_output=True,
                           text=True)  # fmt: skip
    email, key = shell.stdout.strip().splitlines()[-1].split()  # after the shell's notice of what it imported
    log_path = LOG_DIR / "outage-web.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "leadpulse.asgi:application", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    try:
        base = f"http://127.0.0.1:{listening_port(process, log_path)}"  # port 0: no free-port race

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/health", timeout=5).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, message="uvicorn")
        yield SimpleNamespace(base=base, key=key, email=email, process=process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


class Load:
    """Clients posting small batches without pause, and a health poller, each on its own thread."""

    def __init__(self, web: SimpleNamespace, *, clients: int = 3):
        self.web = web
        self.stop = threading.Event()
        self.running = threading.Event()  # cleared: clients pause between requests
        self.running.set()
        self.in_flight = 0
        self.lock = threading.Lock()
        # (sent at, answered at, status, headers, body, event ids)
        self.answers: list[tuple[float, float, int, dict, dict, list[str]]] = []
        self.failures: list[str] = []
        self.health: list[tuple[float, int, str]] = []
        self.threads = [threading.Thread(target=self.send, args=(n,)) for n in range(clients)]
        self.threads.append(threading.Thread(target=self.poll_health))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.running.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def send(self, client: int) -> None:
        with httpx.Client(base_url=self.web.base, timeout=30) as http:
            for n in range(1_000_000):
                self.running.wait()
                if self.stop.is_set():
                    return
                with self.lock:
                    self.in_flight += 1
                ids = [f"c{client}-{n}-{i}" for i in range(20)]
                events = [{"eventType": "page_view", "leadId": f"lead-{client}-{i % 5}", "eventId": e} for i, e in
                          enumerate(ids)]  # fmt: skip
                sent = time.monotonic()
                try:
                    response = http.post("/api/events/batch", json={"events": events},
                                         headers={"X-API-Key": self.web.key})  # fmt: skip
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                        self.in_flight -= 1
                    continue
                try:
                    body = response.json()
                except ValueError:
                    body = {"raw": response.text[:200]}
                with self.lock:
                    answer = (sent, time.monotonic(), response.status_code, dict(response.headers), body, ids)
                    self.answers.append(answer)
                    self.in_flight -= 1

    def poll_health(self) -> None:
        with httpx.Client(base_url=self.web.base, timeout=30) as http:
            while not self.stop.is_set():
                self.running.wait()
                try:
                    response = http.get("/api/health")
                    self.health.append((time.monotonic(), response.status_code, response.json()["database"]))
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.failures.append(f"health: {type(exc).__name__}: {exc}")
                time.sleep(0.2)

    def pause(self) -> None:
        self.running.clear()
        wait_until(lambda: self.in_flight == 0, timeout=60, message="requests in flight to finish")
        time.sleep(0.5)  # the health poller's too

    def count(self, status: int | None = None, *, since: float = 0.0, until: float = float("inf")) -> int:
        """Answers (with this status) to requests sent after `since` and answered before `until`."""
        with self.lock:
            return sum(
                1
                for sent, answered, code, *_ in self.answers
                if status in (None, code) and since <= sent < answered < until
            )


def signed_in(web: SimpleNamespace) -> httpx.Client:
    """A browser-like client signed in to the dashboard (session cookie)."""
    browser = httpx.Client(base_url=web.base, timeout=30)
    browser.get("/login/")
    form = {"username": web.email, "password": PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    assert browser.post("/login/", data=form, headers={"Referer": f"{web.base}/login/"}).status_code == 302
    return browser


def test_a_database_restart_and_outage_answer_503_and_lose_no_acknowledged_event(cluster, web):
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    browser = signed_in(web)
    with Load(web) as load:
        wait_until(lambda: load.count(202) >= 5, timeout=60, message="steady ingest")

        # a fast restart (connections terminated) under load, as an operator or a failover does
        cluster.pg_ctl("restart", "-m", "fast")
        after_restart = time.monotonic()
        wait_until(lambda: load.count(202, since=after_restart) >= 5, timeout=60, message="ingest after a restart")

        # a fast restart while the pool's connections are idle: none of them may be handed out broken
        load.pause()
        cluster.pg_ctl("restart", "-m", "fast")
        restarted = time.monotonic()
        load.running.set()
        wait_until(lambda: load.count(since=restarted) >= 10, timeout=60, message="ingest after an idle restart")

        # an outage of a few seconds, as after a crash
        stopping = time.monotonic()
        cluster.pg_ctl("stop", "-m", "immediate")
        stopped = time.monotonic()
        wait_until(lambda: any(at > stopped and db == "down" for at, _, db in load.health), timeout=30,
                   message="/api/health to say the database is down")  # fmt: skip
        wait_until(lambda: load.count(since=stopped) >= 3, timeout=30, message="answers while it is down")
        page = browser.get("/")  # a dashboard page (plain Django view) reads the session from the database
        time.sleep(max(0.0, 4 - (time.monotonic() - stopped)))
        cluster.pg_ctl("start")
        started = time.monotonic()

        # the same web process recovers by itself
        wait_until(lambda: load.count(202, since=started) >= 10, timeout=90, message="ingest after the outage")
        wait_until(lambda: any(at > started and db == "ok" for at, _, db in load.health), timeout=30,
                   message="/api/health to say the database is back")  # fmt: skip

    assert not load.failures, load.failures[:5]
    assert web.process.poll() is None
    unexpected = [(code, body) for _, _, code, _, body, _ in load.answers if code not in (202, 503)]
    assert not unexpected, f"{len(unexpected)} of {len(load.answers)} answers neither 202 nor 503: {unexpected[:3]}"
    assert load.count(503, since=stopped) >= 3
    # once the restarted server accepts connections, no request gets a connection the restart broke
    between = {"since": restarted, "until": stopping}
    assert load.count(**between) == load.count(202, **between) > 0
    for _, _, code, headers, body, _ in load.answers:
        if code == 503:
            assert headers.get("retry-after", "").isdigit(), headers
            assert body["error"]["code"] == "database_unavailable" and body["error"]["message"], body
            assert body["error"]["fields"] == {}
    down = [status for at, status, db in load.health if db == "down"]
    assert down and set(down) == {503}
    assert page.status_code == 503 and page.headers["retry-after"].isdigit()
    assert page.headers["content-type"].startswith("text/html")
    assert browser.get("/").status_code == 200
    browser.close()

    acknowledged = {event_id for *_, code, _, _, ids in load.answers if code == 202 for event_id in ids}
    with psycopg.connect(cluster.url) as db:
        stored = {event_id for (event_id,) in db.execute("SELECT event_id FROM ingest_event")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged events are missing"
    assert len(acknowledged) >= 20 * 20
