"""Where a single-event `POST /api/events` spends its time, in-process (no HTTP server, no worker).

Run from the repository root:  .venv/bin/python bench/profile_ingest.py [--help]

Recreates the PostgreSQL database `--db-name` and flushes Redis DB `--redis-db` (as bench/ingest.py
does), migrates, registers a project, then calls Django's WSGI handler directly, with the environ the
web server builds (leadpulse/http.py), the settings and environment of bench/ingest.py's children
(`bench.settings`, ingest limits lifted but checked, plain logs written to a file). For each of the
bare view and the single-event endpoint it prints:
  - CPU and wall time per request over `--requests` requests (after `--warmup`), best of `--repeat`;
  - round trips per request: Redis commands or pipelines sent, PostgreSQL statements executed
    (including the connection pool's health check) and commits;
  - a cProfile of `--requests` more requests (`--profile-out FILE` also writes the stats for
    `python -m pstats`), the top `--top` functions by cumulative and by own time.
No scoring worker runs: the pending-lead set only grows. Not a test: it measures.
"""

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/profile_ingest.py` puts bench/ first on the path, where bench/ingest.py would shadow the
# `ingest` app: import from the repository root instead.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.ingest import RESULTS, child_env, fresh_stores, git_describe, stores_use  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="requests timed (and profiled) per endpoint")
    p.add_argument("--warmup", type=int, default=500, help="requests sent first, not timed (≥ --leads)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds per endpoint; the best is reported")
    p.add_argument("--leads", type=int, default=400, help="distinct leadIds (each lead is created once)")
    p.add_argument("--top", type=int, default=30, help="functions listed per profile table")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what the profiles measure")
    p.add_argument("--profile-out", default="", help="write the single-event profile's stats here")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment")
    p.add_argument("--db-name", default="leadpulse_bench_profile", help="the PostgreSQL database to recreate")
    p.add_argument("--redis-db", type=int, default=11, help="the Redis DB to flush and use")
    p.add_argument(
        "--score-batches", default="", metavar="1,10,50",
        help="then score single events of new leads in batches of these sizes, as a trickle reaches the worker",
    )  # fmt: skip
    p.add_argument("--score-events", type=int, default=600, help="events scored per batch size")
    return p.parse_args()


def setup(args: argparse.Namespace) -> tuple[int, str]:
    """Fresh stores, Django set up in this process with the bench children's environment; (project, key)."""
    stores_use(db_name=args.db_name, redis_db=args.redis_db)
    fresh_stores()
    env = {**child_env(), "DJANGO_SETTINGS_MODULE": "bench.settings"}
    env.update(item.split("=", 1) for item in args.env)
    os.environ.update(env)
    import django

    django.setup()
    from accounts.selectors import write_key_for_project
    from accounts.services import user_register

    _user, project = user_register(email="bench@example.com", password="bench-pass-4821", name="Bench")
    return project.id, write_key_for_project(project=project)


class Requests:
    """POSTs through Django's WSGI handler with the environ leadpulse/http.py builds from an ASGI scope."""

    def __init__(self, key: str, leads: int) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()  # sets Django up again, logging included
        # the plain log lines (leadpulse.request per request) go to a file, as the web server's do
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = log = open(RESULTS / "profile_ingest.log", "w")  # noqa: SIM115 (open for the whole run)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log)
        self.key, self.leads, self.sent = key, leads, {"bare": 0, "single": 0}

    def post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        from leadpulse.http import wsgi_environ

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "http_version": "1.1",
            "scheme": "http",
        }
        status: list[str] = []
        result = self.app(wsgi_environ(scope, io.BytesIO(body), len(body)), lambda s, h, e=None: status.append(s))
        try:
            b"".join(result)
        finally:
            result.close()  # request_finished: the database connection goes back to the pool
        return int(status[0].split()[0])

    def event(self, tag: str) -> bytes:
        import json
        from datetime import UTC, datetime

        n = self.sent[tag] = self.sent[tag] + 1
        event = {
            "eventType": "page_view",
            "leadId": f"lead-{n % self.leads}",
            "eventId": f"{tag}-{n}",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        return json.dumps(event, separators=(",", ":")).encode()

    def bare(self) -> int:
        return self.post("/bench/bare", {"Content-Type": "application/json"}, self.event("bare"))

    def single(self) -> int:
        headers = {"Content-Type": "application/json", "X-API-Key": self.key}
        return self.post("/api/events", headers, self.event("single"))


@contextlib.contextmanager
def round_trips() -> Iterator[dict[str, int]]:
    """Count Redis commands/pipelines sent, PostgreSQL statements executed and commits, in this process."""
    import psycopg
    import redis.connection

    counts = {"redis": 0, "pg statements": 0, "pg commits": 0}
    send = redis.connection.AbstractConnection.send_packed_command
    execute = psycopg.Cursor.execute
    commit = psycopg.Connection.commit

    def counting_send(self: Any, command: Any, check_health: bool = True) -> Any:
        counts["redis"] += 1
        return send(self, command, check_health)

    def counting_execute(self: Any, *a: Any, **k: Any) -> Any:
        counts["pg statements"] += 1
        return execute(self, *a, **k)

    def counting_commit(self: Any) -> Any:
        counts["pg commits"] += 1
        return commit(self)

    redis.connection.AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]
    psycopg.Cursor.execute = counting_execute  # type: ignore[method-assign]
    psycopg.Connection.commit = counting_commit  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]


def timed(send: Callable[[], int], n: int) -> tuple[float, float, dict[int, int]]:
    """(CPU ms, wall ms) per request over n requests, and the statuses seen."""
    statuses: dict[int, int] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        status = send()
        statuses[status] = statuses.get(status, 0) + 1
    return (time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n, statuses


def profile_table(profile: cProfile.Profile, *, sort: str, top: int, n: int, clock: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(sort).print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    return f"({clock} seconds, totals over {n} requests, under the profiler)\n" + text[start:].rstrip()


def main() -> None:
    args = parse_args()
    project_id, key = setup(args)
    requests = Requests(key, args.leads)
    endpoints = {"bare": requests.bare, "single": requests.single}
    load, python = os.getloadavg()[0], sys.version.split()[0]
    print(f"code {git_describe()}; project {project_id}; 1-min load {load:.2f}; python {python}")
    for send in endpoints.values():
        timed(send, max(args.warmup, args.leads))  # every lead exists after the warm-up
    print("\nper request, best of", args.repeat, "rounds of", args.requests, "(CPU ms is this process only)")
    results = {}
    for name, send in endpoints.items():
        rounds = [timed(send, args.requests) for _ in range(args.repeat)]
        results[name] = min(rounds)
        with round_trips() as counts:
            timed(send, 100)
        per = {k: v / 100 for k, v in counts.items()}
        cpu, wall, statuses = results[name]
        print(
            f"  {name:>6}: {cpu:.3f} ms CPU, {wall:.3f} ms wall, statuses {statuses}; "
            + ", ".join(f"{k} {v:g}" for k, v in per.items())
        )
    print(f"  single - bare: {results['single'][0] - results['bare'][0]:.3f} ms CPU per request")
    print(f"  CPU ratio bare/single: {results['bare'][0] / results['single'][0]:.2f}")
    for name, send in endpoints.items():
        profile = cProfile.Profile(time.process_time if args.clock == "cpu" else time.perf_counter)
        profile.enable()
        timed(send, args.requests)
        profile.disable()
        if name == "single" and args.profile_out:
            profile.dump_stats(args.profile_out)
        print(f"\n=== {name}: by cumulative time ===")
        print(profile_table(profile, sort="cumulative", top=args.top, n=args.requests, clock=args.clock))
        print(f"\n=== {name}: by own time ===")
        print(profile_table(profile, sort="tottime", top=args.top, n=args.requests, clock=args.clock))
    if args.score_batches:
        score_batches(requests, [int(size) for size in args.score_batches.split(",")], args.score_events)


def backend_cpu_ms() -> float:
    """CPU ms this process's PostgreSQL backend has used (Linux /proc; the server runs on this machine)."""
    from django.db import connection

    connection.ensure_connection()
    fields = Path(f"/proc/{connection.connection.info.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def score_batches(requests: Requests, sizes: list[int], events: int) -> None:
    """The worker's cost per trickled event by batch size: `events` single events of new leads sent through the
    handler, then `leads_score` in batches of `size` (what a drain takes), timed in this process and its backend;
    then the follow-up tasks each batch sends (predictions, companies, automations), run here by name."""
    from celery import current_app

    from core import pipeline
    from scoring.services import leads_score

    current_app.loader.import_default_modules()  # every app's tasks, as a worker has them
    for handler in logging.getLogger().handlers:  # which set logging up again: back to the file
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(requests.log)
    sent: list[tuple[str, dict]] = []
    send_task = pipeline.app.send_task
    pipeline.app.send_task = lambda name, kwargs=None, **_: sent.append((name, kwargs or {}))
    print(f"\nscoring a trickle: {events} single events of new leads per size, scored in batches (leads_score)")
    try:
        for size in sizes:
            while pipeline.lead_score_pending_pop(count=10_000):  # only this size's leads are pending
                pass
            requests.leads = 10**9  # every event a lead of its own
            for _ in range(events):
                requests.single()
            pending = sorted(pipeline.lead_score_pending_pop(count=events * 2))
            batches = [pending[i : i + size] for i in range(0, len(pending), size)]
            cpu = backend = follow_cpu = 0.0
            tasks = 0
            for batch in batches:
                sent.clear()
                before, started = backend_cpu_ms(), time.process_time()
                leads_score(lead_ids=batch)
                cpu += (time.process_time() - started) * 1000
                backend += backend_cpu_ms() - before
                follow = [(name, kwargs) for name, kwargs in sent if not name.startswith("scoring.")]
                tasks += len(follow)
                started = time.process_time()
                for name, kwargs in follow:
                    current_app.tasks[name].run(**kwargs)
                follow_cpu += (time.process_time() - started) * 1000
            n, b = len(pending), len(batches)
            print(
                f"  batches of {size:>3}: {b:>4} batches; per batch {cpu / b:.2f} ms CPU + {backend / b:.2f} ms"
                f" PostgreSQL scoring, then {follow_cpu / b:.2f} ms CPU in {tasks / b:.1f} follow-up tasks;"
                f" per event {(cpu + follow_cpu) / n:.3f} ms CPU"
            )
    finally:
        pipeline.app.send_task = send_task


if __name__ == "__main__":
    main()
