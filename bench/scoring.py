"""Scoring benchmark: backlog throughput of one worker, project re-score, what-if preview.

Run from the repository root:  .venv/bin/python bench/scoring.py [--help]

Recreates the PostgreSQL database `--db-name` (default `leadpulse_bench_scoring`), flushes Redis DB
`--redis-db` (default 13), migrates and
registers a user, then loads `--events` events over `--leads` leads through
`ingest.services.events_ingest` without enqueuing scoring, so the backlog sits unprocessed.
Phases, in order:
  score    one Celery worker (prefork, `--concurrency` N) drains the backlog, enqueued once per
           lead by the reconciler; wall = enqueue start -> no unprocessed event left
  preview  `scoring.selectors.rules_preview` in a process of its own, then `POST /api/rules/preview`
           on uvicorn; both propose page_view at `--points` points
  rescore  `scoring.services.rule_update` sets page_view to `--points` on the same worker;
           wall = the update -> the re-score job succeeded
  companies  on a copy of the loaded backlog, every lead gets a work email on one of `--domains` domains
           (default 1,000: 10 leads a company), then one process scores it in batches of
           LEADPULSE_SCORE_BATCH leads (`scoring.services.leads_score`, as the worker does) and hands each
           batch's company message to `companies.services.lead_changes_consume`, as the companies task
           does; the two are timed apart, so the roll-up's cost is a ratio to lead scoring in the same run
           (`--no-companies`: skipped; `--companies-only`: the only phase, `--companies-runs N` times, each on a
           fresh copy, with `--keep-loaded` leaving the loaded copy `<db>_loaded` for profiling)
The loaded tables are ANALYZEd first, as autovacuum would soon after such a load (`--no-analyze`: not).
`--cpu-runs N`: then, N times per `--models` count, the backlog is scored in-process on a fresh copy and the CPU
of that process plus its PostgreSQL backend is reported (robust to other load, unlike wall times).
With `--concurrency 1,2` the score and re-score phases are repeated, on a copy of the loaded database
and a worker of that concurrency each (the same rule change on the same scored data).
Prints a table, writes bench/results/scoring.json; child logs go to bench/results/scoring_*.log.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg import sql

# bench/ingest.py: this script's directory is sys.path[0], so it shadows the `ingest` app (which only
# the Django children import).
from ingest import (
    EXTRA_ENV,
    PG_SERVER,
    RESULTS,
    ROOT,
    Children,
    child_env,
    free_port,
    git_describe,
    manage,
    wait_healthy,
    wait_scored,
)

# BENCH_DATABASE / BENCH_REDIS_URL: another database and Redis DB, for benches running side by side
DB_NAME = os.environ.get("BENCH_DATABASE", "leadpulse_bench_scoring")
SNAPSHOT = f"{DB_NAME}_loaded"  # the loaded, unscored backlog, for repeated score phases
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def stores_use(*, db_name: str, redis_db: int) -> None:
    """Point the bench (and every child it starts) at another database and Redis DB."""
    global DB_NAME, SNAPSHOT, DATABASE_URL, REDIS_URL
    DB_NAME, SNAPSHOT = db_name, f"{db_name}_loaded"
    DATABASE_URL, REDIS_URL = f"{PG_SERVER}/{db_name}", f"redis://127.0.0.1:6379/{redis_db}"


EMAIL, PASSWORD = "bench@example.com", "bench-pass-4821"
PREFIX = "sc-"  # every event id starts with it (ingest.wait_scored finds the rows by prefix)
MIX = [  # (event name, weight): the default rules' events plus names no rule scores
    ("page_view", 50), ("email_open", 12), ("form_submit", 3), ("signup", 2), ("pricing_page_visit", 5),
    ("webinar_attendance", 1.5), ("demo_request", 1), ("download", 4), ("unsubscribe", 0.5),
    ("scroll", 8), ("video_play", 5), ("button_click", 8),
]  # fmt: skip
PAGES = ["/pricing", "/", "/blog/lead-scoring", "/docs", "/features", "/about"]

CHILD_PRELUDE = """
import json, sys, time
import django
django.setup()
ARGS = json.loads(sys.argv[1])
def emit(**out):
    print(json.dumps(out), flush=True)
