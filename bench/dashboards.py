"""Dashboard benchmark: the overview, the analytics API and the events page as the event log grows.

Run from the repository root:  .venv/bin/python bench/dashboards.py [--help]

Recreates the PostgreSQL database `leadpulse_bench_dashboards`, flushes Redis DB 12, migrates and
registers a user (`--database` names another database; `--reuse` keeps it, and the sizes it holds, when a
`--keep` run loaded it), then grows one project's event log to each of `--sizes` (default 100k, 1M, 10M
events) with `INSERT … SELECT … FROM generate_series` straight into PostgreSQL: `--days` (180) of
timestamps, a weighted mix of 12 event names, one lead per `--events-per-lead` (100) events. All
but the newest `--backlog` (1,000) events are processed; the rollups are recounted with
`ingest.rollups.rollups_rebuild` (the code migration 0004 backfills with), so the unprocessed
backlog is what the readers add live, and the lead tallies with `lead_tallies_rebuild` (migration 0005's).
At each size, in this process (Django test client, no HTTP server), it times `--runs` (7) requests
of each page after one warm-up:

  old  the selectors before the rollups (scans of the events table: tests/ingest/rollup_checks.py)
  new  the selectors in the tree (rollups + the unprocessed backlog; lead tallies where the tree has them)

and checks that both answer the same. In a tree with the fit x engagement matrix it also times its API
(`GET /api/analytics/matrix`, whose counts the overview's heat map shows) and selector. It also times
scoring's write path on the backlog: marking it processed with the one UPDATE of before, and with
`events_mark_processed` (the UPDATE feeding the rollup upserts), each rolled back. Prints a table of
medians (ms), writes bench/results/dashboards.json, and drops the database at the end unless `--keep`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: bench/ingest.py would shadow the ingest app

import psycopg  # noqa: E402
import redis  # noqa: E402
from psycopg import sql  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "leadpulse_bench_dashboards"  # --database changes it
REDIS_URL = "redis://127.0.0.1:6379/12"
RESULTS = ROOT / "bench" / "results"
ENV = {
    "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
    "REDIS_URL": REDIS_URL,
    "DJANGO_SETTINGS_MODULE": "leadpulse.settings.local",
    "DJANGO_DEBUG": "false",
    "LEADPULSE_RATE_API": "1000000/m",
}
BENCH_EMAIL = "bench@example.com"
MIX = [  # (event name, weight)
    ("page_view", 50), ("email_open", 12), ("form_submit", 3), ("signup", 2), ("pricing_page_visit", 5),
    ("webinar_attendance", 1.5), ("demo_request", 1), ("download", 4), ("unsubscribe", 0.5),
    ("scroll", 8), ("video_play", 5), ("button_click", 8),
]  # fmt: skip
RARE = "unsubscribe"  # the filtered events page looks for it


def fresh_database(*, reuse: bool) -> None:
    """Create the database (or, with `reuse`, keep the one there, loaded by an earlier `--keep` run); migrate."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        there = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not (reuse and there):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {**os.environ, **ENV}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def set_database(name: str) -> None:
    global DB_NAME
    DB_NAME = name
    ENV["DATABASE_URL"] = f"{PG_SERVER}/{name}"


def drop_database() -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


# The weighted name pick: an array with each name repeated by its weight (in halves).
NAMES_ARRAY = "ARRAY[" + ", ".join(f"'{name}'" for name, weight in MIX for _ in range(int(weight * 2))) + "]::text[]"

