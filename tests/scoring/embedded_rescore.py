"""A re-score job on embedded mode's SQLite, in a process of its own: `python -m tests.scoring.embedded_rescore`.

tests/scoring/test_embedded_claims.py starts it with embedded settings on a migrated SQLite file. Two
projects get the same events and the same rule change: one project's job runs as one slice, alone; the
other's as two slices, each run by a thread at once (SQLite has no SKIP LOCKED: IMMEDIATE transactions
serialise the claims). Prints the errors, both jobs' counts, and each project's leads and history.
"""

import json
import threading
import traceback
from datetime import timedelta

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

import scoring.services.rules  # noqa: E402
from accounts.services import user_register  # noqa: E402
from ingest.models import Lead  # noqa: E402
from ingest.schema import CanonicalEvent  # noqa: E402
from ingest.services import events_ingest  # noqa: E402
from scoring.models import RescoreJob, RescoreSlice, ScoreHistory, ScoringRule  # noqa: E402
from scoring.services import leads_score, rescore_job_run, rule_update  # noqa: E402

NAMES = ["page_view", "page_view", "email_open", "signup", "scroll"]


def project_scored(email: str):
    _, project = user_register(email=email, password="embedded-pass-4821", name="Embedded")
    start = timezone.now() - timedelta(days=2)
    events = [
        CanonicalEvent(event_id=f"e{i}", name=NAMES[i % 5], anonymous_id=f"a{i % 41}",
                       timestamp=start + timedelta(minutes=i))
        for i in range(400)
    ]  # fmt: skip
    events_ingest(project_id=project.id, events=events)
    leads_score(lead_ids=list(Lead.objects.filter(project=project).values_list("id", flat=True)))
    return project


def rescored(project, slices: int) -> tuple[RescoreJob, list[str]]:
    """Change page_view to 7 points and run the job's slices, a thread each, at once."""
    settings.LEADPULSE_RESCORE_SLICES = slices
    rule_update(rule=ScoringRule.objects.get(project=project, event_type="page_view"), data={"points": 7})
    job = RescoreJob.objects.get(project=project, status="pending")
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            while rescore_job_run(job_id=job.id, slice_index=index, chunk=4):
                pass
        except Exception:  # reported to the test
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(slices)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job.refresh_from_db()
    return job, errors


def state(project) -> dict:
    leads = {
        lead.anonymous_id: [lead.current_score, lead.lead_stage, lead.engagement_score]
        for lead in Lead.objects.filter(project=project)
    }
    history: dict[str, list] = {}
    rows = ScoreHistory.objects.filter(project=project).select_related("lead", "event").order_by("occurred_at", "id")
    for row in rows:
        history.setdefault(row.lead.anonymous_id, []).append(
            [row.reason, row.old_score, row.new_score, row.event.event_id if row.event else None]
        )
    return {"leads": leads, "history": history}


def main() -> None:
    scoring.services.rules.app.send_task = lambda *args, **kwargs: None  # no broker: the threads run the slices
    alone, sliced = project_scored("alone@example.com"), project_scored("sliced@example.com")
    job_alone, errors_alone = rescored(alone, 1)
    job, errors = rescored(sliced, 2)
    counts = lambda job: [job.status, job.done, job.total, job.changed]  # noqa: E731
    print(json.dumps({
        "errors": errors_alone + errors,
        "alone": {"job": counts(job_alone), **state(alone)},
        "sliced": {"job": counts(job), **state(sliced),
                   "slices": sorted(RescoreSlice.objects.filter(job=job).values_list("index", "done"))},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
