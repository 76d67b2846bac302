"""Real Celery worker processes for the live tests (PostgreSQL + Redis, no eager mode)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "test-artifacts" / "workers"
# Shared by the live workers and web servers, as on one production host (docs/deploy.md).
METRICS_DIR = ROOT / "test-artifacts" / "prometheus"


def worker_env() -> dict[str, str]:
    """The environment of a worker that talks to the test database and test Redis."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadpulse.settings.test",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(METRICS_DIR),
    }


class WorkerPool:
    """N `celery worker` processes, each a prefork pool of `concurrency` children."""

    def __init__(self, *, count: int = 2, concurrency: int = 2):
        self.count = count
        self.concurrency = concurrency
        self.processes: list[subprocess.Popen] = []
        LOG_DIR.mkdir(parents=True, exist_ok=True)

    def log(self, index: int) -> Path:
        return LOG_DIR / f"worker-{index}.log"

    def succeeded(self, index: int, task: str = "_score_task[") -> int:
        """How many tasks worker `index` has finished so far whose log line names `task` (default: scoring's)."""
        text = self.log(index).read_text(errors="replace") if self.log(index).exists() else ""
        return sum(1 for line in text.splitlines() if task in line and "succeeded" in line)

    def start(self) -> None:
        env = worker_env()
        for index in range(self.count):
            log = self.log(index).open("a")
            log.write("\n--- start ---\n")
            log.flush()
            self.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "leadpulse",
                        "worker",
                        "--pool",
                        "prefork",
                        "--concurrency",
                        str(self.concurrency),
                        "--hostname",
                        f"live{index}@%h",
                        "--loglevel",
                        "INFO",
                        "--without-mingle",
                        "--without-gossip",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        for index in range(self.count):
            while " ready." not in self.log(index).read_text(errors="replace").split("--- start ---")[-1]:
                if time.monotonic() > deadline or self.processes[index].poll() is not None:
                    raise RuntimeError(f"worker {index} did not start: see {self.log(index)}")
                time.sleep(0.2)

    def wait_idle(self, *, timeout: float = 60) -> None:
        """Wait until the queue is empty and no worker holds a task (before the test database is flushed).

        A worker holds a task while it runs it, but also once it has taken it off the queue and before a
        pool process starts it (reserved), and while it waits for a retry's countdown (scheduled).
        """
        import redis

        from leadpulse.celery import app

        broker = redis.Redis.from_url(settings.REDIS_URL)
        # `limit`: stop listening once every worker answered, instead of always waiting out the timeout
        inspect = app.control.inspect(timeout=5, limit=self.count)

        def idle() -> bool:
            if broker.llen("celery"):
                return False
            for held in (inspect.active, inspect.reserved, inspect.scheduled):
                replies = held() or {}
                if len(replies) != self.count or any(replies.values()):
                    return False
            return True

        wait_until(idle, timeout=timeout, interval=0.1, message="the workers to go idle")

    def kill(self) -> None:
        """SIGKILL every worker process and its pool (no warm shutdown: tasks die where they are)."""
        for process in self.processes:
            os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()
        self.processes = []

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []


def wait_until(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    """A port that was free a moment ago: another process may take it before a server binds it.

    Prefer starting a server on port 0 and reading the port it bound (`listening_port`).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


UVICORN_LISTENING = re.compile(r"Uvicorn running on https?://\S+?:(\d+) ")


def listening_port(process: subprocess.Popen, log: Path, *, since: int = 0, timeout: float = 60) -> int:
    """The port a uvicorn server started with `--port 0` bound, from its start-up line in `log` (after `since`)."""
    found: list[int] = []

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: see {log}")
        match = UVICORN_LISTENING.search(log.read_text(errors="replace")[since:])
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    wait_until(listening, timeout=timeout, interval=0.1, message=f"the server to listen (see {log})")
    return found[0]


def embedded_env(database: Path) -> dict[str, str]:
    """The environment of `make run`'s embedded mode (no DATABASE_URL or REDIS_URL) on the SQLite file `database`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return env | {"DJANGO_SETTINGS_MODULE": "leadpulse.settings.local", "LEADPULSE_SQLITE_PATH": str(database)}


def sqlite_migrate(database: Path) -> None:
    """`manage.py migrate` on the SQLite file `database` (a fresh one when it does not exist), as `make run` does."""
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=embedded_env(database),
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip


@contextmanager
def embedded_server(
    tmp: Path,
    *,
    migrated: Path | None = None,
    seed_args: tuple[str, ...] = (),
    before_start: Callable[[Path], None] | None = None,
) -> Iterator[SimpleNamespace]:
    """`manage.py runembedded` on a fresh SQLite file, as `make run` starts it (after `seed_demo` when asked;
    `before_start` is given the SQLite file's path once it is migrated and seeded). The file is a copy of
    `migrated` (a freshly migrated one: migrating takes seconds) when given, else migrated here."""
    env = embedded_env(tmp / "db.sqlite3")
    manage = [sys.executable, str(ROOT / "manage.py")]
    if migrated is not None:
        shutil.copyfile(migrated, tmp / "db.sqlite3")
    else:
        sqlite_migrate(tmp / "db.sqlite3")
    seeded = ""
    if seed_args:
        seeded = subprocess.run(
            [*manage, "seed_demo", *seed_args], env=env, check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
    if before_start is not None:
        before_start(tmp / "db.sqlite3")
    log_path = tmp / "embedded.log"
    with log_path.open("w") as log:
        # port 0: the server binds a free port itself, so no other process can take it in between
        server = subprocess.Popen(
            [*manage, "runembedded", "--port", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{listening_port(server, log_path)}"

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, timeout=60, message="the embedded server")
            yield SimpleNamespace(base=base, seeded=seeded, log=log_path)
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextmanager
def web_server(
    log_path: Path, *, port: int | None = None, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[str]:
    """`uvicorn leadpulse.asgi:application` (the Procfile's web process, access log on) on the test database
    and Redis; yields its base URL. `port` reuses a port (a restart); the log is appended to `log_path`.
    Without one, uvicorn binds a free port itself (port 0), so no other process can take it in between.
    `args` are more uvicorn options, `env` more environment variables (settings)."""
    since = len(log_path.read_text(errors="replace")) if log_path.exists() else 0
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "leadpulse.asgi:application", "--host", "127.0.0.1",
             "--port", str(port or 0), *args],
            cwd=ROOT, env={**worker_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

        try:
            base = f"http://127.0.0.1:{port or listening_port(process, log_path, since=since)}"

            def up() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited: see {log_path}")
                try:
                    return httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503)
                except httpx.HTTPError:
                    return False

            wait_until(up, timeout=60, message="uvicorn")
            yield base
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)  # a graceful stop waits for every consumer to end
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise AssertionError(f"uvicorn did not stop within 30 s of SIGTERM: see {log_path}") from None


def procfile_commands() -> dict[str, str]:
    """The Procfile's processes (name -> shell command), read as honcho reads them."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile((ROOT / "Procfile").read_text()).processes)


def procfile_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with this virtualenv first on PATH, as `make run` gives the Procfile's bare `python` and `celery`."""
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


@contextmanager
def procfile_web(env: dict[str, str], *, log: Path) -> Iterator[str]:
    """The Procfile's web process (uvicorn, one worker) on a free port with `env`; yields its URL once it answers."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            ["/bin/sh", "-c", procfile_commands()["web"]],
            env=procfile_env({**env, "PORT": str(port), "WEB_CONCURRENCY": "1"}),
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the web process exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, timeout=60, message="the Procfile's web process")
            yield base
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