LEADS_SQL = """
INSERT INTO ingest_lead (created_at, updated_at, project_id, anonymous_id, user_id, email, name, company, traits,
    current_score, engagement_score, fit_score, fit_grade, lead_stage, velocity_score, events_last_24h,
    first_seen_at, last_event_at, last_scored_at, fold_state{cell_column})
SELECT now(), now(), %(project)s, 'bench-' || g, '', '', '', '', '{}', s, s, 0, 'C',
    CASE WHEN s >= 60 THEN 'qualified' WHEN s >= 31 THEN 'hot' WHEN s >= 11 THEN 'warm' ELSE 'cold' END,
    0, 0, now() - interval '180 days', now(), now(), '{}'{cell_value}
FROM generate_series(%(first)s::int, %(last)s::int) AS g, LATERAL (SELECT abs(hashint4(g)) %% 120 AS s) AS score
"""
# the matrix cell, in a tree that stores it: grade C, engagement tier by the default thresholds
CELL_SQL = ", CASE WHEN s >= 31 THEN 'C1' WHEN s >= 11 THEN 'C2' ELSE 'C3' END"
EVENTS_SQL = """
INSERT INTO ingest_event (project_id, lead_id, event_id, type, name, anonymous_id, user_id, session_id,
    properties, context, timestamp, received_at, processed_at)
SELECT %(project)s, %(first_lead)s + k - 1, 'bench-' || g, 'track', n.name, 'bench-' || k, '', '', '{}', '{}',
    t.ts, t.ts, t.ts
FROM generate_series(%(first)s::int, %(last)s::int) AS g
CROSS JOIN LATERAL (SELECT 1 + abs(hashint4(g + 13)) %% %(leads)s AS k) AS lead
CROSS JOIN LATERAL (SELECT (%(names)s)[1 + abs(hashint4(g)) %% cardinality(%(names)s)] AS name) AS n
CROSS JOIN LATERAL (
    SELECT now() - (abs(hashint4(g + 7)) %% (%(days)s * 86400)) * interval '1 second' AS ts
) AS t
""".replace("%(names)s", NAMES_ARRAY)


