"""The rollups on SQLite (embedded `make run`): the same code, in a process of its own on a fresh file."""

import json
import os
import subprocess
import sys

from tests.live import ROOT

SCRIPT = """
import json
from datetime import UTC, datetime, timedelta

import django

django.setup()
from django.core.management import call_command
from django.db import connection

call_command("migrate", verbosity=0)  # migration 0004 backfills (nothing yet)
from accounts.models import User
from accounts.services import project_create
from ingest.models import Event, EventName, EventRollup, Lead
from ingest.rollups import events_mark_processed, rollups_rebuild
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_erase, lead_score
from tests.ingest.rollup_checks import rollup_problems

project = project_create(owner=User.objects.create_user("sqlite@example.com", "pw-123456789"), name="Embedded")
now = datetime.now(UTC)
midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)


def send(anonymous_id, *events, **fields):
    events_ingest(project_id=project.id, events=[
        CanonicalEvent(event_id=eid, name=name, anonymous_id=anonymous_id, timestamp=ts, **fields)
        for eid, name, ts in events
    ])


def score():
    for lead_id in Lead.objects.filter(project=project).order_by("id").values_list("id", flat=True):
        lead_score(lead_id=lead_id)


problems = {}
send("crm", ("c0", "identify", now - timedelta(days=3)), type="identify", user_id="u-1")
send("crm", ("c1", "demo_request", midnight), ("c2", "page_view", midnight - timedelta(microseconds=1)))
send("dev", ("d1", "page_view", now - timedelta(days=2)), ("d2", "only_dev", now))
send("solo", ("s1", "page_view", now), ("s2", "secret", now - timedelta(days=40)))
score()
problems["scored"] = rollup_problems(project)
pks = list(Event.objects.values_list("id", flat=True))
problems["retried"] = events_mark_processed(event_pks=pks, project_ids={project.id}, processed_at=now)
send("dev", ("d3", "identify", now), type="identify", user_id="u-1")
send("solo", ("s3", "unscored", now))
problems["pending"] = rollup_problems(project)
score()
problems["merged"] = rollup_problems(project)
problems["merged_away"] = Lead.objects.filter(merged_into__isnull=False).count()
lead_erase(lead=Lead.objects.get(anonymous_id="solo"))
problems["erased"] = rollup_problems(project)
problems["names"] = sorted(EventName.objects.values_list("name", flat=True))
EventRollup.objects.all().delete()
rollups_rebuild()
problems["rebuilt"] = rollup_problems(project)
problems["vendor"] = connection.vendor
print(json.dumps(problems))
"""


def test_rollups_stay_exact_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DJANGO_SETTINGS_MODULE": "leadpulse.settings.local", "LEADPULSE_SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "vendor": "sqlite",
        "scored": [],
        "retried": 0,
        "pending": [],
        "merged": [],
        "merged_away": 1,
        "erased": [],
        "names": ["demo_request", "identify", "only_dev", "page_view"],
        "rebuilt": [],
    }
