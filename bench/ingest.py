"""Ingest benchmark: HTTP ingest throughput and ingest→scored latency on the Procfile topology.

Run from the repository root:  .venv/bin/python bench/ingest.py [--help]

Recreates the PostgreSQL database `--db-name` (default `leadpulse_bench`), flushes Redis DB
`--redis-db` (default 14), migrates, starts uvicorn and a Celery worker, runs each phase, waits
for the worker to score every event of the phase, and prints tables (also written to
bench/results/ingest.json). Child output goes to bench/results/*.log. Not a test: it asserts
nothing, it measures.

Phases come in three kinds:
- closed loop (`PHASES`): `--clients` connections send a list of requests as fast as answers come;
  `bare` is a do-nothing Django JSON view on the same server (bench/urls.py), the floor that
  `single` is compared with. `--rounds N` repeats them in turn, so each ratio pairs neighbours.
  `apart` is `single` with the worker stopped while it sends (started again for the drain), as when
  scoring runs on other hosts: the web tier's own throughput, without the worker's CPU on the same cores.
- open loop (`OPEN_PHASES`): requests are sent on a fixed schedule whatever the server answers,
  and latencies are measured from the scheduled send time (no coordinated omission).
- `keepup`: one Procfile worker's scoring rate ÷ the batch ingest rate of `--keepup-clients`.

A phase's event ids start with "<tag>-" (the phase name, plus ".<round>" after the first round):
that is how its rows are found in the database.
"""

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
METRICS_DIR = RESULTS / "prometheus"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "leadpulse_bench"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/14"


def stores_use(*, db_name: str, redis_db: int) -> None:
    """Point the bench (and every child it starts) at another database and Redis DB."""
    global DB_NAME, DATABASE_URL, REDIS_URL
    DB_NAME, DATABASE_URL, REDIS_URL = db_name, f"{PG_SERVER}/{db_name}", f"redis://127.0.0.1:6379/{redis_db}"


@dataclass
class Call:
    """One HTTP request of a phase, its body pre-encoded so the timed loop only sends."""

    path: str
    body: bytes
    events: int
    headers: dict[str, str] = field(default_factory=dict)
    event_ids: tuple[str, ...] = ()

    def raw(self, host: str) -> bytes:
        """The whole HTTP/1.1 request."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def call(path: str, payload: object, events: int, headers: dict[str, str], event_ids: tuple[str, ...] = ()) -> Call:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Call(path, body, events, {"Content-Type": "application/json", **headers}, event_ids)


def server_event(tag: str, i: int, leads: int, lead_prefix: str = "lead", at: datetime | None = None) -> dict:
    return {
        "eventType": "page_view",
        "leadId": f"{lead_prefix}-{i % leads}",
        "eventId": f"{tag}-{i}",
        "timestamp": (at or datetime.now(UTC)).isoformat(),
    }


def batch_calls(events: list[dict], size: int, key: str) -> list[Call]:
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    return [
        call("/api/events/batch", {"events": c}, len(c), {"X-API-Key": key}, tuple(e["eventId"] for e in c))
        for c in chunks
    ]


# --- Closed-loop phases: (args, write_key, tag) -> requests ---------------------------------


def phase_single(args: argparse.Namespace, key: str, tag: str) -> list[Call]:
    """`POST /api/events`, one event per request."""
    return [
        call("/api/events", server_event(tag, i, args.leads), 1, {"X-API-Key": key}) for i in range(args.single_events)
    ]


def phase_bare(args: argparse.Namespace, key: str, tag: str) -> list[Call]:
    """`POST /bench/bare` with the bodies `single` sends: the same server's floor (stores nothing)."""
    return [call("/bench/bare", server_event(tag, i, args.leads), 0, {}) for i in range(args.single_events)]


def phase_batch(args: argparse.Namespace, key: str, tag: str) -> list[Call]:
    """`POST /api/events/batch`, `--batch-size` events per request."""
    return batch_calls([server_event(tag, i, args.leads) for i in range(args.batch_events)], args.batch_size, key)


def phase_segment(args: argparse.Namespace, key: str, tag: str) -> list[Call]:
    """`POST /v1/batch` (Segment spec, Basic auth, gzip as Segment's libraries send it)."""
    now = datetime.now(UTC).isoformat()
    messages = [
        {
            "type": "track",
            "event": "page_view",
            "anonymousId": f"lead-{i % args.leads}",
            "messageId": f"{tag}-{i}",
            "timestamp": now,
            "properties": {"url": "/pricing"},
        }
        for i in range(args.batch_events)
    ]
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    calls = []
    for start in range(0, len(messages), args.batch_size):
        chunk = messages[start : start + args.batch_size]
        body = gzip.compress(json.dumps({"batch": chunk, "sentAt": now}, separators=(",", ":")).encode())
        calls.append(
            Call(
                "/v1/batch",
                body,
                len(chunk),
                {"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": auth},
            )
        )
    return calls


PHASES: dict[str, Callable[[argparse.Namespace, str, str], list[Call]]] = {
    "bare": phase_bare,
    "single": phase_single,
    "apart": phase_single,
    "batch": phase_batch,
    "segment": phase_segment,
}