"""
SETUP_CODE = """
from accounts.services import user_register
user, project = user_register(email=ARGS["email"], password=ARGS["password"], name="Bench")
emit(project=project.id)
"""
LOAD_CODE = """
import random
from datetime import UTC, datetime, timedelta
import ingest.services
from ingest.schema import CanonicalEvent
ingest.services.lead_score_request = lambda **_: 0  # leave the backlog unscored (Redis is flushed too)
ingest.services.project_broadcast = lambda **_: None
rng, now, leads = random.Random(ARGS["seed"]), datetime.now(UTC), ARGS["leads"]
names, weights = zip(*ARGS["mix"], strict=True)
def event(n):
    lead = n if n < leads else int(leads * rng.random() ** ARGS["skew"])  # every lead once, then skewed
    name = rng.choices(names, weights)[0]
    props = {"url": "https://x.test" + rng.choice(ARGS["pages"])} if name == "page_view" and rng.random() < 0.7 else {}
    ts = now - timedelta(seconds=rng.uniform(0, ARGS["days"] * 86400))
    return CanonicalEvent(event_id=f"{ARGS['prefix']}{n}", name=name, anonymous_id=f"anon-{lead}", timestamp=ts,
                          properties=props)
t0, accepted = time.perf_counter(), 0
for start in range(0, ARGS["events"], 500):
    chunk = [event(n) for n in range(start, min(start + 500, ARGS["events"]))]
    accepted += len(ingest.services.events_ingest(project_id=ARGS["project"], events=chunk).accepted)
emit(seconds=time.perf_counter() - t0, accepted=accepted)
"""
ENQUEUE_CODE = """
from scoring.services import events_reconcile
t0 = time.time()
sent = events_reconcile(limit=ARGS["limit"])
emit(t0=t0, t1=time.time(), sent=sent)
"""
PREVIEW_CODE = """
from dataclasses import replace
from accounts.models import Project
from scoring.selectors import rules_preview
from scoring.services.fold import project_policy, project_rules
project = Project.objects.get(id=ARGS["project"])
engagement, fit = project_rules(project)
engagement = [replace(r, points=ARGS["points"]) if r.event_type == "page_view" else r for r in engagement]
seconds = []
for _ in range(ARGS["runs"]):
    t0 = time.perf_counter()
    result = rules_preview(project=project, engagement_rules=engagement, fit_rules=fit, policy=project_policy(project))
    seconds.append(time.perf_counter() - t0)
emit(seconds=seconds, **{k: result[k] for k in ("leadsEvaluated", "scoreChanged", "stageChanged")})
"""
RESCORE_CODE = """
from scoring.models import RescoreJob, ScoringRule
from scoring.services import rule_update
rule = ScoringRule.objects.get(project_id=ARGS["project"], model__is_primary=True, kind="engagement",
                               event_type="page_view")
t0 = time.time()
rule_update(rule=rule, data={"points": ARGS["points"]})  # the job's task is sent on commit
emit(t0=t0, job=RescoreJob.objects.filter(project_id=ARGS["project"]).latest("id").id)
"""
MODELS_CODE = """
from scoring.models import ScoringModel, ScoringRule
primary = ScoringModel.objects.get(project_id=ARGS["project"], is_primary=True)
rules = list(primary.rules.order_by("id"))
for n in range(1, ARGS["models"]):  # each model scores the same events differently, with its own thresholds
    model = ScoringModel.objects.create(project_id=ARGS["project"], key=f"m{n}", name=f"M{n}", warm_threshold=5 + n,
                                        hot_threshold=30 + n, qualified_threshold=80 + n, version=1)
    ScoringRule.objects.bulk_create(ScoringRule(project_id=ARGS["project"], model=model, name=r.name, kind=r.kind,
                                                event_type=r.event_type, points=r.points + n % 7,
                                                conditions=r.conditions) for r in rules)
