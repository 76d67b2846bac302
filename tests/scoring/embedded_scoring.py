"""Batch scoring on embedded mode's SQLite, in a process of its own: `python -m tests.scoring.embedded_scoring …`.

The pytest process talks to PostgreSQL; tests/scoring/test_embedded_claims.py starts this module with
embedded settings (leadpulse.settings.local, LEADPULSE_SQLITE_PATH, no DATABASE_URL or
REDIS_URL) on a migrated SQLite file. Commands:

- `ingest --phase 1|2`: store a phase of a fixed backlog through `events_ingest`, as the web threads do
  (phase 2 brings late events, which make leads refold, and devices identifying as a known person);
- `scenario --threads N`: both phases, each scored by N threads of this process, then the report;
- `score --threads N`: N threads call `leads_score` over overlapping sets of leads, each until
  nothing is pending; prints the errors any call raised and how many threads were ever between
  a claim and its commit at once;
- `report`: prints what scoring left, per lead, beside a pure refold of the lead's log.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path

import django

# The runs' clock, set by the test (merges fold with the real clock, so this stays close to it).
NOW = datetime.fromisoformat(os.environ["EMBEDDED_SCORING_NOW"])
LEADS = 24
RENDEZVOUS_SECONDS = 0.1  # how long a claimer waits for another thread to reach its own claim


def backlog(phase: int) -> list[dict]:
    """The events of a phase: skewed over the leads (a few hot ones), all within decay's grace period."""
    rng = random.Random(phase)
    names = ["page_view", "page_view", "email_open", "form_submit", "unsubscribe", "signup", "download", "scroll"]
    # phase 2 reaches further back than phase 1: many of its events are older than a lead's newest scored one
    oldest = 60 * 24 * (3 if phase == 2 else 2)
    events = [
        {
            "name": rng.choice(names),
            "lead": f"v{int(LEADS * rng.random() ** 2)}",
            "id": f"p{phase}-{n}",
            "minutes_ago": rng.randrange(60, oldest),
        }
        for n in range(240)
    ]
    if phase == 1:
        events.append({"name": "identify", "lead": "crm", "id": "crm-who", "minutes_ago": 3000, "email": "ann@corp.io"})
        events += [{"name": "email_open", "lead": "crm", "id": f"crm-{n}", "minutes_ago": 100 + n} for n in range(9)]
    else:
        for device in ("v3", "v7"):
            events.append(
                {"name": "identify", "lead": device, "id": f"{device}-who", "minutes_ago": 70, "email": "ANN@corp.io"}
            )
    return events


def project():
    from accounts.models import Project

    return Project.objects.get(name="Embedded claims")


def ingest(phase: int) -> dict:
    from accounts.services import project_create
    from ingest.schema import CanonicalEvent
    from ingest.services import events_ingest
    from scoring.models import ScoringRule
    from tests.accounts.factories import UserFactory

    if phase == 1:
        created = project_create(owner=UserFactory(email="owner@embedded.test"), name="Embedded claims")
        # caps make the order of folding matter: a wrong order or a double fold shows in the score
        ScoringRule.objects.filter(project=created, event_type="page_view").update(max_points=60)
        ScoringRule.objects.filter(project=created, event_type="download").update(max_per_lead=2)
    events = [
        CanonicalEvent(
            event_id=event["id"],
            name=event["name"],
            type="identify" if event["name"] == "identify" else "track",
            anonymous_id=event["lead"],
            properties={"email": event["email"]} if "email" in event else {},
            timestamp=NOW - timedelta(minutes=event["minutes_ago"]),
        )
        for event in backlog(phase)
    ]
    for start in range(0, len(events), 50):
        events_ingest(project_id=project().id, events=events[start : start + 50])
    return {"ingested": len(events)}


