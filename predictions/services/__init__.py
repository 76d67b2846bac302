"""Predictions' writes: leads' outcomes (won/lost) recorded, replaced, cleared, erased; the project's settings.

Outcomes arrive from the API (one lead, or a bulk list by lead id, email or external id), from a CSV upload, from
the lead page, and from the lead-change contract (`core.contracts.LeadChange`): each scoring batch hands over the
events it folded, and an event of the project's "won" type records the lead as won at the event's time. A lead has
one current outcome: recording another replaces it (see `Outcome`).
"""

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.contracts import LeadChange
from core.errors import ApplicationError, NotFound
from ingest.contracts import event_name_valid
from ingest.models import Event, Lead

from ..models import DEFAULT_WON_EVENT_TYPE, Outcome, PredictionSettings

if TYPE_CHECKING:
    from accounts.models import ApiKey, Project, User

REASON_MAX_LENGTH = 1000
VALUE_MAX = Decimal("999999999999.99")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
BULK_MAX_ITEMS = 1000
CHANGE_EVENT_IDS_MAX = 500  # a `LeadChange` lists at most this many folded events (scoring's fold)
CSV_MAX_BYTES = 2 * 1024 * 1024
CSV_COLUMNS = ("email", "userId", "leadId", "outcome", "value", "at", "reason")
LEAD_KEYS = ("leadId", "email", "userId")  # how an item names its lead, in the order they are tried


@dataclass(frozen=True)
class OutcomeInput:
    """A checked outcome, before it is stored on a lead."""

    outcome: str
    value: Decimal | None = None
    at: datetime | None = None  # None: now
    reason: str = ""


@dataclass(frozen=True)
class Recorder:
    """Who records outcomes, and how."""

    source: str
    user: "User | None" = None
    api_key: "ApiKey | None" = None


@dataclass
class BulkResult:
    """A bulk write's stored outcomes by item index, and its refused items (index, field, message)."""

    count: int
    stored: dict[int, Outcome] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def outcome_input_check(
    *, outcome: Any, value: Any = None, at: Any = None, reason: Any = "", now: datetime | None = None
) -> OutcomeInput:
    """The outcome if every part is acceptable, else a 400 naming the first wrong field."""
    if outcome not in Outcome.Kind.values:
        raise ApplicationError("Must be won or lost.", field="outcome")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ApplicationError("Must be a number.", field="value")
        try:
            value = Decimal(str(value)).quantize(Decimal("0.01"))
        except InvalidOperation:
            raise ApplicationError("Must be a number.", field="value") from None
        if not Decimal(0) <= value <= VALUE_MAX:
            raise ApplicationError(f"Must be from 0 to {VALUE_MAX}.", field="value")
    if at is not None:
        if not isinstance(at, datetime):
            raise ApplicationError("Must be an ISO 8601 date and time.", field="at")
        if timezone.is_naive(at):
            at = timezone.make_aware(at, UTC)
        latest = (now or timezone.now()) + timedelta(days=1)
        if not EARLIEST <= at <= latest:
            raise ApplicationError("Must be from 2000-01-01 to a day from now.", field="at")
    if not isinstance(reason, str) or len(reason) > REASON_MAX_LENGTH or "\x00" in reason:
        raise ApplicationError(f"Must be text of at most {REASON_MAX_LENGTH} characters.", field="reason")
    return OutcomeInput(outcome=outcome, value=value, at=at, reason=reason.strip())


def _lead_key_share(lead_id: int) -> tuple[int, int | None] | None:
    """Hold the lead for the transaction (`FOR KEY SHARE`: an erase waits for us; scoring and merges do not)."""
    table = connection.ops.quote_name(Lead._meta.db_table)
    sql = f"SELECT id, merged_into_id FROM {table} WHERE id = %s FOR KEY SHARE"  # noqa: S608 (a model's table)
    if connection.vendor != "postgresql":  # embedded SQLite: one writer at a time anyway
        sql = sql.removesuffix(" FOR KEY SHARE")
    with connection.cursor() as cursor:
        cursor.execute(sql, [lead_id])
        row = cursor.fetchone()
    return (int(row[0]), row[1]) if row else None


