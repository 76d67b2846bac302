"""Ingest benchmark: HTTP ingest throughput and ingest→scored latency on the Procfile topology.

Run from the repository root:  .venv/bin/python bench/ingest.py [--help]

Recreates the PostgreSQL database `leadpulse_bench`, flushes Redis DB 14, migrates, starts
uvicorn and a Celery worker, runs each phase, waits for the worker to score every event of
the phase, and prints a table (also written to bench/results/ingest.json). Child output goes
to bench/results/*.log. Not a test: it asserts nothing, it measures.

A phase is one function `(args, write_key) -> list[Call]`, registered in PHASES. Its event
ids must start with "<phase name>-": that is how the phase's rows are found in the database.
"""

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "leadpulse_bench"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass
class Call:
    """One HTTP request of a phase, its body pre-encoded so the timed loop only sends."""

    path: str
    body: bytes
    events: int
    headers: dict[str, str] = field(default_factory=dict)


def call(path: str, payload: object, events: int, headers: dict[str, str]) -> Call:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Call(path, body, events, {"Content-Type": "application/json", **headers})


def server_event(phase: str, i: int, leads: int) -> dict:
    return {
        "eventType": "page_view",
        "leadId": f"lead-{i % leads}",
        "eventId": f"{phase}-{i}",
        "timestamp": datetime.now(UTC).isoformat(),
    }


# --- Phases ------------------------------------------------------------------------------


def phase_single(args: argparse.Namespace, key: str) -> list[Call]:
    """`POST /api/events`, one event per request."""
    return [
        call("/api/events", server_event("single", i, args.leads), 1, {"X-API-Key": key})
        for i in range(args.single_events)
    ]


def phase_batch(args: argparse.Namespace, key: str) -> list[Call]:
    """`POST /api/events/batch`, `--batch-size` events per request."""
    events = [server_event("batch", i, args.leads) for i in range(args.batch_events)]
    chunks = [events[i : i + args.batch_size] for i in range(0, len(events), args.batch_size)]
    return [call("/api/events/batch", {"events": c}, len(c), {"X-API-Key": key}) for c in chunks]


