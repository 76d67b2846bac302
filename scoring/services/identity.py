"""Identity resolution: identify/alias/group calls promote a lead or merge it into a known one."""

import zlib
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.contracts import ChangeKind, LeadChange
from core.pipeline import lead_changed
from core.realtime import project_broadcast
from ingest.models import Event, Lead
from ingest.services import IDENTITY_CALLS, LeadMove, lead_tallies_move, rollups_counted, rollups_subtract

from .. import engine
from ..models import LeadScore, ScoreHistory
from .fold import lead_fold_locked, primary_model

MAX_HOPS = 5
IDENTITY_FIELDS = ["user_id", "email", "name", "company", "traits", "updated_at"]


def _identity_calls(lead_id: int) -> list[engine.IdentityCall]:
    """The lead's unscored events that say who it is, in fold order (one query, no lead fetch)."""
    carries_other_user = ~Q(user_id="") & ~Q(user_id=F("lead__user_id"))
    rows = (
        Event.objects.filter(lead_id=lead_id, processed_at__isnull=True)
        .filter(Q(type__in=IDENTITY_CALLS) | carries_other_user)
        .order_by("timestamp", "event_id")
        .values_list("type", "user_id", "properties")
    )
    return [engine.IdentityCall(type=t, user_id=u, properties=p if isinstance(p, dict) else {}) for t, u, p in rows]


def _identifiers_lock(*, project_id: int, identity: engine.Identity) -> None:
    """Serialise resolutions of the same user id / email in a project (PostgreSQL advisory locks).

    Two workers identifying two devices as the same person at once would otherwise both
    find no owner and promote both leads. Taken in sorted order, before any row lock.
    """
    if connection.vendor != "postgresql":
        return  # SQLite allows one writer at a time anyway
    keys = sorted({zlib.crc32(value.encode()) - 2**31 for value in (identity.user_id, identity.email) if value})
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [project_id, key])


def _merge_target(*, lead: Lead, identity: engine.Identity) -> Lead | None:
    """The live lead that already owns the identity's user id or email, if merging into it is safe."""
    if lead.user_id and identity.user_id and lead.user_id != identity.user_id:
        return None  # another person on an identified device: keep them apart (clients call reset())
    others = Lead.objects.filter(project_id=lead.project_id, merged_into__isnull=True).exclude(id=lead.id)
    target = None
    if identity.user_id:
        target = others.filter(user_id=identity.user_id).order_by("id").first()
    if target is None and identity.email:
        target = others.filter(email=identity.email).order_by("id").first()
    if target is None:
        return None
    for user_id in (identity.user_id, lead.user_id):
        if target.user_id and user_id and target.user_id != user_id:
            return None  # same email, different user ids: two people, no merge
    return target


def _identity_apply(lead: Lead, identity: engine.Identity) -> None:
    if identity.user_id and not lead.user_id:
        lead.user_id = identity.user_id
    lead.email = identity.email or lead.email
    lead.name = identity.name or lead.name
    lead.company = identity.company or lead.company
    lead.traits = {**lead.traits, **identity.traits}