def _lead_held(*, lead_id: int) -> int:
    """The id of the live lead (a merged-away one's survivor) held for the transaction; 404 when it is gone."""
    for _ in range(5):
        row = _lead_key_share(lead_id)
        if row is None:
            break
        if row[1] is None:
            return row[0]
        lead_id = row[1]
    raise NotFound("Lead not found.")


def _row(*, project_id: int, lead_id: int, data: OutcomeInput, recorder: Recorder, now: datetime) -> Outcome:
    return Outcome(
        project_id=project_id, lead_id=lead_id, outcome=data.outcome, value=data.value, occurred_at=data.at or now,
        reason=data.reason, source=recorder.source, source_event_id=None, author=recorder.user,
        api_key=recorder.api_key, created_at=now, updated_at=now,
    )  # fmt: skip


REPLACED = ["outcome", "value", "occurred_at", "reason", "source", "source_event_id", "author", "api_key",
            "created_at", "updated_at"]  # fmt: skip


def _upsert(rows: list[Outcome]) -> None:
    """Store each row as its lead's outcome, replacing the one it had (one statement)."""
    if rows:
        Outcome.objects.bulk_create(rows, update_conflicts=True, unique_fields=["lead"], update_fields=REPLACED)


@transaction.atomic
def outcome_record(*, lead: Lead, data: OutcomeInput, recorder: Recorder) -> Outcome:
    """Record the lead's outcome (a merged-away lead's goes to its survivor), replacing any it had."""
    lead_id = _lead_held(lead_id=lead.id)
    _upsert([_row(project_id=lead.project_id, lead_id=lead_id, data=data, recorder=recorder, now=timezone.now())])
    return Outcome.objects.select_related("author", "api_key").get(lead_id=lead_id)


@transaction.atomic
def outcome_clear(*, lead: Lead) -> bool:
    """Remove the lead's outcome; whether it had one."""
    deleted, _ = Outcome.objects.filter(project_id=lead.project_id, lead_id=lead.id).delete()
    return bool(deleted)


def _leads_resolve(*, project_id: int, refs: dict[int, tuple[str, Any]]) -> dict[int, int | ApplicationError]:
    """Each item's live lead id (merges followed) by its reference, in a query per kind of reference."""
    wanted: dict[str, set[Any]] = defaultdict(set)
    for kind, value in refs.values():
        wanted[kind].add(value)
    leads = Lead.objects.filter(project_id=project_id)
    found: dict[tuple[str, Any], list[int]] = defaultdict(list)
    if wanted["leadId"]:
        for pk, survivor in leads.filter(id__in=wanted["leadId"]).values_list("id", "merged_into_id"):
            found["leadId", pk].append(survivor or pk)
    for kind, column in (("email", "email"), ("userId", "user_id")):
        if wanted[kind]:
            live = leads.filter(merged_into__isnull=True, **{f"{column}__in": wanted[kind]}).order_by("id")
            for pk, key in live.values_list("id", column):
                found[kind, key].append(pk)
    resolved: dict[int, int | ApplicationError] = {}
    for index, (kind, value) in refs.items():
        ids = found.get((kind, value), [])
        if not ids:
            resolved[index] = ApplicationError("No lead of the project has this.", field=kind, code="not_found")
        elif len(ids) > 1:
            resolved[index] = ApplicationError("Several leads have this: name the lead by leadId.", field=kind)
        else:
            resolved[index] = ids[0]
    return resolved