# --- Open-loop phases: (args, write_key, tag) -> [(seconds after the start, request)] ------------


def even_schedule(rate: float, seconds: float) -> list[float]:
    """Evenly spaced send times at `rate` per second."""
    return [i / rate for i in range(int(rate * seconds))] if rate > 0 else []


def open_bare(args: argparse.Namespace, key: str, tag: str) -> list[tuple[float, Call]]:
    """`POST /bench/bare` at `--open-single-rate` requests/s: the latency floor of `open-single`."""
    times = even_schedule(args.open_single_rate, args.open_seconds)
    return [(t, call("/bench/bare", server_event(tag, i, args.open_leads), 0, {})) for i, t in enumerate(times)]


def open_single(args: argparse.Namespace, key: str, tag: str) -> list[tuple[float, Call]]:
    """`POST /api/events` at `--open-single-rate` requests/s."""
    times = even_schedule(args.open_single_rate, args.open_seconds)
    calls, base = [], datetime.now(UTC)
    for i, t in enumerate(times):
        event = server_event(tag, i, args.open_leads, at=base + timedelta(seconds=t))
        calls.append((t, call("/api/events", event, 1, {"X-API-Key": key}, (event["eventId"],))))
    return calls


def open_mixed(args: argparse.Namespace, key: str, tag: str) -> list[tuple[float, Call]]:
    """`--open-rate` events/s: `--open-single-share` of them one per request, the rest in batches."""
    single_rate = args.open_rate * args.open_single_share
    batch_rate = args.open_rate * (1 - args.open_single_share) / args.open_batch_size
    schedule: list[tuple[float, Call]] = []
    n, base = 0, datetime.now(UTC)
    # each event stamped with its send time, as a live client would: stamped when the schedule
    # was built, every single event (built first) came out older than every batched one, so each
    # single after a lead's first batch was a late event and refolded the lead's whole log
    for t in even_schedule(single_rate, args.open_seconds):
        event = server_event(tag, n, args.open_leads, at=base + timedelta(seconds=t))
        schedule.append((t, call("/api/events", event, 1, {"X-API-Key": key}, (event["eventId"],))))
        n += 1
    for t in even_schedule(batch_rate, args.open_seconds):
        at = base + timedelta(seconds=t)
        events = [server_event(tag, n + j, args.open_leads, at=at) for j in range(args.open_batch_size)]
        schedule.append((t, batch_calls(events, args.open_batch_size, key)[0]))
        n += args.open_batch_size
    return sorted(schedule, key=lambda item: item[0])


OPEN_PHASES: dict[str, Callable[[argparse.Namespace, str, str], list[tuple[float, Call]]]] = {
    "open-bare": open_bare,
    "open-single": open_single,
    "open": open_mixed,
}


# --- Environment: database, Redis, child processes -------------------------------------


EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE, e.g. to try a setting without editing it


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "leadpulse.settings.local",
        "DJANGO_DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
        # One write key sends every phase (40k events as fast as they go): lift the ingest limits
        # far above any rate reached here, so they are still checked (their Redis round trip is
        # measured) but never refuse. `--env` overrides them.
        "LEADPULSE_RATE_INGEST_KEY": "10000000/s",
        "LEADPULSE_RATE_INGEST_IP": "10000000/s",
        # metrics as the Procfile keeps them (one directory for all processes), readable from here: the
        # phases report how many single events shared an INSERT with other requests'
        "PROMETHEUS_MULTIPROC_DIR": str(METRICS_DIR),
        "LEADPULSE_METRICS_ALLOW": "127.0.0.1/32",
        **EXTRA_ENV,
    }


def manage(*argv: str, log: str) -> str:
    """Run manage.py to completion; stdout is returned, stderr goes to results/<log>."""
    with open(RESULTS / log, "w") as err:
        done = subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=err,
            text=True, timeout=300, check=False,
        )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"manage.py {argv[0]} failed (exit {done.returncode}); see {RESULTS / log}")
    return done.stdout


def fresh_stores() -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    redis.Redis.from_url(REDIS_URL).flushdb()
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir(parents=True)
    manage("migrate", "--noinput", "-v0", log="migrate.log")


SETUP_CODE = """
import json
from accounts.selectors import write_key_for_project
from accounts.services import user_register
user, project = user_register(email="bench@example.com", password="bench-pass-4821", name="Bench")
print(json.dumps({"project": project.id, "key": write_key_for_project(project=project)}))
"""