emit(models=ScoringModel.objects.filter(project_id=ARGS["project"]).count())
"""
COMPANIES_CODE = """
import os, random
from django.conf import settings
from django.db import connection
import core.pipeline
from companies.domains import company_key
from companies.models import Company, CompanyMembership, CompanyScoreHistory
from companies.services import lead_changes_consume
from core.contracts import COMPANY_LEAD_CHANGES_TASK, LEAD_CHANGES_FANOUT_TASK, LeadChange
from ingest.models import Lead
from scoring.services import leads_score
project, domains = ARGS["project"], ARGS["domains"]
with connection.cursor() as cursor:  # work emails on `domains` domains (not timed): what identify calls would set
    cursor.execute("UPDATE ingest_lead SET email = anonymous_id || '@co' || (id %% %s) || '.com' WHERE project_id = %s",
                   [domains, project])
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
def cpu():  # this process's CPU and its PostgreSQL backend's (same machine): robust to the machine's load
    try:
        fields = open(f"/proc/{backend}/stat").read().rpartition(")")[2].split()
    except OSError:  # PostgreSQL on another machine: this process's only
        return time.process_time()
    return time.process_time() + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
company_key(email="warm@up.example.com")  # a worker parses the bundled suffix list once per process, not per batch
sent = []  # what scoring hands over after commit, by task name (the companies task's messages are run below)
core.pipeline.app.send_task = lambda name, kwargs=None, **_: sent.append((name, kwargs))
ids = list(Lead.objects.filter(project_id=project).values_list("id", flat=True))
random.Random(ARGS["seed"]).shuffle(ids)  # as the pending set pops them: a batch spans many companies
size = settings.LEADPULSE_SCORE_BATCH
queue = [ids[i:i + size] for i in range(0, len(ids), size)]
score_s = companies_s = score_cpu = companies_cpu = 0.0
batches = recomputed = events = 0
queries = []
while queue:
    batch = queue.pop(0)
    c0, t0 = cpu(), time.perf_counter()
    result = leads_score(lead_ids=batch)
    c1, t1 = cpu(), time.perf_counter()
    # the companies' part of each message (a batch's changes travel as one fan-out of every consumer's part)
    parts = [part for name, kwargs in sent for part in (kwargs["parts"] if name == LEAD_CHANGES_FANOUT_TASK else
             [(name, kwargs)])]  # fmt: skip
    messages = [kwargs for name, kwargs in parts if name == COMPANY_LEAD_CHANGES_TASK]
    sent.clear()
    statements = [0]
    def counted(execute, sql, params, many, context):  # a debug cursor would format every statement
        statements[0] += 1
        return execute(sql, params, many, context)
    with connection.execute_wrapper(counted):  # the roll-up's statements
        for message in messages:
            recomputed += lead_changes_consume(changes=[LeadChange.from_message(c) for c in message["changes"]])
    c2, t2 = cpu(), time.perf_counter()
    score_cpu, companies_cpu = score_cpu + c1 - c0, companies_cpu + c2 - c1
    queries.append(statements[0])
    score_s, companies_s = score_s + t1 - t0, companies_s + t2 - t1
    batches, events = batches + 1, events + result.events
    left = sorted(result.more | result.busy)
    if left:
        queue.append(left)
emit(score_s=score_s, companies_s=companies_s, score_cpu=score_cpu, companies_cpu=companies_cpu, batches=batches,
     events=events, recomputed=recomputed,
     companies=Company.objects.filter(project_id=project).count(),
     members=CompanyMembership.objects.filter(project_id=project).count(),
     history=CompanyScoreHistory.objects.filter(project_id=project).count(),
     queries_max=max(queries or [0]), queries_mean=sum(queries) / max(len(queries), 1))
"""


PREDICTIONS_CODE = """
from django.utils import timezone
from predictions.learn import Example, model_train
from predictions.models import PredictionModel
from predictions.synthetic import leads_generate
from scoring.models import ScoringModel
from scoring.services import DEFAULT_RULES
leads = leads_generate(ARGS["train"], seed=7)  # a model learnt from synthetic outcomes: what scoring loads is the point
trained = model_train([Example(lead=l.facts, won=l.won, at=l.at, rule_score=0.0, key=l.key) for l in leads],
                      current_points=dict(DEFAULT_RULES))