def lead_ref(item: dict[str, Any]) -> tuple[str, Any]:
    """How an item names its lead: exactly one of leadId, email and userId (400 naming the field otherwise)."""
    given = [key for key in LEAD_KEYS if item.get(key) not in (None, "")]
    if len(given) != 1:
        raise ApplicationError("Give exactly one of leadId, email and userId.", field=given[1] if given else "leadId")
    key = given[0]
    value = item[key]
    if key == "leadId":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApplicationError("Must be a lead id.", field="leadId")
    elif not isinstance(value, str) or len(value) > 255 or "\x00" in value:
        raise ApplicationError("Must be text of at most 255 characters.", field=key)
    else:
        value = value.strip().lower() if key == "email" else value.strip()
    return key, value


@transaction.atomic
def outcomes_record(
    *, project: "Project", items: Sequence[tuple[tuple[str, Any], OutcomeInput] | ApplicationError],
    recorder: Recorder,
) -> BulkResult:  # fmt: skip
    """Store the valid items' outcomes and report the others by index.

    A later item for a lead wins: each item naming the lead reports the outcome stored.
    """
    result = BulkResult(count=len(items))
    refs = {index: item[0] for index, item in enumerate(items) if not isinstance(item, ApplicationError)}
    resolved = _leads_resolve(project_id=project.id, refs=refs)
    now = timezone.now()
    rows: dict[int, tuple[list[int], Outcome]] = {}  # lead -> the items naming it, the last one's row
    for index, item in enumerate(items):
        lead_id = item if isinstance(item, ApplicationError) else resolved[index]
        if isinstance(lead_id, ApplicationError):
            result.errors.append({"index": index, "field": lead_id.field, "message": lead_id.message})
            continue
        assert not isinstance(item, ApplicationError)
        indexes = rows[lead_id][0] if lead_id in rows else []
        row = _row(project_id=project.id, lead_id=lead_id, data=item[1], recorder=recorder, now=now)
        rows[lead_id] = ([*indexes, index], row)
    if rows:
        # held as one lead is: an erase waits for us, and a lead erased before we got here is not written
        held = {lead_id: _lead_key_share(lead_id) for lead_id in sorted(rows)}
        for lead_id, found in held.items():
            if found is None or found[1] is not None:
                gone = rows.pop(lead_id)[0]
                message = "The lead was merged or erased meanwhile: send it again."
                result.errors += [{"index": index, "field": "leadId", "message": message} for index in gone]
        _upsert([row for _, row in rows.values()])
        stored = Outcome.objects.filter(lead_id__in=list(rows)).select_related("lead", "author", "api_key")
        by_lead = {outcome.lead_id: outcome for outcome in stored}
        result.stored = {index: by_lead[lead_id] for lead_id, (indexes, _) in rows.items() for index in indexes}
    result.errors.sort(key=lambda error: error["index"])
    return result


def csv_items(*, text: str) -> list[tuple[tuple[str, Any], OutcomeInput] | ApplicationError]:
    """The CSV's rows as items of `outcomes_record` (a refused row as its error); 400 for a bad header.

    Columns (a header row names them, in any order): one of email, userId and leadId; outcome; and optionally
    value, at (ISO 8601) and reason. Empty cells are left out.
    """
    if "\x00" in text:
        raise ApplicationError("A CSV file has no NUL characters.", field="file")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
    except csv.Error as exc:
        raise ApplicationError(f"Not a CSV file: {exc}.", field="file") from None
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise ApplicationError(f"Unknown column {unknown[0]!r}: columns are {', '.join(CSV_COLUMNS)}.", field="file")
    if "outcome" not in header or not set(LEAD_KEYS) & set(header):
        raise ApplicationError("The header must name an outcome column and one of email, userId, leadId.",
                               field="file")  # fmt: skip
    reader.fieldnames = header
    items: list[tuple[tuple[str, Any], OutcomeInput] | ApplicationError] = []
    try:
        for row in reader:
            if len(items) >= BULK_MAX_ITEMS:
                raise ApplicationError(f"At most {BULK_MAX_ITEMS} rows.", field="file")
            items.append(_csv_item({key: (value or "").strip() for key, value in row.items() if key is not None}))
    except csv.Error as exc:
        raise ApplicationError(f"Not a CSV file: {exc}.", field="file") from None
    if not items:
        raise ApplicationError("No rows below the header.", field="file")
    return items