def phase_segment(args: argparse.Namespace, key: str) -> list[Call]:
    """`POST /v1/batch` (Segment spec, Basic auth, gzip as Segment's libraries send it)."""
    now = datetime.now(UTC).isoformat()
    messages = [
        {
            "type": "track",
            "event": "page_view",
            "anonymousId": f"lead-{i % args.leads}",
            "messageId": f"segment-{i}",
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


PHASES: dict[str, Callable[[argparse.Namespace, str], list[Call]]] = {
    "single": phase_single,
    "batch": phase_batch,
    "segment": phase_segment,
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

    def stop(self, grace: float = 15.0) -> None:
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        self._signal(signal.SIGKILL)  # stragglers, including grandchildren whose leader exited
        for p in self.procs.values():
            p.wait(timeout=5)

    def _signal(self, sig: int) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


def topology(args: argparse.Namespace, port: int) -> dict[str, str]:
    """The Procfile's processes (release already ran), as `python -m` commands."""
    web = f"--port {port} --workers {args.web_workers}"
    worker = f"-P prefork --concurrency {args.worker_concurrency} -n bench@%h"
    procs = {
        "web": f"uvicorn leadpulse.asgi:application --host 127.0.0.1 {web} --no-access-log",
        "worker": f"celery -A leadpulse worker --loglevel INFO {worker}",
    }
    if args.beat:
        scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
        procs["beat"] = f"celery -A leadpulse beat --loglevel INFO --scheduler {scheduler}"
    return procs


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


# --- Measuring ---------------------------------------------------------------------------


async def send_all(base_url: str, calls: list[Call], clients: int) -> tuple[float, Counter, list[str]]:
    """Send every call over `clients` concurrent connections; wall seconds, status counts, samples."""
    pending, statuses, samples = iter(calls), Counter(), []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for c in pending:  # shared iterator: each call is taken by exactly one client
            try:
                resp = await client.post(c.path, content=c.body, headers=c.headers)
                statuses[resp.status_code] += 1
                if not resp.is_success and len(samples) < 5:
                    samples.append(f"{resp.status_code} {' '.join(resp.text.split())[:200]}")
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                if len(samples) < 5:
                    samples.append(repr(exc))

    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return time.perf_counter() - started, statuses, samples


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


def run_phase(name: str, args: argparse.Namespace, base_url: str, db: psycopg.Connection, project: tuple) -> dict:
    project_id, key = project
    calls = PHASES[name](args, key)
    sent = sum(c.events for c in calls)
    print(f"[{name}] {len(calls)} requests, {sent} events, {args.clients} clients", flush=True)
    params = {"project": project_id, "prefix": f"{name}-%"}
    with peak_db_connections() as peak:
        started_at = datetime.now(UTC)
        wall, statuses, samples = asyncio.run(send_all(base_url, calls, args.clients))
        for sample in samples:
            print(f"    non-2xx sample: {sample}")
        unscored = wait_scored(db, params, args.drain_timeout)
    stored, scored, p50, p99, worst, last_scored = db.execute(LATENCY_SQL, params).fetchone()
    drain = (last_scored - started_at).total_seconds() if last_scored else None
    return {
        "phase": name,
        "clients": args.clients,
        "requests": len(calls),
        "events_sent": sent,
        "events_stored": stored,
        "non_2xx": sum(n for status, n in statuses.items() if not (isinstance(status, int) and 200 <= status < 300)),
        "statuses": {str(k): v for k, v in statuses.items()},
        "ingest_s": round(wall, 3),
        "ingest_eps": round(sent / wall, 1),
        "scored_p50_s": p50 and round(p50, 3),
        "scored_p99_s": p99 and round(p99, 3),
        "scored_max_s": worst and round(worst, 3),
        "unscored": unscored,
        "drain_s": drain and round(drain, 3),
        "scored_eps": round(scored / drain, 1) if drain else None,
        "peak_db_connections": peak[0],
    }


COLUMNS = [  # (header, key, width)
    ("phase", "phase", 8), ("clients", "clients", 7), ("events", "events_sent", 7), ("stored", "events_stored", 7),
    ("non-2xx", "non_2xx", 7), ("ingest s", "ingest_s", 8), ("ingest ev/s", "ingest_eps", 11),
    ("p50 s", "scored_p50_s", 7), ("p99 s", "scored_p99_s", 7), ("max s", "scored_max_s", 7),
    ("unscored", "unscored", 8), ("drain s", "drain_s", 8), ("scored ev/s", "scored_eps", 11),
    ("db conns", "peak_db_connections", 8),
]  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["  ".join(f"{h:>{w}}" for h, _, w in COLUMNS)]
    lines += ["  ".join(f"{'-' if r[k] is None else r[k]!s:>{w}}" for _, k, w in COLUMNS) for r in rows]
    return "\n".join(lines)


def git_describe() -> str:
    """The code measured: commit, "-dirty" when the working tree has changes."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phases", default="single,batch,segment", help=f"comma-separated, from: {', '.join(PHASES)}")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    p.add_argument("--single-events", type=int, default=4000)
    p.add_argument("--batch-events", type=int, default=40000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--leads", type=int, default=400, help="distinct leadIds the events are spread over")
    p.add_argument("--web-workers", type=int, default=2, help="uvicorn --workers")
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker --concurrency (prefork)")
    p.add_argument("--beat", action="store_true", help="also run celery beat (the reconciler re-enqueues lost leads)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for every child")
    p.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for a phase to be scored")
    args = p.parse_args()
    args.phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    if unknown := set(args.phases) - PHASES.keys():
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env wants KEY=VALUE, got {bad[0]!r}")
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the children
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = dict(vars(args))
    machine = {
        "nproc": os.cpu_count(),
        "loadavg_1m_at_start": os.getloadavg()[0],  # other work on the box skews every figure
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
    try:
        for name, command in topology(args, port).items():
            children.start(name, [sys.executable, "-m", *command.split()])
        wait_healthy(base_url, children)
        print(f"topology up on {base_url}", flush=True)
        with psycopg.connect(DATABASE_URL, autocommit=True) as db:
            rows = [run_phase(name, args, base_url, db, project) for name in args.phases]
        if dead := children.dead():
            print(f"WARNING: {', '.join(dead)} exited during the run; see {RESULTS}")
    finally:
        children.stop()

    print(f"\nmachine: nproc={machine['nproc']}, 1-min load {machine['loadavg_1m_at_start']:.2f} at start")
    print(
        f"web workers={args.web_workers}  worker concurrency={args.worker_concurrency}  "
        f"batch size={args.batch_size}  leads={args.leads}  extra env={args.env or 'none'}"
    )
    print("p50/p99/max = processed_at - received_at (ingest -> scored); drain = phase start -> last event scored;")
    print("db conns = peak connections to the bench database during the phase (1 is the bench's own)\n")
    print(table(rows))
    out = RESULTS / "ingest.json"
    out.write_text(json.dumps({"machine": machine, "settings": settings, "phases": rows}, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