primary = ScoringModel.objects.get(project_id=ARGS["project"], is_primary=True)
split = trained.report
PredictionModel.objects.create(project_id=ARGS["project"], scoring_model=primary, version=1, trained_at=timezone.now(),
                               document=trained.to_json(), report=split, active=True,
                               train_count=split["train"]["leads"], test_count=split["holdout"]["leads"])
emit(features=len(trained.names))
"""
CPU_CODE = """
import os
from django.conf import settings
from django.db import connection
from ingest.models import Event
from scoring.services import leads_score
def backend_cpu(pid):  # utime + stime of the PostgreSQL backend serving this process, in seconds
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
pending = sorted(set(Event.objects.filter(processed_at__isnull=True).values_list("lead_id", flat=True)))
size, folded = settings.LEADPULSE_SCORE_BATCH, 0
py0, pg0, t0 = time.process_time(), backend_cpu(pid), time.perf_counter()
while pending:  # the worker's batches, in lead order, until nothing is left pending
    more = set()
    for start in range(0, len(pending), size):
        result = leads_score(lead_ids=pending[start : start + size])
        folded, more = folded + result.events, more | result.more | result.busy
    pending = sorted(more)
py1, pg1, t1 = time.process_time(), backend_cpu(pid), time.perf_counter()
emit(python=py1 - py0, postgres=pg1 - pg0, total=py1 - py0 + pg1 - pg0, wall=t1 - t0, events=folded)
"""


def phase_cpu(args: argparse.Namespace, project: int, models: int) -> dict:
    """Score the loaded backlog in-process under `models` models: CPU of this process and of its PostgreSQL
    backend (robust to the machine's other load, unlike the wall time), on a fresh copy of the backlog."""
    db_recreate(template=SNAPSHOT)
    if models > 1:
        django_child("models", MODELS_CODE, {"project": project, "models": models}, 120)
    print(f"[cpu {models} models] scoring in-process", flush=True)
    out = django_child("cpu", CPU_CODE, {}, args.timeout)
    notes = f"CPU python {out['python']:.2f} s + postgres {out['postgres']:.2f} s = {out['total']:.2f} s"
    return {**row(f"cpu {models} models", 1, 0, out["events"], out["wall"], notes), "cpu": out}


def django_child(name: str, code: str, params: dict, timeout: float, **env: str) -> dict:
    """Run `code` in a fresh django.setup() process; return the JSON it emitted last."""
    with open(RESULTS / f"scoring_{name}.log", "w") as err:
        done = subprocess.run(
            [sys.executable, "-c", CHILD_PRELUDE + code, json.dumps(params)], cwd=ROOT, env={**child_env(), **env},
            stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{name} child failed (exit {done.returncode}); see {RESULTS}/scoring_{name}.log")
    return json.loads(done.stdout.strip().splitlines()[-1])


def admin_db() -> psycopg.Connection:
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True)


def db_recreate(template: str | None = None) -> None:
    """Drop and create the bench database, empty or as a copy of `template`."""
    with admin_db() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME))
        if template:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(create)
    redis.Redis.from_url(REDIS_URL).flushdb()


def db_snapshot() -> None:
    with admin_db() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(SNAPSHOT)))
        for attempt in range(20):  # the loader's sessions may take a moment to go away
            try:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(*map(sql.Identifier, (SNAPSHOT, DB_NAME)))
                )
                return
            except psycopg.errors.ObjectInUse:
                if attempt == 19:
                    raise
                time.sleep(0.5)


def worker_start(children: Children, concurrency: int, timeout: float = 60) -> Path:
    name = f"scoring_worker_c{concurrency}"
    argv = ["-m", "celery", "-A", "leadpulse", "worker", "--loglevel", "INFO", "--pool", "prefork"]
    children.start(name, [sys.executable, *argv, "--concurrency", str(concurrency), "-n", f"{name}@%h"])
    log, deadline = RESULTS / f"{name}.log", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children.dead():
            raise SystemExit(f"worker exited during start-up; see {log}")
        if " ready." in log.read_text():
            return log
        time.sleep(0.25)
    raise SystemExit(f"worker not ready after {timeout:.0f} s; see {log}")