def _csv_item(row: dict[str, Any]) -> tuple[tuple[str, Any], OutcomeInput] | ApplicationError:
    try:
        if row.get("leadId"):
            if not row["leadId"].isdecimal():
                raise ApplicationError("Must be a lead id.", field="leadId")
            row["leadId"] = int(row["leadId"])
        ref = lead_ref(row)
        value: Any = None
        if row.get("value"):
            try:
                value = Decimal(row["value"])
            except InvalidOperation:
                raise ApplicationError("Must be a number.", field="value") from None
            if not value.is_finite():
                raise ApplicationError("Must be a number.", field="value")
        at: Any = None
        if row.get("at"):
            try:
                at = parse_datetime(row["at"])
            except ValueError:
                at = None
            if at is None:
                raise ApplicationError("Must be an ISO 8601 date and time.", field="at")
        return ref, outcome_input_check(
            outcome=row.get("outcome", ""), value=value, at=at, reason=row.get("reason", "")
        )
    except ApplicationError as error:
        return error


def prediction_settings_update(*, project: "Project", won_event_type: str) -> PredictionSettings:
    """Set the event type that records a lead as won ("" for none)."""
    won_event_type = won_event_type.strip()
    if won_event_type and not event_name_valid(won_event_type):
        raise ApplicationError("Must be an event name (letters, digits, _ . : - and spaces).", field="wonEventType")
    settings, _ = PredictionSettings.objects.update_or_create(
        project=project, defaults={"won_event_type": won_event_type}
    )
    return settings


def _won_event_types(project_ids: Iterable[int]) -> dict[int, str]:
    ids = set(project_ids)
    stored = dict(PredictionSettings.objects.filter(project_id__in=ids).values_list("project_id", "won_event_type"))
    return {project_id: stored.get(project_id, DEFAULT_WON_EVENT_TYPE) for project_id in ids}


@transaction.atomic
def lead_changes_consume(*, changes: list[LeadChange]) -> int:
    """Record as won the leads a batch folded an event of their project's "won" type into, and hand merged-away
    leads' outcomes to their survivors; return the outcomes written or moved. Redelivery changes nothing more.

    An event records a won outcome at its timestamp when the lead has none, or has a lost one from before it (a lead
    that was lost and then signed): an outcome recorded by hand after the event, and any won one, stay as they are.
    """
    events: dict[int, set[int]] = defaultdict(set)
    survivors: dict[int, set[int]] = defaultdict(set)  # leads that others were merged into
    capped: dict[int, set[int]] = defaultdict(set)  # leads whose change lists only its first events
    for change in changes:
        events[change.project_id].update(change.event_ids)
        if change.kind == "merged":  # every merge says so (`scoring.services.identity`)
            survivors[change.project_id].add(change.lead_id)
        if len(change.event_ids) >= CHANGE_EVENT_IDS_MAX:
            capped[change.project_id].add(change.lead_id)
    written = 0
    for project_id, lead_ids in sorted(survivors.items()):
        written += _merged_outcomes_move(project_id=project_id, lead_ids=lead_ids)
    types = _won_event_types(pid for pid, ids in events.items() if ids)
    for project_id, event_ids in sorted(events.items()):
        if types.get(project_id):
            written += _won_events_record(
                project_id=project_id, event_ids=event_ids, lead_ids=capped[project_id], name=types[project_id]
            )
    return written