class Trace:
    """Counts the threads between a claim and the last write of its transaction; each claimer waits a
    moment for another thread to claim too, so that claims not serialised would overlap every time."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.inside: set[int] = set()
        self.most = 0

    def install(self) -> None:
        from scoring.services import batch

        claim, save, fold = batch.leads_claim, batch.evaluations_save, batch._leads_fold

        def traced_claim(*, lead_ids):
            leads = claim(lead_ids=lead_ids)
            with self.lock:
                self.inside.add(threading.get_ident())
                self.most = max(self.most, len(self.inside))
                self.lock.notify_all()
                self.lock.wait_for(lambda: len(self.inside) > 1, timeout=RENDEZVOUS_SECONDS)
            return leads

        def left() -> None:
            with self.lock:
                self.inside.discard(threading.get_ident())

        def traced_save(*args, **kwargs):
            try:
                return save(*args, **kwargs)
            finally:
                left()  # the transaction's last statement: its commit may let another claim in

        def traced_fold(*args, **kwargs):
            try:
                return fold(*args, **kwargs)  # the claim's transaction begins and ends in here
            finally:
                left()

        batch.leads_claim, batch.evaluations_save, batch._leads_fold = traced_claim, traced_save, traced_fold


def processes_meet(meeting: str, parties: int) -> None:
    """Wait (up to a minute) until `parties` processes have reached this point: they start scoring together."""
    directory = Path(meeting)
    (directory / f"{os.getpid()}.ready").touch()
    deadline = time.monotonic() + 60
    while len(list(directory.glob("*.ready"))) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError("the other scoring processes did not start")
        time.sleep(0.01)


def score(threads: int) -> dict:
    from django.db import connection

    from ingest.models import Event, Lead
    from scoring.services import leads_score

    lead_ids = sorted(Lead.objects.filter(project=project()).values_list("id", flat=True))
    # every lead is in all sets but one (with one thread, in its only set): the sets overlap everywhere
    subsets = [[lead for n, lead in enumerate(lead_ids) if threads == 1 or n % threads != i] for i in range(threads)]
    pending = Event.objects.filter(project=project(), processed_at__isnull=True)
    trace = Trace()
    if threads > 1:
        trace.install()
    errors: list[str] = []
    calls = [0] * threads
    start = threading.Barrier(threads)

    def run(index: int) -> None:
        # A thread goes on while its own leads have work: one whose leads are done would otherwise call on and
        # on, each call taking SQLite's write lock (and the trace's rendezvous wait) while the threads with work
        # wait for it, until one of them gives up "database is locked" (seen: 216 idle calls of one thread).
        mine = pending.filter(lead_id__in=subsets[index])
        try:
            start.wait()
            while mine.exists():
                if calls[index] == 300:
                    errors.append(f"thread {index}: still pending after 300 calls")
                    return
                calls[index] += 1
                try:
                    done = leads_score(lead_ids=subsets[index], now=NOW)
                except Exception:
                    errors.append(traceback.format_exc())
                else:
                    if not done.events:
                        time.sleep(0.02)  # nothing folded (merges moved its events): let the others in
        finally:
            connection.close()

    began = time.time()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"errors": errors, "most_inside": trace.most or 1, "calls": calls, "began": began, "ended": time.time()}


def report() -> dict:
    from ingest.models import Event, Lead
    from scoring import engine
    from scoring.models import ScoreHistory
    from scoring.services.fold import facts, lead_materialised, lead_profile, project_policy, project_rules

    owner = project()
    policy = project_policy(owner)
    engagement, fit = project_rules(owner)
    leads, history, merges, pure = {}, {}, {}, {}
    names = dict(Lead.objects.filter(project=owner).values_list("id", "anonymous_id"))
    for lead in Lead.objects.filter(project=owner).select_related("project").order_by("anonymous_id"):
        name = lead.anonymous_id
        leads[name] = {
            "score": lead.current_score,
            "engagement": lead.engagement_score,
            "fit": lead.fit_score,
            "stage": lead.lead_stage,
            "state": lead.fold_state,
            "mergedInto": names.get(lead.merged_into_id),
            "email": lead.email,
            "events": Event.objects.filter(lead=lead).count(),
        }
        rows = ScoreHistory.objects.filter(lead=lead).order_by("id")
        history[name] = [
            [row.reason, row.event.event_id if row.event else None, row.old_score, row.new_score, row.delta]
            for row in rows.exclude(reason="merge").select_related("event")
        ]
        merges[name] = sorted(names[row.details["mergedLeadId"]] for row in rows.filter(reason="merge"))
        if lead.merged_into_id is None:
            expected = engine.lead_evaluate(
                lead=lead_materialised(lead), events=[fact for _, fact in facts(Event.objects.filter(lead=lead))],
                profile=lead_profile(lead), rules=engagement, fit_rules=fit, policy=policy, now=NOW, refold=True,
            )  # fmt: skip
            pure[name] = {
                "score": expected.score,
                "stage": expected.stage,
                "state": {**expected.state.to_json(), "fit": [list(a) for a in expected.fit_applied]},
                "history": [
                    [step.reason, step.event_id, step.old_score, step.new_score, step.new_score - step.old_score]
                    for step in expected.history
                ],
            }
    return {
        "leads": leads,
        "history": history,
        "merges": merges,
        "pure": pure,
        "events": Event.objects.filter(project=owner).count(),
        "unprocessed": Event.objects.filter(project=owner, processed_at__isnull=True).count(),
        "ruleRows": ScoreHistory.objects.filter(project=owner, reason="rule").count(),
    }


def scenario(threads: int) -> dict:
    """Both phases, each stored then scored by `threads` threads of this process; then the report."""
    runs = []
    for phase in (1, 2):
        ingest(phase)
        runs.append(score(threads))
    return {"runs": runs, "report": report()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["scenario", "ingest", "score", "report"])
    parser.add_argument("--phase", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--meet", default="", help="a directory where `--parties` scoring processes meet first")
    parser.add_argument("--parties", type=int, default=1)
    args = parser.parse_args()
    mode = os.environ.get("EMBEDDED_SCORING_TRANSACTION_MODE")
    if mode:  # the control run: not embedded mode's IMMEDIATE
        from django.conf import settings

        settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] = mode
    django.setup()
    if args.command == "scenario":
        out = scenario(args.threads)
    elif args.command == "ingest":
        out = ingest(args.phase)
    elif args.command == "score":
        from ingest.models import Lead

        Lead.objects.exists()  # connect (and run the init pragmas) before meeting the other processes
        if args.meet:
            processes_meet(args.meet, args.parties)
        out = score(args.threads)
    else:
        out = report()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