def log_problems(log: Path) -> list[str]:
    """Error lines (and the first line of each traceback) of a child log."""
    lines = log.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


def tasks_done(log: Path) -> Counter:
    """Succeeded tasks by short name, from the worker's INFO log."""
    names = re.findall(r"Task \S+\.(\w+)\[[^\]]+\] succeeded", log.read_text(errors="replace"))
    return Counter(names)


def queue_drain(timeout: float) -> float | None:
    """Wait until the broker holds no message, queued or unacked (a task still running); when, or None."""
    broker, deadline = redis.Redis.from_url(REDIS_URL), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.llen("celery") + broker.hlen("unacked") == 0:
            time.sleep(0.5)  # the log line of the last task
            return time.time()
        time.sleep(0.25)
    return None


def drain_notes(started: float, log: Path, before: Counter, timeout: float) -> str:
    """Follow-up tasks (e.g. automations) keep the worker busy after the phase's own work."""
    drained = queue_drain(timeout)
    tasks = ", ".join(f"{name} {n}" for name, n in (tasks_done(log) - before).most_common())
    return f"queue empty at {f'{drained - started:.1f} s' if drained else 'TIMEOUT'} after {tasks or 'no tasks'}"


def counts(db: psycopg.Connection) -> tuple[int, int]:
    events = db.execute("SELECT count(*) FROM ingest_event").fetchone()[0]
    leads = db.execute("SELECT count(*) FROM ingest_lead WHERE merged_into_id IS NULL").fetchone()[0]
    return events, leads


def row(phase: str, conc: int | None, leads: int, events: int, wall: float | None, notes: str) -> dict:
    ok = bool(wall)
    return {
        "phase": phase, "concurrency": conc, "leads": leads, "events": events, "wall_s": wall and round(wall, 3),
        "leads_per_s": round(leads / wall, 1) if ok else None, "events_per_s": round(events / wall, 1) if ok else None,
        "load_1m": round(os.getloadavg()[0], 2), "notes": notes,
    }  # fmt: skip


def phase_score(args: argparse.Namespace, project: int, concurrency: int, children: Children) -> dict:
    log = worker_start(children, concurrency)
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        events, leads = counts(db)
        print(f"[score c={concurrency}] worker ready; enqueueing {leads} leads, {events} events", flush=True)
        out = django_child("enqueue", ENQUEUE_CODE, {"limit": leads + 1}, 300, LEADPULSE_RECONCILE_GRACE_SECONDS="0")
        unscored = wait_scored(db, {"project": project, "prefix": f"{PREFIX}%"}, args.timeout)
        wall = time.time() - out["t0"] if unscored == 0 else None
    drained = drain_notes(out["t0"], log, Counter(), args.timeout)
    problems = log_problems(log)
    notes = f"enqueued {out['sent']} in {out['t1'] - out['t0']:.1f} s; unscored {unscored}; {drained}; "
    notes += f"log errors {len(problems)}"
    empty = re.search(r"queue empty at ([0-9.]+) s", drained)  # scoring and its follow-ups (predictions) all done
    return {**row("score", concurrency, leads, events, wall, notes), "log_errors": problems[:10],
            "queue_empty_s": float(empty.group(1)) if empty else None}  # fmt: skip