@transaction.atomic
def lead_merge(*, source: Lead, target: Lead, reason: str = "identify") -> Lead:
    """Merge `source` into `target` (both row-locked by the caller, lower id first).

    Every event moves (none lost) and is folded again on the target (none scored twice:
    the source's history goes), the target keeps an audit row with reason `merge`, and
    the source points at the target so its anonymous id keeps resolving to it.
    """
    now = timezone.now()
    old_score = target.current_score
    source_place = None if source.merged_into_id else (source.lead_stage, source.current_score, source.matrix_cell)
    counted = rollups_counted(events=Event.objects.filter(lead=source))  # scored once: folded again below
    moved = Event.objects.filter(lead=source).update(lead=target, processed_at=None)
    ScoreHistory.objects.filter(lead=source).delete()
    Lead.objects.filter(merged_into=source).update(merged_into=target)

    for name in ("user_id", "email", "name", "company"):
        if not getattr(target, name):
            setattr(target, name, getattr(source, name))
    target.traits = {**source.traits, **target.traits}
    target.save(update_fields=IDENTITY_FIELDS)

    source.merged_into = target
    source.user_id = ""
    source.current_score = source.events_last_24h = source.velocity_score = 0
    source.lead_stage = Lead.Stage.COLD
    source.fold_state = {}
    source.save(
        update_fields=[
            "merged_into",
            "user_id",
            "current_score",
            "events_last_24h",
            "velocity_score",
            "lead_stage",
            "fold_state",
            "updated_at",
        ]
    )

    LeadScore.objects.filter(lead=source).delete()  # its other models' results: the survivor's refold has them
    lead_fold_locked(lead=target, now=now)
    rollups_subtract(counted=counted)  # after the fold: its marks counted the moved events again
    # the source leaves the live leads: after the fold, whose save may take the project's rollup lock first
    lead_tallies_move(moves=[LeadMove(source.project_id, source_place, None)])
    primary = primary_model(target.project)
    ScoreHistory.objects.create(
        project_id=target.project_id,
        lead=target,
        model=primary,
        version=primary.version,
        reason=ScoreHistory.Reason.MERGE,
        old_score=old_score,
        new_score=target.current_score,
        delta=target.current_score - old_score,
        details={"mergedLeadId": source.id, "anonymousId": source.anonymous_id, "eventsMoved": moved, "via": reason},
        occurred_at=now,
    )
    payload = {"id": target.id, "mergedLeadId": source.id, "currentScore": target.current_score}
    transaction.on_commit(lambda: project_broadcast(project_id=target.project_id, type="lead.merged", payload=payload))
    lead_changed(change=_change("merged", target, merged_lead_id=source.id, merged_anonymous_id=source.anonymous_id))
    return target


def lead_identify(*, lead_id: int) -> int | None:
    """Apply the lead's pending identity calls; return the id of the lead to score.

    With no other owner of the identified user id or email the lead is promoted in
    place; otherwise it is merged into the owner and the owner's id comes back.
    """
    for _ in range(MAX_HOPS):
        # the common case (no identity call pending) costs this one query
        calls = _identity_calls(lead_id)
        if not calls:
            return lead_id  # lead_score locks the lead (and hands a merged one's events on)
        lead = Lead.objects.filter(id=lead_id).first()
        if lead is None:
            return None
        if lead.merged_into_id:
            return lead_id
        identity = engine.identity_fold(calls)
        with transaction.atomic():
            _identifiers_lock(project_id=lead.project_id, identity=identity)
            target = _merge_target(lead=lead, identity=identity)
            ids = sorted({lead_id, target.id} if target else {lead_id})
            locked = {
                row.id: row
                for row in Lead.objects.select_for_update(no_key=True, of=("self",))
                .select_related("project")
                .filter(id__in=ids)
                .order_by("id")
            }
            source = locked.get(lead_id)
            survivor = locked.get(target.id) if target else None
            if source is None or source.merged_into_id or (target and (survivor is None or survivor.merged_into_id)):
                continue  # changed under us (merged, or erased while we waited for its lock): look again
            if source.user_id and identity.user_id and source.user_id != identity.user_id:
                return lead_id  # another person on an identified device: their traits are not this lead's
            if survivor is None:  # nobody else owns the identity: promote the lead in place
                newly_identified = not (source.user_id or source.email)
                _identity_apply(source, identity)
                source.save(update_fields=IDENTITY_FIELDS)
                if newly_identified and (source.user_id or source.email):
                    lead_changed(change=_change("identified", source))
                return lead_id
            _identity_apply(survivor, identity)
            lead_merge(source=source, target=survivor)
            lead_id = survivor.id
    return lead_id


def _change(kind: ChangeKind, lead: Lead, **extra: Any) -> LeadChange:
    """A change that leaves the score as it is (the merge's own fold announced any move)."""
    return LeadChange(
        kind=kind,
        project_id=lead.project_id,
        lead_id=lead.id,
        old_score=lead.current_score,
        new_score=lead.current_score,
        old_stage=lead.lead_stage,
        new_stage=lead.lead_stage,
        velocity=lead.events_last_24h,
        path=((lead.current_score, lead.lead_stage),),
        **extra,
    )
