"""Score leads from the queue, seed default rules, reconcile what the queue lost."""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Project
from core.contracts import LeadChange
from core.errors import ApplicationError, NotFound
from core.pipeline import company_changes, lead_score_request, lead_score_wake
from ingest.models import Event, Lead
from ingest.services import LeadMove, lead_tallies_move, rollups_counted, rollups_subtract

from ..models import ScoreHistory, ScoringModel, ScoringRule
from .batch import leads_score
from .fold import lead_lock
from .identity import lead_identify
from .rules import rescore_jobs_resume
from .versions import version_publish

logger = logging.getLogger(__name__)

DEFAULT_RULES = (
    ("page_view", 5),
    ("email_open", 10),
    ("form_submit", 20),
    ("signup", 30),
    ("pricing_page_visit", 15),
    ("webinar_attendance", 25),
    ("demo_request", 50),
    ("contract_signed", 100),
    ("download", 15),
    ("unsubscribe", -20),
)


def project_rules_seed(*, project: Project) -> None:
    """Give a new project its primary `default` scoring model with the default rules (a project provisioner)."""
    model = ScoringModel.objects.create(project=project, key="default", name="Default", is_primary=True)
    ScoringRule.objects.bulk_create(
        [
            ScoringRule(
                project=project,
                model=model,
                name=event_type.replace("_", " ").capitalize(),
                event_type=event_type,
                points=points,
            )
            for event_type, points in DEFAULT_RULES
        ]
    )
    version_publish(model=model, note="the default rules")


def lead_score(*, lead_id: int) -> Lead | None:
    """Resolve the lead's identity calls (maybe merging it away), then score it: a batch of one."""
    survivor_id = lead_identify(lead_id=lead_id)
    if survivor_id is None:
        return None
    result = leads_score(lead_ids=[survivor_id])
    if result.more or result.busy:  # more to fold, or held elsewhere right now: a later batch carries on
        lead_score_request(lead_ids=result.more | result.busy)
    return Lead.objects.select_related("project").filter(id=survivor_id).first()


def events_reconcile(*, limit: int = 10000) -> int:
    """Re-enqueue leads whose events are still unprocessed after the grace period."""
    cutoff = timezone.now() - timedelta(seconds=settings.LEADPULSE_RECONCILE_GRACE_SECONDS)
    lead_ids = list(
        Event.objects.filter(processed_at__isnull=True, received_at__lte=cutoff)
        .order_by()
        .values_list("lead_id", flat=True)
        .distinct()[:limit]
    )
    sent = lead_score_request(lead_ids=lead_ids)
    if sent:
        try:
            lead_score_wake(force=True)
        except Exception:  # Redis is down: the next run tries again
            logger.warning("reconciler could not wake the scoring workers", exc_info=True)
    rescore_jobs_resume()
    if lead_ids:
        logger.info("reconciler: %d leads with unprocessed events, %d enqueued", len(lead_ids), sent)
    return sent


LEAD_EDITABLE_FIELDS = ("name", "email", "company", "traits")
COMPANY_FIELDS = {"email", "company", "traits"}  # what a lead's company is derived from


@transaction.atomic
def lead_update(*, lead: Lead, data: dict[str, Any]) -> Lead:
    """Change the lead's editable identity fields, then re-score it so its fit follows."""
    unknown = set(data) - set(LEAD_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError("This field cannot be changed.", field=sorted(unknown)[0])
    locked = lead_lock(lead_id=lead.id)
    if locked is not None and locked.merged_into_id:
        locked = lead_lock(lead_id=locked.merged_into_id)  # merged away meanwhile: edit the survivor
    if locked is None:
        raise NotFound("Lead not found.")
    changed = [field for field in LEAD_EDITABLE_FIELDS if field in data and getattr(locked, field) != data[field]]
    for field in changed:
        setattr(locked, field, data[field])
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
        transaction.on_commit(lambda: lead_score_request(lead_ids=[locked.id]))
        if COMPANY_FIELDS & set(changed):
            # companies key leads on these, and the re-score announces only a moved score: tell them now
            score, stage = locked.current_score, locked.lead_stage
            change = LeadChange(kind="scored", project_id=locked.project_id, lead_id=locked.id, old_score=score,
                                new_score=score, old_stage=stage, new_stage=stage)  # fmt: skip
            company_changes(changes=[change])
    return locked


@transaction.atomic
def lead_erase(*, lead: Lead) -> int:
    """Erase the lead and every lead merged into it, with all that refers to them (GDPR); return leads erased.

    The database cascades reach events, score history, automation executions and their
    webhook deliveries; copies of the lead elsewhere (e.g. subscription deliveries' payloads)
    are erased by the `LEADPULSE_LEAD_ERASERS` hooks, so scoring never imports automations.
    """
    leads = Lead.objects.select_for_update().filter(project_id=lead.project_id)
    # The leads merged into it before the lead itself: a batch holding a merged lead hands the events
    # ingest attached to it late on to the lead, and its commit checks the lead's row (the foreign key),
    # so an erase holding the lead while it waits for the merged one would deadlock with it.
    merged = list(leads.filter(merged_into_id=lead.id).order_by("id").values_list("id", flat=True))
    locked = list(leads.filter(id=lead.id).values_list("merged_into_id", flat=True))
    if not locked:
        return 0
    if locked[0]:
        # merged away while the erase waited for its lock: its events are the survivor's now, and so
        # is the person (as the API resolves a merged lead to its survivor)
        survivor = Lead.objects.filter(id=locked[0]).first()
        return lead_erase(lead=survivor) if survivor is not None else 0
    # A merge into the lead that was in flight when its lock was asked for committed before it was
    # granted: the first statement did not see its source, which now points here. Holding the lead,
    # no new merge into it can start, so one more look finds every lead merged into it.
    lead_ids = sorted({lead.id, *merged, *leads.filter(merged_into_id=lead.id).values_list("id", flat=True)})
    place = (  # read under our lock
        Lead.objects.filter(id=lead.id).values_list("lead_stage", "current_score", "matrix_cell").get()
    )
    # history first: one fast delete instead of a cascade collected event by event
    ScoreHistory.objects.filter(Q(lead_id__in=lead_ids) | Q(event__lead_id__in=lead_ids)).delete()
    counted = rollups_counted(events=Event.objects.filter(lead_id__in=lead_ids))
    Event.objects.filter(lead_id__in=lead_ids).delete()
    for path in settings.LEADPULSE_LEAD_ERASERS:
        import_string(path)(project_id=lead.project_id, lead_ids=lead_ids)
    Lead.objects.filter(id__in=lead_ids).delete()
    rollups_subtract(counted=counted)  # last: the project's scoring waits on it until commit
    # the lead leaves the live leads (the merged ones were in none); after the rollup lock, as scoring does
    lead_tallies_move(moves=[LeadMove(lead.project_id, place, None)])
    return len(lead_ids)