def phase_preview(args: argparse.Namespace, project: int) -> list[dict]:
    params = {"project": project, "points": args.points, "runs": args.preview_runs}
    print(f"[preview] selector, {args.preview_runs} run(s)", flush=True)
    out = django_child("preview", PREVIEW_CODE, params, args.timeout)
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        events, leads = counts(db)
    runs = ", ".join(f"{s:.2f}" for s in out["seconds"])
    rows = [row("preview selector", None, leads, events, min(out["seconds"]), f"runs {runs} s; "
                f"scoreChanged {out['scoreChanged']} stageChanged {out['stageChanged']}")]  # fmt: skip

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = ["-m", "uvicorn", "leadpulse.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = Children()  # uvicorn runs only for this phase
    try:
        server.start("scoring_web", [sys.executable, *web, "--no-access-log"])
        wait_healthy(base, server)
        print(f"[preview] HTTP on {base}", flush=True)
        with httpx.Client(base_url=base, timeout=args.timeout) as client:
            login = client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD}).raise_for_status()
            client.headers["Authorization"] = f"Bearer {login.json()['access']}"
            rules = client.get("/api/rules").raise_for_status().json()["results"]
            # the rules as a client proposes them: what GET returns, less the fields the server owns
            proposed = [
                {k: v for k, v in r.items() if k not in ("id", "model", "createdAt", "updatedAt")} for r in rules
            ]
            body = {"rules": [{**r, "points": args.points} if r["eventType"] == "page_view" else r for r in proposed]}
            seconds = []
            for _ in range(args.preview_runs):
                started = time.perf_counter()
                resp = client.post("/api/rules/preview", json=body)
                seconds.append(time.perf_counter() - started)
    finally:
        server.stop()
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    notes = f"HTTP {resp.status_code}; runs {runs} s; scoreChanged {data.get('scoreChanged')} "
    notes += f"stageChanged {data.get('stageChanged')}"
    if not resp.is_success:
        notes += f"; body {' '.join(resp.text.split())[:300]}"
    problems = log_problems(RESULTS / "scoring_web.log")
    rows.append({**row("preview HTTP", None, leads, events, min(seconds), notes), "log_errors": problems[:10]})
    return rows


def phase_rescore(args: argparse.Namespace, project: int, concurrency: int, worker_log: Path) -> dict:
    print(f"[rescore c={concurrency}] page_view -> {args.points} points", flush=True)
    before = tasks_done(worker_log)
    out = django_child("rescore", RESCORE_CODE, {"project": project, "points": args.points}, 120)
    query = "SELECT status, done, total, changed, extract(epoch FROM finished_at - started_at) FROM scoring_rescorejob"
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        events, _ = counts(db)
        deadline, last = time.monotonic() + args.timeout, time.monotonic()
        while time.monotonic() < deadline:
            status, done, total, changed, db_wall = db.execute(f"{query} WHERE id = %s", (out["job"],)).fetchone()
            if status in ("succeeded", "failed", "superseded"):
                break
            if time.monotonic() - last > 10:
                print(f"    ... job {out['job']} {status} {done}/{total}", flush=True)
                last = time.monotonic()
            time.sleep(0.25)
    wall = time.time() - out["t0"] if status == "succeeded" else None
    drained = drain_notes(out["t0"], worker_log, before, args.timeout)
    problems = log_problems(worker_log)
    notes = f"job {out['job']} {status} {done}/{total}, changed {changed}; started->finished {db_wall or 0:.1f} s; "
    notes += f"{drained}; log errors {len(problems)}"
    return {**row("rescore", concurrency, done, events, wall, notes), "log_errors": problems[:10]}


def phase_companies(args: argparse.Namespace, project: int) -> dict:
    print(f"[companies] {args.domains} domains; scoring in batches, then the roll-up of each batch", flush=True)
    params = {"project": project, "domains": args.domains, "seed": args.seed}
    out = django_child("companies", COMPANIES_CODE, params, args.timeout)
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        events, leads = counts(db)
    ratio = out["companies_s"] / out["score_s"] if out["score_s"] else None
    cpu_ratio = out["companies_cpu"] / out["score_cpu"] if out["score_cpu"] else None
    notes = (
        f"lead scoring alone {out['score_s']:.1f} s; company roll-up consumed {out['companies_s']:.1f} s "
        f"= +{ratio:.1%} on top (CPU of the process and its PostgreSQL backend: {out['score_cpu']:.1f} s, "
        f"+{out['companies_cpu']:.1f} s = +{cpu_ratio:.1%}) ({out['batches']} batches, "
        f"{out['recomputed']} company recomputes, "
        f"{out['companies']} companies, {out['members']} members, {out['history']} history rows; "
        f"roll-up statements per batch mean {out['queries_mean']:.1f}, max {out['queries_max']})"
    )
    wall = out["score_s"] + out["companies_s"]
    extra = {"companies_ratio": ratio, "companies_cpu_ratio": cpu_ratio, "companies": out}
    return {**row("score+companies", 1, leads, events, wall, notes), **extra}