def event_indexes_drop(conn: psycopg.Connection) -> list[str]:
    """Drop the events table's unique constraints and secondary indexes; return the statements to rebuild them."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'ingest_event'::regclass AND contype = 'u'"
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ingest_event' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = 'ingest_event'::regclass)"
    ).fetchall()
    for name, _ in constraints:
        conn.execute(sql.SQL("ALTER TABLE ingest_event DROP CONSTRAINT {}").format(sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [f'ALTER TABLE ingest_event ADD CONSTRAINT "{name}" {definition}' for name, definition in constraints] + [
        definition for _, definition in indexes
    ]


def grow(conn: psycopg.Connection, project: int, *, have: int, want: int, args: argparse.Namespace) -> float:
    """Add events (have, want] and the leads they need, scored; then the newest `backlog` unscored."""
    t0 = time.perf_counter()
    leads = max(1, want // args.events_per_lead)
    have_leads = conn.execute("SELECT count(*) FROM ingest_lead WHERE project_id = %s", [project]).fetchone()[0]
    if leads > have_leads:
        stored = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'ingest_lead' AND column_name = 'matrix_cell'"
        ).fetchone()
        statement = LEADS_SQL.replace("{cell_column}", ", matrix_cell" if stored else "")
        statement = statement.replace("{cell_value}", CELL_SQL if stored else "")
        conn.execute(statement, {"project": project, "first": have_leads + 1, "last": leads})
    first_lead, last_lead, count = conn.execute(
        "SELECT min(id), max(id), count(*) FROM ingest_lead WHERE project_id = %s", [project]
    ).fetchone()
    assert last_lead - first_lead + 1 == count == leads, "the bench's lead ids must be contiguous"
    # the previous size's backlog is scored now (as if the workers got to it); rollups are recounted below
    conn.execute("UPDATE ingest_event SET processed_at = received_at WHERE processed_at IS NULL")
    # a big load goes in without the secondary indexes and foreign-key checks (the rows are valid by
    # construction); the indexes are built afterwards, in one pass each
    rebuild = event_indexes_drop(conn) if want - have >= 500_000 else []
    conn.execute("SET session_replication_role = replica")
    step = 1_000_000
    for first in range(have + 1, want + 1, step):
        last = min(want, first + step - 1)
        params = {"project": project, "first": first, "last": last, "days": args.days, "leads": leads}
        conn.execute(EVENTS_SQL, {**params, "first_lead": first_lead})
        print(f"  events {last:>11,}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    conn.execute("SET session_replication_role = DEFAULT")
    conn.execute("SET maintenance_work_mem = '256MB'")
    for statement in rebuild:
        conn.execute(statement)
    if rebuild:
        print(f"  indexes rebuilt  ({time.perf_counter() - t0:.0f} s)", flush=True)
    conn.execute(
        "UPDATE ingest_event SET processed_at = NULL, timestamp = now() - (id %% 3600) * interval '1 second' "
        "WHERE id IN (SELECT id FROM ingest_event WHERE project_id = %s ORDER BY id DESC LIMIT %s)",
        [project, args.backlog],
    )
    conn.execute("VACUUM ANALYZE ingest_event")
    conn.execute("VACUUM ANALYZE ingest_lead")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000", help="event counts, ascending")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--events-per-lead", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=1000, help="newest events left unprocessed")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="leave the database behind")
    parser.add_argument("--database", default=DB_NAME, help=f"PostgreSQL database to (re)create (default {DB_NAME})")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database if it is there (a --keep run loaded it): sizes it already holds are not grown again",
    )
    args = parser.parse_args()
    set_database(args.database)
    sizes = [int(size) for size in args.sizes.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)

    fresh_database(reuse=args.reuse)
    os.environ.update(ENV)
    import django

    django.setup()
    import logging

    from django.db import transaction
    from django.test import Client
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    import ingest.selectors
    import leadpulse.views
    import scoring.api.reports
    from accounts.services import user_register
    from ingest.models import Event
    from ingest.rollups import events_mark_processed, rollups_rebuild

    try:
        from ingest.lead_tallies import lead_tallies_rebuild
    except ImportError:  # a tree before the lead tallies (the same command benches either)
        lead_tallies_rebuild = None  # type: ignore[assignment]
    from scoring.selectors import project_dashboard
    from tests.ingest.rollup_checks import (
        dashboard_from_events,
        event_names_from_events,
        event_numbers_from_events,
        normalised,
    )

    logging.getLogger("leadpulse.request").setLevel(logging.WARNING)  # one line per request otherwise
    from accounts.models import Membership

    membership = Membership.objects.filter(user__email=BENCH_EMAIL).select_related("user", "project").first()
    if membership is None:
        user, project = user_register(email=BENCH_EMAIL, password="bench-pass-4821", name="Bench")
    else:  # --reuse of a loaded database
        user, project = membership.user, membership.project
    session = Client(HTTP_HOST="localhost")
    session.force_login(user)
    api = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    event_names_for_project = ingest.selectors.event_names_for_project

    state = {"old": False}

    def use(old: bool) -> None:
        state["old"] = old
        dashboard = dashboard_from_events if old else project_dashboard
        leadpulse.views.project_dashboard = scoring.api.reports.project_dashboard = dashboard  # type: ignore[assignment]
        ingest.selectors.event_names_for_project = event_names_from_events if old else event_names_for_project

    def get(client, path):
        def request():
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        return request

    def event_part():
        numbers = event_numbers_from_events if state["old"] else ingest.selectors.event_numbers
        return numbers(project=project, now=timezone.now())

    targets = [  # (label, what is timed, whether `use` switches it between old and new)
        ("overview page  GET /", get(session, "/")),
        ("analytics API  GET /api/analytics/dashboard", get(api, "/api/analytics/dashboard")),
        ("events page    GET /events/", get(session, "/events/")),
        ("  selector project_dashboard()", lambda: leadpulse.views.project_dashboard(project=project)),
        ("    its event numbers (the rest: lead aggregates)", event_part),
        ("  selector event_names_for_project()", lambda: ingest.selectors.event_names_for_project(project=project)),
        (f"events page    GET /events/?type={RARE} (query unchanged)", get(session, f"/events/?type={RARE}")),
    ]
    try:  # the fit x engagement matrix (a tree before it has neither)
        from scoring.selectors import lead_matrix_counts
    except ImportError:
        lead_matrix_counts = None  # type: ignore[assignment]
    if lead_matrix_counts is not None:
        targets += [
            ("matrix API     GET /api/analytics/matrix (query unchanged)", get(api, "/api/analytics/matrix")),
            ("  selector lead_matrix_counts() (query unchanged)", lambda: lead_matrix_counts(project=project)),
        ]
    rows: list[dict] = []
    sizes_info: list[dict] = []
    conn = psycopg.connect(f"{PG_SERVER}/{DB_NAME}", autocommit=True)
    have = conn.execute("SELECT count(*) FROM ingest_event WHERE project_id = %s", [project.id]).fetchone()[0]
    try:
        for size in sizes:
            if have > size:
                print(f"skipping {size:,} events: the reused database holds {have:,}", flush=True)
                continue
            print(f"growing the log to {size:,} events", flush=True)
            fill_s = grow(conn, project.id, have=have, want=size, args=args) if have < size else 0.0
            have = size
            t0 = time.perf_counter()
            rollups_rebuild(project_id=project.id)
            if lead_tallies_rebuild is not None:  # the leads went in by SQL: recount them as the migration does
                lead_tallies_rebuild(project_id=project.id)
            rebuild_s = time.perf_counter() - t0
            db_size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            sizes_info.append({"events": size, "fill_s": fill_s, "rebuild_s": rebuild_s, "db_size": db_size})
            print(f"  filled in {fill_s:.0f} s; rollups_rebuild {rebuild_s:.2f} s; database {db_size}", flush=True)
            answers = {}
            for old in (False, True):  # the same answers, old and new (pages compared without nonces)
                use(old=old)
                answers[old] = [get(api, "/api/analytics/dashboard")().json()]
                answers[old] += [normalised(get(session, path)().content.decode()) for path in ("/", "/events/")]
            if answers[False] != answers[True]:
                import difflib

                new_api, old_api = answers[False][0], answers[True][0]
                print({key: (new_api[key], old_api.get(key)) for key in new_api if new_api[key] != old_api.get(key)})
                for new_page, old_page in zip(answers[False][1:], answers[True][1:], strict=True):
                    print(
                        "\n".join(difflib.unified_diff(old_page.splitlines(), new_page.splitlines(), lineterm="", n=0))
                    )
                raise AssertionError("the rollups answer differently from the event scans")
            # the old queries take seconds at 10M events: fewer runs of them there
            runs = args.runs if size < 5_000_000 else max(3, args.runs // 2)
            for label, request in targets:
                times: dict[bool, list[float]] = {True: [], False: []}
                for old in (True, False):  # warm-up
                    use(old=old)
                    request()
                for _ in range(runs):  # alternate, so load from other processes hits both alike
                    for old in (True, False):
                        use(old=old)
                        t0 = time.perf_counter()
                        request()
                        times[old].append((time.perf_counter() - t0) * 1000)
                row = {"events": size, "page": label, "old": statistics.median(times[True])}
                row["new"] = statistics.median(times[False])
                rows.append(row)
                print(f"  {label:<58} old {row['old']:>8.1f} ms   new {row['new']:>7.1f} ms", flush=True)
            # scoring's write path: marking the backlog processed, as evaluations_save did (one UPDATE)
            # and does (events_mark_processed: the UPDATE feeding the rollup upserts), rolled back
            unprocessed = Event.objects.filter(project=project, processed_at__isnull=True)
            backlog = list(unprocessed.values_list("id", flat=True))
            times = {True: [], False: []}
            for _ in range(args.runs * 3):
                for old in (True, False):
                    with transaction.atomic():
                        t0 = time.perf_counter()
                        if old:
                            Event.objects.filter(id__in=backlog).update(processed_at=timezone.now())
                        else:
                            now = timezone.now()
                            events_mark_processed(event_pks=backlog, project_ids={project.id}, processed_at=now)
                        times[old].append((time.perf_counter() - t0) * 1000)
                        transaction.set_rollback(True)
            label = f"  scoring: mark {len(backlog):,} events processed"
            rows.append({"events": size, "page": label, "old": statistics.median(times[True]),
                         "new": statistics.median(times[False])})  # fmt: skip
            print(f"  {label:<58} old {rows[-1]['old']:>8.1f} ms   new {rows[-1]['new']:>7.1f} ms", flush=True)
    finally:
        use(old=False)
        conn.close()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database()

    print()
    print("| events | page (median of runs, ms) | old | new | old / new |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        ratio = row["old"] / row["new"]
        print(f"| {row['events']:,} | {row['page'].strip()} | {row['old']:,.1f} | {row['new']:,.1f} | {ratio:,.1f} |")
    print()
    for info in sizes_info:
        print(
            f"{info['events']:,} events: filled in {info['fill_s']:.0f} s, "
            f"rollups_rebuild {info['rebuild_s']:.2f} s, database {info['db_size']}"
        )
    load = os.getloadavg()[0]
    print(f"1-min load average at the end: {load:.1f} (2 shared cores: ratios, not absolute times)")
    payload = {"args": vars(args), "rows": rows, "sizes": sizes_info, "load1": load}
    (RESULTS / "dashboards.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