def project_create() -> tuple[int, str]:
    out = json.loads(manage("shell", "-v0", "-c", SETUP_CODE, log="setup.log").strip().splitlines()[-1])
    return out["project"], out["key"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Children:
    """Child processes, each the leader of its own process group (uvicorn and Celery fork)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> None:
        with open(RESULTS / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen(
                argv, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self, grace: float = 15.0, names: list[str] | None = None) -> None:
        """Stop the children (`names`: only those, which are then forgotten)."""
        procs = {name: p for name, p in self.procs.items() if names is None or name in names}
        self._signal(procs, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        self._signal(procs, signal.SIGKILL)  # stragglers, including grandchildren whose leader exited
        for p in procs.values():
            p.wait(timeout=5)
        if names is not None:
            for name in names:
                self.procs.pop(name, None)

    @staticmethod
    def _signal(procs: dict[str, subprocess.Popen], sig: int) -> None:
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


def topology(args: argparse.Namespace, port: int) -> dict[str, str]:
    """The Procfile's processes (release already ran), as `python -m` commands."""
    # --timeout-keep-alive 75: the Procfile's (WEB_KEEPALIVE_SECONDS' default)
    web = f"--port {port} --workers {args.web_workers} --timeout-keep-alive 75"
    procs = {
        "web": f"uvicorn leadpulse.asgi:application --host 127.0.0.1 {web} --no-access-log {args.web_options}".strip(),
        "worker": worker_command(args, "worker"),
    }
    if args.beat:
        scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
        procs["beat"] = f"celery -A leadpulse beat --loglevel INFO --scheduler {scheduler}"
    return procs


def worker_command(args: argparse.Namespace, name: str) -> str:
    return f"celery -A leadpulse worker --loglevel INFO -P prefork --concurrency {args.worker_concurrency} -n {name}@%h"


def wait_healthy(base_url: str, children: Children, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dead := children.dead():
            raise SystemExit(f"{', '.join(dead)} exited during start-up; see {RESULTS}/<name>.log")
        try:
            if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"/api/health not 200 after {timeout:.0f} s; see {RESULTS}/*.log")


def wait_log(children: Children, name: str, needle: str, timeout: float = 60.0) -> float:
    """Wait for `needle` in a child's log (e.g. a worker's " ready."); when it was seen (time.time())."""
    log, deadline = RESULTS / f"{name}.log", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in children.dead():
            raise SystemExit(f"{name} exited during start-up; see {log}")
        if needle in log.read_text(errors="replace"):
            return time.time()
        time.sleep(0.05)
    raise SystemExit(f"{needle!r} not in {log} after {timeout:.0f} s")


# --- HTTP: a small keep-alive HTTP/1.1 client, so the load generator leaves the CPUs to the server ---


class Connection:
    """One keep-alive connection; (re)connects on first use and after an error or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.reader is not None and self.reader.at_eof():
            # the server closed it while idle (after its keep-alive timeout: 75 s in the Procfile's topology, 5 s
            # with uvicorn's default): reconnect, as HTTP clients do, instead of writing into a closed connection
            # and counting an error
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    parts.append((await self.reader.readexactly(size + 2))[:-2])
                await self.reader.readuntil(b"\r\n")
                body = b"".join(parts)
            else:
                body = await self.reader.read()
                headers["connection"] = "close"
            if headers.get("connection", "").lower() == "close":
                self.close()
            return int(status_line.split(" ", 2)[1]), body
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def host_port(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def run_async(coro):
    """Run the load generator on uvloop when it is there (it is, with uvicorn[standard])."""
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    except ImportError:
        return asyncio.run(coro)


TIMEOUT = 60.0
NON_2XX_SAMPLES = 5


async def send_all(base_url: str, calls: list[Call], clients: int) -> tuple[float, Counter, list[str]]:
    """Send every call over `clients` concurrent connections; wall seconds, status counts, samples."""
    host, port = host_port(base_url)
    requests = iter([(c.raw(f"{host}:{port}")) for c in calls])
    statuses: Counter = Counter()
    samples: list[str] = []

    async def client_loop() -> None:
        conn = Connection(host, port)
        for raw in requests:  # shared iterator: each call is taken by exactly one client
            try:
                async with asyncio.timeout(TIMEOUT):
                    status, body = await conn.request(raw)
                statuses[status] += 1
                if not 200 <= status < 300 and len(samples) < NON_2XX_SAMPLES:
                    samples.append(f"{status} {' '.join(body.decode(errors='replace').split())[:200]}")
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                statuses[type(exc).__name__] += 1
                if len(samples) < NON_2XX_SAMPLES:
                    samples.append(repr(exc))
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return time.perf_counter() - started, statuses, samples


@dataclass
class Sent:
    """One open-loop request: when it was due (time.time()), its latency from then, its status."""

    due: float
    latency: float
    status: int | str


async def send_open(
    base_url: str, schedule: list[tuple[float, Call]], max_connections: int
) -> tuple[float, list[Sent], list[str]]:
    """Send each call at its time, whether or not earlier ones were answered; start (time.time()), results.

    A request waits for a connection only when `max_connections` are all busy; its latency still
    counts from its due time, so a server that falls behind shows it.
    """
    host, port = host_port(base_url)
    prepared = [(offset, c.raw(f"{host}:{port}")) for offset, c in schedule]
    loop = asyncio.get_running_loop()
    idle: list[Connection] = []
    slots = asyncio.Semaphore(max_connections)
    results: list[Sent | None] = [None] * len(prepared)
    samples: list[str] = []
    start = loop.time() + 0.2
    start_wall = time.time() + (start - loop.time())

    async def one(index: int, offset: float, raw: bytes) -> None:
        status: int | str
        async with slots:
            conn = idle.pop() if idle else Connection(host, port)
            try:
                async with asyncio.timeout(TIMEOUT):
                    status, body = await conn.request(raw)
                idle.append(conn)
                if not 200 <= status < 300 and len(samples) < NON_2XX_SAMPLES:
                    samples.append(f"{status} {' '.join(body.decode(errors='replace').split())[:200]}")
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                status = type(exc).__name__
                if len(samples) < NON_2XX_SAMPLES:
                    samples.append(repr(exc))
        results[index] = Sent(start_wall + offset, loop.time() - (start + offset), status)

    tasks = []
    for index, (offset, raw) in enumerate(prepared):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, offset, raw)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return start_wall, [r for r in results if r is not None], samples


# --- Measuring ---------------------------------------------------------------------------


@contextlib.contextmanager
def peak_db_connections() -> Iterator[list[int]]:
    """Sample the bench database's connection count in a thread; yields [peak so far]."""
    peak, stop = [0], threading.Event()

    def sample() -> None:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            while not stop.wait(0.2):
                query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                peak[0] = max(peak[0], conn.execute(query, (DB_NAME,)).fetchone()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(timeout=5)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(children: "Children", db: psycopg.Connection) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each process of the children's process groups and by the bench database's
    PostgreSQL backends: pid -> (web | worker | … | postgres, seconds). Read from /proc (Linux)."""
    groups = {p.pid: name for name, p in children.procs.items()}
    query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    backends = {pid for (pid,) in db.execute(query, (DB_NAME,)).fetchall()}
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid, group = int(entry.name), int(fields[2])
        name = groups.get(group) or ("postgres" if pid in backends else None)
        if name:
            found[pid] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per process kind between two `process_cpu` readings (processes gone meanwhile are not counted)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used[name] = used.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    return used


def grouped_items(base_url: str) -> float:
    """Single events the web processes stored in a statement shared with other requests' (all processes)."""
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return float("nan")
    prefix = 'leadpulse_grouped_items_total{group="ingest-single-event"}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def shared_column(before: float, after: float, requests: int) -> dict:
    return {"grouped": round((after - before) / requests, 2) if requests else None}


def cpu_columns(used: dict[str, float], requests: int) -> dict:
    """CPU ms per request of the web server, the scoring worker and PostgreSQL's backends."""
    return {f"cpu_{name}_ms": round(used.get(name, 0.0) * 1000 / requests, 2) for name in ("web", "worker", "postgres")}


# PostgreSQL's default autovacuum thresholds (autovacuum_vacuum_threshold/_scale_factor, autovacuum_analyze_*)
VACUUM_BASE, VACUUM_SCALE, ANALYZE_BASE, ANALYZE_SCALE = 50, 0.2, 50, 0.1
AUTOVACUUM_SQL = """
    SELECT relname, n_dead_tup > %(vb)s + %(vs)s * n_live_tup, n_mod_since_analyze > %(ab)s + %(as)s * n_live_tup
    FROM pg_stat_user_tables
"""


@contextlib.contextmanager
def autovacuum(every: float) -> Iterator[Counter]:
    """What the server's autovacuum does with its default thresholds, in a thread, when it is off on this server
    (this machine kind's PostgreSQL runs the test suites with `autovacuum = off`). Without it, no table of the bench
    database is ever analyzed or vacuumed: the planner has no statistics (it picks indexes as if every project were
    tiny) and every update leaves a dead row that each later scan walks, which no production database does.
    Counts the VACUUMs and ANALYZEs it ran (their CPU is the database's, as autovacuum's would be)."""
    runs: Counter = Counter()
    stop = threading.Event()

    def work() -> None:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            if conn.execute("SHOW autovacuum").fetchone()[0] == "on" or every <= 0:
                return
            # throttled as autovacuum is by default (a manual VACUUM is not): it yields the CPU to the load
            conn.execute("SET vacuum_cost_delay = '2ms'")
            conn.execute("SET vacuum_cost_limit = 200")
            params = {"vb": VACUUM_BASE, "vs": VACUUM_SCALE, "ab": ANALYZE_BASE, "as": ANALYZE_SCALE}
            while not stop.wait(every):
                for table, vacuum, analyze in conn.execute(AUTOVACUUM_SQL, params).fetchall():
                    if vacuum or analyze:
                        verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
                        conn.execute(sql.SQL(f"{verb} {{}}").format(sql.Identifier(table)))
                        runs["vacuum" if vacuum else "analyze"] += 1

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield runs
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def backlog_samples(every: float = 1.0) -> Iterator[list[tuple[float, int]]]:
    """Sample the number of unprocessed events (all of the bench database's) in a thread: [(time.time(), n)]."""
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            while True:
                n = conn.execute("SELECT count(*) FROM ingest_event WHERE processed_at IS NULL").fetchone()[0]
                samples.append((time.time(), n))
                if stop.wait(every):
                    return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)


PHASE_ROWS = "FROM ingest_event WHERE project_id = %(project)s AND event_id LIKE %(prefix)s"


def wait_scored(db: psycopg.Connection, params: dict, timeout: float) -> int:
    """Poll until no event of the phase is unprocessed (or timeout); return how many still are."""
    deadline, last_report, unscored = time.monotonic() + timeout, time.monotonic(), -1
    while time.monotonic() < deadline:
        unscored = db.execute(f"SELECT count(*) {PHASE_ROWS} AND processed_at IS NULL", params).fetchone()[0]
        if unscored == 0:
            return 0
        if time.monotonic() - last_report > 10:
            print(f"    ... {unscored} events not scored yet", flush=True)
            last_report = time.monotonic()
        time.sleep(0.25)
    return unscored


LATENCY_SQL = f"""
SELECT count(*), count(processed_at),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lat), percentile_cont(0.99) WITHIN GROUP (ORDER BY lat),
       max(lat), max(processed_at)
FROM (SELECT processed_at, extract(epoch FROM processed_at - received_at)::float AS lat {PHASE_ROWS}) e
"""  # noqa: S608


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def tag_for(name: str, round_: int) -> str:
    return name if round_ == 1 else f"{name}.{round_}"


def run_phase(
    name: str,
    args: argparse.Namespace,
    base_url: str,
    db: psycopg.Connection,
    project: tuple,
    children: "Children",
    round_: int = 1,
) -> dict:
    project_id, key = project
    tag = tag_for(name, round_)
    calls = PHASES[name](args, key, tag)
    sent = sum(c.events for c in calls)
    print(f"[{tag}] {len(calls)} requests, {sent} events, {args.clients} clients", flush=True)
    params = {"project": project_id, "prefix": f"{tag}-%"}
    with peak_db_connections() as peak:
        started_at = datetime.now(UTC)
        if name == "apart":
            children.stop(names=["worker"])
        grouped_before = grouped_items(base_url)
        cpu_before = process_cpu(children, db)
        wall, statuses, samples = run_async(send_all(base_url, calls, args.clients))
        cpu = cpu_used(cpu_before, process_cpu(children, db))  # while sending only (the drain is not counted)
        grouped = shared_column(grouped_before, grouped_items(base_url), len(calls))
        if name == "apart":
            children.start("worker", [sys.executable, "-m", *worker_command(args, "worker").split()])
            wait_log(children, "worker", " ready.")
        for sample in samples:
            print(f"    non-2xx sample: {sample}")
        unscored = wait_scored(db, params, args.drain_timeout)
    stored, scored, p50, p99, worst, last_scored = db.execute(LATENCY_SQL, params).fetchone()
    drain = (last_scored - started_at).total_seconds() if last_scored else None
    return {
        "phase": tag,
        "clients": args.clients,
        "requests": len(calls),
        "events_sent": sent,
        "events_stored": stored,
        "non_2xx": sum(n for status, n in statuses.items() if not (isinstance(status, int) and 200 <= status < 300)),
        "statuses": {str(k): v for k, v in statuses.items()},
        "ingest_s": round(wall, 3),
        "req_per_s": round(len(calls) / wall, 1),
        "ingest_eps": round(sent / wall, 1),
        "scored_p50_s": p50 and round(p50, 3),
        "scored_p99_s": p99 and round(p99, 3),
        "scored_max_s": worst and round(worst, 3),
        "unscored": unscored,
        "drain_s": drain and round(drain, 3),
        "scored_eps": round(scored / drain, 1) if drain else None,
        "peak_db_connections": peak[0],
        **grouped,
        **cpu_columns(cpu, len(calls)),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def backlog_summary(samples: list[tuple[float, int]], start: float, end: float, rate: float) -> dict:
    """The unprocessed count while sending: its least-squares slope, and flat when it grows < 1 % of arrivals."""
    window = [(t - start, n) for t, n in samples if start <= t <= end]
    if len(window) < 3:
        return {"backlog_max": None, "backlog_mean": None, "backlog_slope_eps": None, "backlog_flat": None}
    ts, ns = [t for t, _ in window], [n for _, n in window]
    t_mean, n_mean = statistics.fmean(ts), statistics.fmean(ns)
    slope = sum((t - t_mean) * (n - n_mean) for t, n in window) / sum((t - t_mean) ** 2 for t in ts)
    return {
        "backlog_max": max(ns),
        "backlog_mean": round(n_mean, 1),
        "backlog_slope_eps": round(slope, 2),
        "backlog_flat": abs(slope) <= 0.01 * rate if rate else None,
        "backlog_samples": [n for _, n in window],
    }


def run_open_phase(
    name: str, args: argparse.Namespace, base_url: str, db: psycopg.Connection, project: tuple, children: "Children"
) -> dict:
    project_id, key = project
    schedule = OPEN_PHASES[name](args, key, name)
    events = sum(c.events for _, c in schedule)
    seconds = args.open_seconds
    print(f"[{name}] open loop: {len(schedule)} requests, {events} events over {seconds:.0f} s", flush=True)
    params = {"project": project_id, "prefix": f"{name}-%"}
    with backlog_samples() as samples:
        grouped_before = grouped_items(base_url)
        cpu_before = process_cpu(children, db)
        start, sent, errors = run_async(send_open(base_url, schedule, args.open_connections))
        cpu = cpu_used(cpu_before, process_cpu(children, db))
        grouped = shared_column(grouped_before, grouped_items(base_url), len(schedule))
        end = start + seconds
        sent_end = time.time()
        for sample in errors:
            print(f"    non-2xx sample: {sample}")
        unscored = wait_scored(db, params, args.drain_timeout)
    due = {event_id: s.due for (_, c), s in zip(schedule, sent, strict=True) for event_id in c.event_ids}
    rows = db.execute(f"SELECT event_id, extract(epoch FROM processed_at)::float {PHASE_ROWS}", params).fetchall()  # noqa: S608
    scored = [at - due[event_id] for event_id, at in rows if at is not None and event_id in due]
    latencies = [s.latency for s in sent]
    statuses = Counter(s.status for s in sent)
    return {
        "phase": name,
        "requests": len(sent),
        "req_per_s": round(len(sent) / seconds, 1),
        "events_sent": events,
        "events_per_s": round(events / seconds, 1),
        "events_stored": sum(1 for event_id, _ in rows if event_id in due),  # "open-%" also finds open-single's
        "non_2xx": sum(n for status, n in statuses.items() if not (isinstance(status, int) and 200 <= status < 300)),
        "statuses": {str(k): v for k, v in statuses.items()},
        "http_p50_ms": ms(percentile(latencies, 0.5)),
        "http_p95_ms": ms(percentile(latencies, 0.95)),
        "http_p99_ms": ms(percentile(latencies, 0.99)),
        "http_max_ms": ms(max(latencies, default=None)),
        "sending_overran_s": round(sent_end - end, 2),
        "scored_p50_ms": ms(percentile(scored, 0.5)),
        "scored_p95_ms": ms(percentile(scored, 0.95)),
        "scored_p99_ms": ms(percentile(scored, 0.99)),
        "scored_max_ms": ms(max(scored, default=None)),
        "unscored": unscored,
        **backlog_summary(samples, start, end, events / seconds),
        **grouped,
        **cpu_columns(cpu, len(sent)),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def run_keepup(
    args: argparse.Namespace, base_url: str, db: psycopg.Connection, project: tuple, children: Children
) -> dict:
    """One Procfile worker's scoring rate ÷ the batch ingest rate of `--keepup-clients` clients.

    Each is measured with the machine to itself, as on separate hosts: first the events are
    ingested with the worker stopped (ingest rate), then a worker is started on the backlog
    (scoring rate: events ÷ worker ready → last event scored). Then the same load again with
    the worker running, to show the two together on one machine.
    """
    project_id, key = project
    n, leads, clients = args.keepup_events, args.keepup_leads, args.keepup_clients
    out: dict = {"phase": "keepup", "events": n, "leads": leads, "clients": clients, "batch_size": args.batch_size}

    def calls(tag: str) -> list[Call]:
        return batch_calls([server_event(tag, i, leads, f"{tag}-lead") for i in range(n)], args.batch_size, key)

    print(f"[keepup] worker stopped; {n} events over {leads} leads, {clients} clients", flush=True)
    children.stop(names=["worker"])
    wall, statuses, samples = run_async(send_all(base_url, calls("keepup"), clients))
    for sample in samples:
        print(f"    non-2xx sample: {sample}")
    out["ingest_eps"] = round(n / wall, 1)
    out["ingest_non_2xx"] = sum(v for k, v in statuses.items() if not (isinstance(k, int) and 200 <= k < 300))
    print(f"[keepup] {out['ingest_eps']} events/s ingested; starting a worker on the backlog", flush=True)
    children.start("worker-keepup", [sys.executable, "-m", *worker_command(args, "keepup").split()])
    ready = wait_log(children, "worker-keepup", " ready.")
    params = {"project": project_id, "prefix": "keepup-%"}
    out["unscored"] = wait_scored(db, params, args.drain_timeout)
    last = db.execute(f"SELECT extract(epoch FROM max(processed_at))::float {PHASE_ROWS}", params).fetchone()[0]  # noqa: S608
    out["score_s"] = round(last - ready, 3)
    out["scored_eps"] = round(n / (last - ready), 1)
    out["keepup_ratio"] = round(out["scored_eps"] / out["ingest_eps"], 2)

    print(f"[keepup] scored at {out['scored_eps']} events/s; the same load with the worker running", flush=True)
    params = {"project": project_id, "prefix": "keepuplive-%"}
    started = time.time()
    wall, statuses, _ = run_async(send_all(base_url, calls("keepuplive"), clients))
    backlog = db.execute(f"SELECT count(*) {PHASE_ROWS} AND processed_at IS NULL", params).fetchone()[0]
    out["live_unscored"] = wait_scored(db, params, args.drain_timeout)
    last = db.execute(f"SELECT extract(epoch FROM max(processed_at))::float {PHASE_ROWS}", params).fetchone()[0]  # noqa: S608
    out["live_ingest_eps"] = round(n / wall, 1)
    out["live_backlog_at_end"] = backlog
    out["live_tail_s"] = round(last - (started + wall), 3)
    out["live_scored_eps"] = round(n / (last - started), 1)
    out["load_1m"] = round(os.getloadavg()[0], 2)
    return out


# --- Report ------------------------------------------------------------------------------


COLUMNS = [  # (header, key, width)
    ("phase", "phase", 9), ("clients", "clients", 7), ("events", "events_sent", 7), ("stored", "events_stored", 7),
    ("non-2xx", "non_2xx", 7), ("ingest s", "ingest_s", 8), ("req/s", "req_per_s", 7),
    ("ingest ev/s", "ingest_eps", 11), ("p50 s", "scored_p50_s", 7), ("p99 s", "scored_p99_s", 7),
    ("max s", "scored_max_s", 7), ("unscored", "unscored", 8), ("drain s", "drain_s", 8),
    ("scored ev/s", "scored_eps", 11), ("db conns", "peak_db_connections", 8), ("grouped", "grouped", 7),
    ("web cpu", "cpu_web_ms", 7),
    ("worker cpu", "cpu_worker_ms", 10), ("pg cpu", "cpu_postgres_ms", 6), ("load1", "load_1m", 5),
]  # fmt: skip
OPEN_COLUMNS = [
    ("phase", "phase", 11), ("req/s", "req_per_s", 6), ("events", "events_sent", 6), ("non-2xx", "non_2xx", 7),
    ("http p50", "http_p50_ms", 8), ("p95", "http_p95_ms", 7), ("p99", "http_p99_ms", 7), ("max", "http_max_ms", 7),
    ("scored p50", "scored_p50_ms", 10), ("p95", "scored_p95_ms", 7), ("p99", "scored_p99_ms", 7),
    ("max", "scored_max_ms", 7), ("backlog max", "backlog_max", 11), ("slope/s", "backlog_slope_eps", 7),
    ("flat", "backlog_flat", 5), ("unscored", "unscored", 8), ("grouped", "grouped", 7), ("web cpu", "cpu_web_ms", 7),
    ("worker cpu", "cpu_worker_ms", 10), ("pg cpu", "cpu_postgres_ms", 6), ("load1", "load_1m", 5),
]  # fmt: skip
KEEPUP_COLUMNS = [
    ("events", "events", 6), ("leads", "leads", 5), ("clients", "clients", 7), ("ingest ev/s", "ingest_eps", 11),
    ("scored ev/s", "scored_eps", 11), ("ratio", "keepup_ratio", 5), ("live ingest ev/s", "live_ingest_eps", 16),
    ("live backlog", "live_backlog_at_end", 12), ("live tail s", "live_tail_s", 11),
    ("live scored ev/s", "live_scored_eps", 16), ("load1", "load_1m", 5),
]  # fmt: skip


def table(rows: list[dict], columns: list[tuple[str, str, int]] = COLUMNS) -> str:
    lines = ["  ".join(f"{h:>{w}}" for h, _, w in columns)]
    lines += ["  ".join(f"{'-' if r.get(k) is None else r[k]!s:>{w}}" for _, k, w in columns) for r in rows]
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} (range {min(values):.2f} to {max(values):.2f}, {len(values)} rounds)"


def summary(closed: list[dict], opened: dict[str, dict], keepup: dict | None) -> list[str]:
    """The issue's figures, as ratios within this run, and whether each goal is met."""
    lines = []
    bare = [r for r in closed if r["phase"].split(".")[0] == "bare"]
    single = [r for r in closed if r["phase"].split(".")[0] == "single"]
    ratios = [s["req_per_s"] / b["req_per_s"] for b, s in zip(bare, single, strict=False)]
    if ratios:
        lines.append(f"single ÷ bare throughput (closed loop): {spread(ratios)}  goal ≥ 0.50")
    apart = [r for r in closed if r["phase"].split(".")[0] == "apart"]
    if apart_ratios := [s["req_per_s"] / b["req_per_s"] for b, s in zip(bare, apart, strict=False)]:
        lines.append(f"single ÷ bare with the worker stopped while sending (scoring elsewhere): {spread(apart_ratios)}")
    if (o := opened.get("open-single")) is not None:
        floor = opened.get("open-bare", {}).get("http_p99_ms")
        lines.append(
            f"single-event open loop at {o['req_per_s']} req/s: p99 {o['http_p99_ms']} ms (bare view {floor} ms), "
            f"{o['non_2xx']} errors  goal p99 < 50 ms, 0 errors"
        )
    if (o := opened.get("open")) is not None:
        lines.append(
            f"ingest→scored at {o['events_per_s']} events/s: p50 {o['scored_p50_ms']} ms, "
            f"p95 {o['scored_p95_ms']} ms, p99 {o['scored_p99_ms']} ms, "
            f"backlog flat: {o['backlog_flat']} (slope {o['backlog_slope_eps']}/s)  goal p50 < 250 ms, p99 < 1000 ms"
        )
    if keepup is not None:
        lines.append(
            f"keep-up ratio ({keepup['clients']} clients): {keepup['keepup_ratio']} "
            f"({keepup['scored_eps']} scored vs {keepup['ingest_eps']} ingested events/s)  goal ≥ 1.0"
        )
    return lines


def git_describe() -> str:
    """The code measured: commit, "-dirty" when the working tree has changes."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


ALL_PHASES = [*PHASES, *OPEN_PHASES, "keepup"]
DEFAULT_PHASES = "bare,single,batch,segment,open-bare,open-single,open,keepup"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phases", default=DEFAULT_PHASES, help=f"comma-separated, from: {', '.join(ALL_PHASES)}")
    p.add_argument("--rounds", type=int, default=1, help="run the closed-loop phases this many times, in turn")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (closed loop)")
    p.add_argument("--single-events", type=int, default=4000)
    p.add_argument("--batch-events", type=int, default=40000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--leads", type=int, default=400, help="distinct leadIds the events are spread over")
    p.add_argument("--open-seconds", type=float, default=60, help="length of each open-loop phase")
    p.add_argument("--open-rate", type=float, default=1000, help="events/s of the `open` phase")
    p.add_argument("--open-single-share", type=float, default=0.2, help="share of `open` sent one per request")
    p.add_argument("--open-batch-size", type=int, default=10, help="events per batch request in `open`")
    p.add_argument("--open-single-rate", type=float, default=200, help="requests/s of open-single and open-bare")
    p.add_argument("--open-leads", type=int, default=2000, help="distinct leadIds of the open-loop phases")
    p.add_argument("--open-connections", type=int, default=64, help="open loop: most connections at once")
    p.add_argument("--keepup-events", type=int, default=40000)
    p.add_argument("--keepup-leads", type=int, default=4000)
    p.add_argument("--keepup-clients", type=int, default=8)
    p.add_argument("--web-workers", type=int, default=2, help="uvicorn --workers")
    p.add_argument("--web-options", default="", help="more uvicorn options, e.g. '--limit-concurrency 64'")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker --concurrency (prefork)")
    p.add_argument("--beat", action="store_true", help="also run celery beat (the reconciler re-enqueues lost leads)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for every child")
    p.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for a phase to be scored")
    p.add_argument("--db-name", default=DB_NAME, help="the PostgreSQL database to recreate")
    p.add_argument("--redis-db", type=int, default=14, help="the Redis DB to flush and use")
    p.add_argument(
        "--autovacuum-every", type=float, default=10,
        help="when the server's autovacuum is off: check tables against its default thresholds this often (0: never)",
    )  # fmt: skip
    args = p.parse_args()
    args.phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    if unknown := set(args.phases) - set(ALL_PHASES):
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env wants KEY=VALUE, got {bad[0]!r}")
    stores_use(db_name=args.db_name, redis_db=args.redis_db)
    # the children serve bench/urls.py (the bare view) besides the application
    EXTRA_ENV["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the children
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = dict(vars(args))
    tests = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, text=True).stdout.split()
    machine = {
        "nproc": os.cpu_count(),
        "loadavg_1m_at_start": os.getloadavg()[0],  # other work on the box skews every figure
        "pytest_processes_at_start": len(tests),
        "python": platform.python_version(),
        "git": git_describe(),
        "platform": platform.platform(),
    }
    print(f"machine: {machine}\nsettings: {settings}", flush=True)

    fresh_stores()
    project = project_create()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    children = Children()
    closed: list[dict] = []
    opened: dict[str, dict] = {}
    keepup = None
    try:
        for name, command in topology(args, port).items():
            children.start(name, [sys.executable, "-m", *command.split()])
        wait_healthy(base_url, children)
        print(f"topology up on {base_url}", flush=True)
        with psycopg.connect(DATABASE_URL, autocommit=True) as db, autovacuum(args.autovacuum_every) as vacuums:
            for round_ in range(1, args.rounds + 1):
                closed += [
                    run_phase(n, args, base_url, db, project, children, round_) for n in args.phases if n in PHASES
                ]
            for name in (n for n in args.phases if n in OPEN_PHASES):
                opened[name] = run_open_phase(name, args, base_url, db, project, children)
            if "keepup" in args.phases:
                keepup = run_keepup(args, base_url, db, project, children)
        if dead := children.dead():
            print(f"WARNING: {', '.join(dead)} exited during the run; see {RESULTS}")
        if vacuums:
            print(f"autovacuum stand-in (the server's is off): {dict(vacuums)}", flush=True)
    finally:
        children.stop()

    print(f"\nmachine: nproc={machine['nproc']}, 1-min load {machine['loadavg_1m_at_start']:.2f} at start, "
          f"{machine['pytest_processes_at_start']} pytest processes; code {machine['git']}")  # fmt: skip
    print(
        f"web workers={args.web_workers} {args.web_options}  worker concurrency={args.worker_concurrency}  "
        f"batch size={args.batch_size}  leads={args.leads}  extra env={args.env or 'none'}"
    )
    if closed:
        print("\nClosed loop. p50/p99/max = processed_at - received_at (ingest -> scored); drain = phase start ->")
        print("last event scored; db conns = peak connections to the bench database (1 is the bench's own);")
        print("web/worker/pg cpu = CPU ms per request of uvicorn, Celery and the database's backends while sending;")
        print("grouped = single events per request stored in an INSERT shared with other requests' (core.groups)\n")
        print(table(closed))
    if opened:
        print(f"\nOpen loop, {args.open_seconds:.0f} s each. http = response time from the scheduled send (ms);")
        print("scored = processed_at - scheduled send (ms); backlog = unprocessed events sampled every second\n")
        print(table(list(opened.values()), OPEN_COLUMNS))
    if keepup:
        print("\nKeep-up: ingest with the worker stopped, then the worker alone on that backlog; live = both at once\n")
        print(table([keepup], KEEPUP_COLUMNS))
    if lines := summary(closed, opened, keepup):
        print("\nSummary (same run)\n" + "\n".join(f"  {line}" for line in lines))
    out = RESULTS / "ingest.json"
    report = {"machine": machine, "settings": settings, "phases": closed, "open": opened, "keepup": keepup}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