COLUMNS = [("phase", "phase", 16), ("conc", "concurrency", 4), ("leads", "leads", 6), ("events", "events", 7),
           ("wall s", "wall_s", 8), ("leads/s", "leads_per_s", 8), ("events/s", "events_per_s", 9),
           ("load1", "load_1m", 5), ("notes", "notes", 0)]  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["  ".join(f"{h:>{w}}" if w else h for h, _, w in COLUMNS)]
    for r in rows:
        lines.append("  ".join(f"{'-' if r[k] is None else r[k]!s:>{w}}" if w else str(r[k]) for _, k, w in COLUMNS))
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--leads", type=int, default=10_000)
    p.add_argument("--days", type=float, default=30, help="event timestamps spread over the last N days")
    p.add_argument("--skew", type=float, default=1.5, help="lead skew exponent after one event per lead (1 = uniform)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="leave the loaded tables without planner statistics (as before autovacuum runs)",
    )
    p.add_argument(
        "--concurrency", default="1", help="comma-separated worker concurrencies for the score and re-score phases"
    )
    p.add_argument(
        "--models", default="1", help="comma-separated scoring-model counts for the score phase (one worker)"
    )
    p.add_argument("--domains", type=int, default=1000, help="the companies phase's email domains (companies)")
    p.add_argument("--no-companies", dest="companies", action="store_false", help="skip the companies phase")
    p.add_argument(
        "--companies-only",
        action="store_true",
        help="load the backlog, then run only the companies phase (no worker, preview or rescore)",
    )
    p.add_argument("--companies-runs", type=int, default=1, help="the companies phase's runs, each on a fresh copy")
    p.add_argument(
        "--keep-loaded",
        action="store_true",
        help="keep the loaded, unscored copy (<db>_loaded) at the end, e.g. to profile against",
    )
    p.add_argument("--predictions", action="store_true",
                   help="score the backlog again (one worker) with an active prediction model")  # fmt: skip
    p.add_argument("--points", type=int, default=7, help="page_view points proposed (preview) and set (rescore)")
    p.add_argument("--preview-runs", type=int, default=2, choices=range(1, 11), metavar="1..10")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for a phase")
    p.add_argument(
        "--cpu-runs", type=int, default=0, help="after the phases, score the backlog in-process this many times per "
        "`--models` count, measuring CPU (this process + its PostgreSQL backend)",
    )  # fmt: skip
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for every child")
    p.add_argument("--db-name", default=DB_NAME, help="the PostgreSQL database to recreate (and <name>_loaded)")
    p.add_argument(
        "--redis-db", type=int, default=int(REDIS_URL.rsplit("/", 1)[1]), help="the Redis DB to flush and use"
    )
    args = p.parse_args()
    stores_use(db_name=args.db_name, redis_db=args.redis_db)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.models = [int(m) for m in args.models.split(",") if m.strip()]
    if args.companies_only:
        args.concurrency, args.companies = [], True
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    EXTRA_ENV.update(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL)  # ingest.child_env() serves every child
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the children
    RESULTS.mkdir(parents=True, exist_ok=True)
    tests = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, text=True).stdout.split()
    machine = {"nproc": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "pytest_running": len(tests),
               "git": git_describe()}  # fmt: skip
    print(f"machine: {machine}\nsettings: {vars(args)}", flush=True)

    db_recreate()
    manage("migrate", "--noinput", "-v0", log="scoring_migrate.log")
    project = django_child("setup", SETUP_CODE, {"email": EMAIL, "password": PASSWORD}, 120)["project"]
    load = {"project": project, "events": args.events, "leads": args.leads, "days": args.days, "skew": args.skew,
            "seed": args.seed, "mix": MIX, "pages": PAGES, "prefix": PREFIX}  # fmt: skip
    print(f"loading {args.events} events over {args.leads} leads ...", flush=True)
    loaded = django_child("load", LOAD_CODE, load, args.timeout)
    print(f"loaded {loaded['accepted']} events in {loaded['seconds']:.1f} s", flush=True)
    redis.Redis.from_url(REDIS_URL).flushdb()  # nothing queued: the backlog waits in PostgreSQL
    if args.analyze:
        # What autovacuum does within a minute of a bulk load (10% of a table changed): without
        # statistics the planner guesses, and scoring's reads run several times slower.
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute("ANALYZE")
    if (
        len(args.concurrency) > 1
        or any(m > 1 for m in args.models)
        or args.companies
        or args.predictions
        or args.cpu_runs
    ):
        db_snapshot()

    rows: list[dict] = []
    try:
        for i, concurrency in enumerate(args.concurrency):
            children = Children()
            try:
                if i:
                    db_recreate(template=SNAPSHOT)
                rows.append(phase_score(args, project, concurrency, children))
                if i == 0:  # the preview runs once, on the first worker's scored data
                    rows += phase_preview(args, project)
                rows.append(phase_rescore(args, project, concurrency, RESULTS / f"scoring_worker_c{concurrency}.log"))
            finally:
                children.stop()
        for _ in range(args.companies_runs if args.companies else 0):  # the same backlog, on `--domains` companies
            db_recreate(template=SNAPSHOT)
            rows.append(phase_companies(args, project))
        for models in (m for m in args.models if m > 1):  # the same backlog, scored under N models at once
            children = Children()
            try:
                db_recreate(template=SNAPSHOT)
                django_child("models", MODELS_CODE, {"project": project, "models": models}, 120)
                rows.append({**phase_score(args, project, 1, children), "phase": f"score {models} models"})
            finally:
                children.stop()
        if args.predictions:  # the same backlog, with an active prediction model: each batch's leads get predicted
            children = Children()
            try:
                db_recreate(template=SNAPSHOT)
                django_child("predictions", PREDICTIONS_CODE, {"project": project, "train": 2000}, 300)
                rows.append({**phase_score(args, project, 1, children), "phase": "score +predictions"})
            finally:
                children.stop()
        for _ in range(args.cpu_runs):  # alternating model counts, so load drifts hit each alike
            for models in args.models:
                rows.append(phase_cpu(args, project, models))
    finally:
        if not args.keep_loaded:
            with admin_db() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SNAPSHOT)))

    print(f"\nmachine: nproc={machine['nproc']}, load at start {machine['loadavg_at_start']}, "
          f"pytest processes at start {machine['pytest_running']}, git {machine['git']}")  # fmt: skip
    print(f"data: {args.events} events over {args.leads} leads, {args.days:g} days, skew {args.skew}; "
          f"loaded in {loaded['seconds']:.1f} s (not timed below)\n")  # fmt: skip
    print(table(rows))
    one = next((r["wall_s"] for r in rows if r["phase"] == "score" and r["wall_s"]), None)
    for r in rows:
        if one and r["phase"].startswith("score ") and r["wall_s"]:
            print(f"  {r['phase']}: {r['wall_s'] / one:.2f}x the wall time of one model")
    cpu: dict[int, list[float]] = {}
    for r in rows:
        if "cpu" in r:
            cpu.setdefault(int(r["phase"].split()[1]), []).append(r["cpu"]["total"])
    if 1 in cpu:
        for models, totals in sorted(cpu.items()):
            ratios = ", ".join(f"{t / b:.2f}" for t, b in zip(totals, cpu[1], strict=False))
            print(f"  cpu {models} models: {ratios}x one model's CPU (run by run)")
    runs = [r for r in rows if r.get("companies_cpu_ratio") is not None]
    if runs:
        walls = ", ".join(f"+{r['companies_ratio']:.1%}" for r in runs)
        cpus = ", ".join(f"+{r['companies_cpu_ratio']:.1%}" for r in runs)
        print(f"  company roll-up on top of lead scoring, run by run: wall {walls}; CPU {cpus}")
    for r in rows:
        for line in r.get("log_errors", []):
            print(f"  {r['phase']} log: {line}")
    out = RESULTS / "scoring.json"
    out.write_text(json.dumps({"machine": machine, "settings": vars(args), "load": loaded, "rows": rows}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