def _won_events_record(*, project_id: int, event_ids: set[int], lead_ids: set[int], name: str) -> int:
    """Record won outcomes from these events of the type `name`, and any such event of `lead_ids` (whose changes
    listed only their first events)."""
    # By the events' and leads' own indexes only: with the project in the condition, a planner without statistics
    # yet (a new or fast-growing log) read every event of the project through its index, for a batch's handful.
    # The ids are the project's already; its rows are kept below all the same.
    wanted = Q(id__any_of=event_ids)
    if lead_ids:
        wanted |= Q(lead_id__any_of=lead_ids)
    found = (
        Event.objects.filter(wanted, name=name)
        .exclude(type=Event.Type.ADJUSTMENT)
        .values_list("id", "timestamp", "lead_id", "lead__merged_into_id", "project_id")
        .order_by("timestamp", "event_id")
    )
    first: dict[int, tuple[int, datetime]] = {}  # lead -> its earliest won event in the batch
    for event_id, timestamp, lead_id, survivor, event_project_id in found:
        if event_project_id == project_id:
            first.setdefault(survivor or lead_id, (event_id, timestamp))
    if not first:
        return 0
    now = timezone.now()
    rows = [
        Outcome(project_id=project_id, lead_id=lead_id, outcome=Outcome.Kind.WON, occurred_at=timestamp,
                reason=f"{name} event", source=Outcome.Source.EVENT, source_event_id=event_id, created_at=now,
                updated_at=now)
        for lead_id, (event_id, timestamp) in sorted(first.items())
    ]  # fmt: skip
    Outcome.objects.bulk_create(rows, ignore_conflicts=True)  # a lead with an outcome keeps it here
    for lead_id, (event_id, timestamp) in sorted(first.items()):
        # the lead was lost before this event: won now (one conditional UPDATE, so a race cannot undo a later one)
        Outcome.objects.filter(
            lead_id=lead_id, outcome=Outcome.Kind.LOST, occurred_at__lt=timestamp
        ).update(
            outcome=Outcome.Kind.WON, value=None, occurred_at=timestamp, reason=f"{name} event",
            source=Outcome.Source.EVENT, source_event_id=event_id, author=None, api_key=None, updated_at=now,
        )  # fmt: skip
    events = [event_id for event_id, _ in first.values()]
    return Outcome.objects.filter(lead_id__in=list(first), source_event_id__in=events).count()


def _merged_outcomes_move(*, project_id: int, lead_ids: set[int]) -> int:
    """Give the outcomes of leads merged into these to the survivors (the later outcome wins a conflict)."""
    merged = list(
        Outcome.objects.select_for_update()
        .filter(project_id=project_id, lead__merged_into_id__in=sorted(lead_ids))
        .values_list("id", "lead__merged_into_id", "occurred_at")
        .order_by("lead__merged_into_id", "-occurred_at", "-id")
    )
    if not merged:
        return 0
    survivors: set[int] = {survivor for _, survivor, _ in merged if survivor is not None}
    current = dict(
        Outcome.objects.select_for_update().filter(lead_id__in=survivors).values_list("lead_id", "occurred_at")
    )
    moved = 0
    for outcome_id, survivor, occurred_at in merged:
        if survivor is None:
            continue
        if survivor in current and current[survivor] >= occurred_at:
            Outcome.objects.filter(id=outcome_id).delete()  # the survivor's own outcome is the later one
            continue
        Outcome.objects.filter(lead_id=survivor).delete()
        Outcome.objects.filter(id=outcome_id).update(lead_id=survivor, updated_at=timezone.now())
        current[survivor] = occurred_at
        moved += 1
    return moved


@transaction.atomic
def lead_outcomes_erase(*, project_id: int, lead_ids: list[int]) -> int:
    """Erase the leads' outcomes (a `LEADPULSE_LEAD_ERASERS` hook); return how many."""
    deleted, _ = Outcome.objects.filter(project_id=project_id, lead_id__in=lead_ids).delete()
    return deleted


def outcome_recorder(*, source: str, user: "User | None" = None, api_key: "ApiKey | None" = None) -> Recorder:
    """Who records: a person, or (without one) a secret key."""
    return Recorder(source=source, user=user, api_key=api_key if user is None else None)
