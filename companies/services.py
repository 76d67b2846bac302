"""Companies' writes: leads assigned to companies from their profiles, companies' scores recomputed.

Fed by the lead-change contract (`core.contracts.LeadChange`): each scoring batch hands over the
leads it changed, and `lead_changes_consume` assigns them and recomputes every company it touched
once, whatever the number of member changes in the batch.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

import orjson
from celery import current_app as app
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from core.contracts import CompanyChange, CompanyChangeReason, LeadChange
from core.errors import ApplicationError, NotFound
from core.pipeline import companies_changed
from core.realtime import project_broadcast
from core.sql import int_array
from ingest.selectors import LeadProfile, leads_profiles_locked
from scoring.contracts import stage_for
from scoring.models import ScoringModel
from scoring.selectors import leads_results

from .domains import CompanyKey, company_key
from .models import Company, CompanyMembership, CompanyRollupSettings, CompanyScore, CompanyScoreHistory
from .rollup import CompanyResult, Member, RollupConfig, company_moved, company_rollup, contributions_from_json
from .selectors import rollup_configs

# A model without roll-up settings (`CompanyRollupSettings`) rolls up with the defaults.
ROLLUP = RollupConfig()


def lead_company_key(profile: LeadProfile) -> CompanyKey | None:
    return company_key(email=profile.email, traits=profile.traits, company=profile.company)


def _company_traits(profile: LeadProfile) -> dict:
    """What a lead's group calls said of its company (industry, employees, plan …), ids aside."""
    group = profile.traits.get("company")
    if not isinstance(group, dict):
        return {}
    return {key: value for key, value in group.items() if key not in ("groupId", "id")}


@transaction.atomic
def leads_assign(*, project_id: int, lead_ids: Iterable[int]) -> set[int]:
    """Put each of the project's leads in the company its profile names (or none); return the companies touched.

    A lead re-homed leaves its old company: both are touched. Leads merged away or erased leave theirs.
    """
    return _leads_assign(project_id=project_id, lead_ids=lead_ids)


def _leads_assign(*, project_id: int, lead_ids: Iterable[int]) -> set[int]:
    # Share-locked, in id order: an erase (which locks its leads FOR UPDATE) waits for this assignment, or
    # this one waits for the erase and finds its leads gone, so no membership outlives its erased lead.
    # With them the leads merged into them: a merged lead's events (and person) are its survivor's now.
    locked = leads_profiles_locked(project_id=project_id, lead_ids=lead_ids)
    profiles = locked.profiles
    keys = {lead_id: lead_company_key(profile) for lead_id, profile in profiles.items()}
    current = _memberships_of(project_id=project_id, lead_ids={*profiles, *locked.merged})
    wanted = {key.key: key for key in keys.values() if key is not None}
    companies = _companies_upsert(project_id=project_id, keys=list(wanted.values()), profiles=profiles, leads=keys)
    target = {lead_id: companies[key.key] for lead_id, key in keys.items() if key is not None}
    gone = [lead_id for lead_id in current if lead_id not in target]
    if gone:
        CompanyMembership.objects.filter(project_id=project_id, lead_id__any_of=set(gone)).delete()
    moved = {lead_id: company_id for lead_id, company_id in target.items() if current.get(lead_id) != company_id}
    if moved:
        _memberships_upsert(project_id=project_id, moved=moved)
    return set(current.values()) | set(target.values())


def _memberships_of(*, project_id: int, lead_ids: set[int]) -> dict[int, int]:
    """The leads' companies (lead id -> company id): hand-written on PostgreSQL, once per scoring batch."""
    if connection.vendor != "postgresql":
        return dict(
            CompanyMembership.objects.filter(project_id=project_id, lead_id__in=lead_ids).values_list(
                "lead_id", "company_id"
            )
        )
    table = connection.ops.quote_name(CompanyMembership._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT lead_id, company_id FROM {table} WHERE project_id = %s AND lead_id = ANY(%s::bigint[])",  # noqa: S608
            [project_id, int_array(lead_ids)],
        )
        return dict(cursor.fetchall())


def _memberships_upsert(*, project_id: int, moved: dict[int, int]) -> None:
    """Put the leads in their companies (lead id -> company id): one statement, no model instances."""
    if connection.vendor != "postgresql":
        rows = [CompanyMembership(project_id=project_id, lead_id=lead, company_id=to) for lead, to in moved.items()]
        CompanyMembership.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["lead"], update_fields=["company"]
        )
        return
    table = connection.ops.quote_name(CompanyMembership._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, lead_id, company_id, created_at)"  # noqa: S608
            " SELECT %s, lead, company, now() FROM unnest(%s::bigint[], %s::bigint[]) AS m(lead, company)"
            " ON CONFLICT (lead_id) DO UPDATE SET company_id = EXCLUDED.company_id",
            [project_id, int_array(moved), int_array(moved.values())],
        )


def _companies_upsert(
    *, project_id: int, keys: list[CompanyKey], profiles: dict[int, LeadProfile], leads: dict[int, CompanyKey | None]
) -> dict[str, int]:
    """The ids of the companies with these keys, created as needed; group traits folded into theirs."""
    if not keys:
        return {}
    traits: dict[str, dict] = defaultdict(dict)
    for lead_id in sorted(leads):  # ascending lead ids: a later lead's group call wins a conflict
        key = leads[lead_id]
        if key is not None:
            traits[key.key].update(_company_traits(profiles[lead_id]))
    by_key = {key.key: key for key in keys}
    _companies_insert(project_id=project_id, keys=keys)
    # A concurrent `company_merge` of one of them: the INSERT … ON CONFLICT above waits for a merge in progress (it
    # wrote a new version of the row, `merged_into` being indexed), so `merged_into` is read here; a merge starting
    # after `lead_changes_consume`'s recompute locked the companies waits for this commit, then moves the memberships.
    # One committed between this read and that lock is the gap left (memberships have no foreign-key constraint; the
    # one they had was checked only at commit, so it never closed that gap either).
    # tuples, not instances: a batch reads hundreds
    if connection.vendor == "postgresql":  # hand-written: the queryset's building cost more than the statement
        table = connection.ops.quote_name(Company._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, key, name, domain, traits::text, merged_into_id FROM {table}"  # noqa: S608
                " WHERE project_id = %s AND key = ANY(%s::text[])",
                [project_id, list(by_key)],
            )
            found = cursor.fetchall()
    else:
        found = list(
            Company.objects.filter(project_id=project_id, key__in=list(by_key))
            .annotate(traits_text=_TRAITS_TEXT)
            .values_list("id", "key", "name", "domain", "traits_text", "merged_into_id")
        )
    changed = []
    now = timezone.now()
    for company_id, key, old_name, old_domain, traits_text, _merged_into in found:
        wanted = by_key[key]
        # a group call's name wins; a name replaces the placeholder (the domain) a company started with
        named = traits[key].get("name") or old_name in ("", old_domain)
        name = wanted.name if wanted.name and named else old_name
        domain = old_domain or wanted.domain
        if not traits[key] and (name, domain) == (old_name, old_domain):
            continue  # nothing new: the stored traits are not even decoded
        old_traits = json.loads(traits_text)
        merged = {**old_traits, **traits[key]}
        if (merged, name, domain) != (old_traits, old_name, old_domain):
            changed.append(Company(id=company_id, traits=merged, name=name, domain=domain, updated_at=now))
    if changed:
        Company.objects.bulk_update(changed, ["traits", "name", "domain", "updated_at"])
    # a merged-away company's key is an alias of its survivor: its leads land there, never in it
    return {row[1]: row[5] or row[0] for row in found}


# A company's traits as the text PostgreSQL keeps: decoded only where they are read (group calls, fit rules).
_TRAITS_TEXT = Cast("traits", output_field=TextField())
_BREAKDOWN_TEXT = Cast("breakdown", output_field=TextField())


def _companies_insert(*, project_id: int, keys: list[CompanyKey]) -> None:
    """Create the companies with these keys that do not exist yet, in their order: one statement, no instances."""
    if connection.vendor != "postgresql":
        Company.objects.bulk_create(
            [Company(project_id=project_id, key=key.key, domain=key.domain, name=key.name) for key in keys],
            ignore_conflicts=True,
        )
        return
    table = connection.ops.quote_name(Company._meta.db_table)
    document = json.dumps([[key.key, key.domain, key.name] for key in keys])
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, key, domain, name, traits, created_at, updated_at)"  # noqa: S608
            " SELECT %s, r->>0, r->>1, r->>2, '{}'::jsonb, %s, %s"
            " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS k(r, n) ORDER BY n ON CONFLICT DO NOTHING",
            [project_id, now, now, document],
        )


@transaction.atomic
def companies_recompute(*, company_ids: Iterable[int], reason: CompanyChangeReason = "member") -> int:
    """Recompute every model's score of the companies from their members' results; return the companies.

    See `_companies_recompute`.
    """
    return _companies_recompute(company_ids=company_ids, reason=reason)


class _Company(NamedTuple):
    id: int
    project_id: int
    name: str
    domain: str
    traits: str  # as stored (JSON text): decoded only when a fit rule reads it


class _Move(NamedTuple):
    company: _Company
    model_id: int
    old_score: int
    old_stage: str
    result: CompanyResult


def _companies_recompute(*, company_ids: Iterable[int], reason: CompanyChangeReason = "member") -> int:
    """Recompute every model's score of the companies from their members' results; return the companies.

    A few queries whatever the number of companies and members (per project: the members' results). Each
    score or stage that changed gets a history row saying which member moved it and why (`reason`); after
    commit the changes go to automations (by task name) and one `company.updated` broadcast per project
    goes to its WebSocket group. Rows are plain tuples and the writes hand-written on PostgreSQL: this runs
    once per scoring batch, and model instances cost more than the statements.
    """
    ids = sorted(set(company_ids))
    companies, memberships, stored_scores = _recompute_reads(ids=ids)
    if not companies:
        return 0
    members: dict[int, list[int]] = defaultdict(list)
    for company_id, lead_id in memberships:
        members[company_id].append(lead_id)
    # breakdowns as text, decoded by orjson: a batch reads one per company and model
    previous = {
        (company_id, model_id): (score, stage, orjson.loads(breakdown))
        for company_id, model_id, score, stage, breakdown in stored_scores
    }
    now = timezone.now()
    rows: list[tuple[int, int, CompanyResult]] = []  # (company id, model id, result) to store
    moves: list[_Move] = []
    models: dict[int, tuple[str, bool]] = {}  # model id -> (key, primary)
    by_project: dict[int, list[_Company]] = defaultdict(list)
    for company in companies:
        by_project[company.project_id].append(company)
    configs = rollup_configs(project_ids=by_project)
    fit_rules = any(config.fit_rules for config in configs.values())  # else no result reads a company's traits
    for project_id, project_companies in by_project.items():
        results = leads_results(
            project_id=project_id, lead_ids=[lead for c in project_companies for lead in members[c.id]]
        )
        models |= {model_id: (key, model_id == results.primary) for model_id, key in results.keys.items()}
        for company in project_companies:
            traits = json.loads(company.traits) if fit_rules else {}
            for model_id, policy in results.policies.items():
                found = [
                    Member(lead_id, results.scores.get((lead_id, model_id), 0), results.active_at[lead_id])
                    for lead_id in members[company.id]
                    if lead_id in results.active_at
                ]
                config = configs.get(model_id, ROLLUP)
                result = company_rollup(found, traits=traits, policy=policy, now=now, config=config)
                stored = previous.get((company.id, model_id))
                old_score, old_stage, breakdown = stored or (0, stage_for(0, config.thresholds or policy), {})
                changed = (result.score, result.stage) != (old_score, old_stage)
                if not changed and stored is not None and _unmoved(breakdown, result.to_json()):
                    continue  # nothing moved: the stored row stays as it is (who moved it last included)
                result = company_moved(result, previous=contributions_from_json(breakdown))
                if changed:
                    moves.append(_Move(company, model_id, old_score, old_stage, result))
                rows.append((company.id, model_id, result))
    if rows:
        _scores_write(rows=rows, now=now)
    if moves:
        _history_write(moves=moves, reason=reason, now=now)
        _companies_moved(moves=moves, models=models, reason=reason)
    return len(companies)


_RECOMPUTE_READS = (
    # Locked, in id order: a company's recomputes queue up, and each reads the members committed before it.
    # (a company merged away has no score of its own: its members are its survivor's)
    "SELECT id, project_id, name, domain, traits::text FROM {company} WHERE id = ANY(%(ids)s::bigint[])"
    " AND merged_into_id IS NULL ORDER BY id FOR UPDATE",
    "SELECT company_id, lead_id FROM {membership} WHERE company_id = ANY(%(ids)s::bigint[])",
    "SELECT company_id, model_id, score, stage, breakdown::text FROM {score} WHERE company_id = ANY(%(ids)s::bigint[])",
)


_Stored = tuple[int, int, int, str, str]  # company id, model id, score, stage, breakdown (JSON text)


def _recompute_reads(*, ids: list[int]) -> tuple[list[_Company], list[tuple[int, int]], list[_Stored]]:
    """The companies (locked), their memberships (company id, lead id) and stored scores (company id, model id,
    score, stage, breakdown as JSON text). Hand-written on PostgreSQL: three querysets' building cost more than
    their statements, once per scoring batch."""
    if connection.vendor != "postgresql":
        locked = Company.objects.select_for_update().filter(id__in=ids, merged_into__isnull=True).order_by("id")
        companies = [_Company(*row) for row in locked.annotate(traits_text=_TRAITS_TEXT).values_list(
            "id", "project_id", "name", "domain", "traits_text")]  # fmt: skip
        memberships = CompanyMembership.objects.filter(company_id__in=ids).values_list("company_id", "lead_id")
        stored = CompanyScore.objects.filter(company_id__in=ids).annotate(breakdown_text=_BREAKDOWN_TEXT)
        return companies, list(memberships), list(stored.values_list(
            "company_id", "model_id", "score", "stage", "breakdown_text"))  # fmt: skip
    tables = {
        name: connection.ops.quote_name(model._meta.db_table)
        for name, model in (("company", Company), ("membership", CompanyMembership), ("score", CompanyScore))
    }
    params = {"ids": int_array(ids)}
    found: list[list[Any]] = []
    with connection.cursor() as cursor:
        for statement in _RECOMPUTE_READS:
            cursor.execute(statement.format(**tables), params)
            found.append(cursor.fetchall())
    return [_Company(*row) for row in found[0]], found[1], found[2]


def _unmoved(stored: dict[str, Any], result: dict[str, Any]) -> bool:
    """The stored breakdown says what the new result's says (who moved it last aside)."""
    return {**stored, "movedBy": None} == {**result, "movedBy": None}


def _scores_write(*, rows: list[tuple[int, int, CompanyResult]], now: datetime) -> None:
    """Upsert the companies' scores (company id, model id, result): one statement."""
    if connection.vendor != "postgresql":
        CompanyScore.objects.bulk_create(
            [
                CompanyScore(company_id=company_id, model_id=model_id, score=result.score, stage=result.stage,
                             breakdown=result.to_json(), updated_at=now)
                for company_id, model_id, result in rows
            ],
            update_conflicts=True, unique_fields=["company", "model"],
            update_fields=["score", "stage", "breakdown", "updated_at"],
        )  # fmt: skip
        return
    # the rows as one JSON document (orjson's): psycopg quotes one string, not an array of JSON texts one by one
    table = connection.ops.quote_name(CompanyScore._meta.db_table)
    document = orjson.dumps([[company_id, model_id, result.score, result.stage, result.to_json()]
                             for company_id, model_id, result in rows]).decode()  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (company_id, model_id, score, stage, breakdown, updated_at)"  # noqa: S608
            " SELECT (r->>0)::bigint, (r->>1)::bigint, (r->>2)::int, r->>3, r->4, %s"
            " FROM jsonb_array_elements(%s::jsonb) AS r ON CONFLICT (company_id, model_id) DO UPDATE SET"
            " score = EXCLUDED.score, stage = EXCLUDED.stage, breakdown = EXCLUDED.breakdown,"
            " updated_at = EXCLUDED.updated_at",
            [now, document],
        )


def _history_write(*, moves: list[_Move], reason: CompanyChangeReason, now: datetime) -> None:
    """The history rows of the scores and stages that moved: one statement."""
    if connection.vendor != "postgresql":
        CompanyScoreHistory.objects.bulk_create(
            [
                CompanyScoreHistory(
                    project_id=m.company.project_id, company_id=m.company.id, model_id=m.model_id,
                    old_score=m.old_score, new_score=m.result.score, delta=m.result.score - m.old_score,
                    old_stage=m.old_stage, new_stage=m.result.stage, moved_by_id=m.result.moved_by, reason=reason,
                    occurred_at=now,
                )
                for m in moves
            ]
        )  # fmt: skip
        return
    table = connection.ops.quote_name(CompanyScoreHistory._meta.db_table)
    document = orjson.dumps([
        [m.company.project_id, m.company.id, m.model_id, m.old_score, m.result.score, m.old_stage, m.result.stage,
         m.result.moved_by]
        for m in moves
    ]).decode()  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, company_id, model_id, old_score, new_score, delta, old_stage,"  # noqa: S608
            " new_stage, moved_by_id, reason, occurred_at)"
            " SELECT (r->>0)::bigint, (r->>1)::bigint, (r->>2)::bigint, (r->>3)::int, (r->>4)::int,"
            " (r->>4)::int - (r->>3)::int, r->>5, r->>6, (r->>7)::bigint, %s, %s"
            " FROM jsonb_array_elements(%s::jsonb) AS r",
            [reason, now, document],
        )


def _companies_moved(*, moves: list[_Move], models: dict[int, tuple[str, bool]], reason: CompanyChangeReason) -> None:
    """After commit: the changes to automations, and one `company.updated` broadcast a project."""
    changes = []
    broadcasts: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for company, model_id, old_score, old_stage, result in moves:
        key, primary = models.get(model_id, ("", False))
        change = CompanyChange(
            project_id=company.project_id, company_id=company.id, model=key, primary=primary, old_score=old_score,
            new_score=result.score, old_stage=old_stage, new_stage=result.stage, moved_by=result.moved_by,
            reason=reason, name=company.name, domain=company.domain,
        )  # fmt: skip
        changes.append(change)
        shown = broadcasts[company.project_id].setdefault(
            company.id, {"id": company.id, "name": company.name, "domain": company.domain, "scores": {}}
        )
        shown["scores"][key] = {
            "score": result.score, "previousScore": old_score, "stage": result.stage, "previousStage": old_stage,
            "movedBy": result.moved_by,
        }  # fmt: skip
        if primary:
            shown |= {"score": result.score, "stage": result.stage, "movedBy": result.moved_by}
    companies_changed(changes=changes)
    for project_id, shown_companies in broadcasts.items():
        payload = {"companies": list(shown_companies.values())}
        transaction.on_commit(
            partial(project_broadcast, project_id=project_id, type="company.updated", payload=payload), robust=True
        )


@transaction.atomic
def lead_changes_consume(*, changes: list[LeadChange]) -> int:
    """Assign a batch's changed leads to companies and recompute each touched company once; return how many."""
    leads: dict[int, set[int]] = defaultdict(set)
    for change in changes:
        leads[change.project_id].add(change.lead_id)
    touched: set[int] = set()
    for project_id, lead_ids in sorted(leads.items()):
        touched |= _leads_assign(project_id=project_id, lead_ids=lead_ids)
    return _companies_recompute(company_ids=touched)


@transaction.atomic
def lead_memberships_erase(*, project_id: int, lead_ids: list[int]) -> int:
    """Take erased leads out of their companies and recompute those (a `LEADPULSE_LEAD_ERASERS` hook)."""
    memberships = CompanyMembership.objects.filter(project_id=project_id, lead_id__in=lead_ids)
    company_ids = set(memberships.values_list("company_id", flat=True))
    memberships.delete()
    _companies_recompute(company_ids=company_ids, reason="erase")
    return len(company_ids)


COMPANY_EDITABLE_FIELDS = ("name", "traits")


@transaction.atomic
def company_update(*, company: Company, data: dict[str, Any]) -> Company:
    """Change the company's name or traits (traits replace the stored ones), then recompute its scores."""
    unknown = set(data) - set(COMPANY_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError("This field cannot be changed.", field=sorted(unknown)[0])
    locked = Company.objects.select_for_update().filter(id=company.id, merged_into__isnull=True).first()
    if locked is None:
        raise NotFound("Company not found.")
    changed = [name for name in COMPANY_EDITABLE_FIELDS if name in data and getattr(locked, name) != data[name]]
    for name in changed:
        setattr(locked, name, data[name])
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
        if "traits" in changed:  # company fit rules read the traits
            companies_recompute(company_ids=[locked.id], reason="fit")
    return locked


@transaction.atomic
def company_merge(*, source: Company, target: Company) -> Company:
    """Merge `source` into `target` (same project) and return the survivor, recomputed.

    Every member moves; traits merge, the survivor's winning a conflict; the source stays as an alias
    (`merged_into`), so leads keyed to it later land in the survivor, and so do the companies merged
    into it before. Its scores go: the survivor's, recomputed, now count its members.
    """
    if source.project_id != target.project_id:
        raise NotFound("Company not found.")
    if source.id == target.id:
        raise ApplicationError("A company cannot be merged into itself.", field="into")
    # both locked in id order, as `companies_recompute` locks: merges and recomputes queue up, never deadlock
    locked = {c.id: c for c in Company.objects.select_for_update().filter(id__in=[source.id, target.id]).order_by("id")}
    source, target = locked.get(source.id), locked.get(target.id)  # type: ignore[assignment]
    if source is None or target is None or source.merged_into_id or target.merged_into_id:
        raise ApplicationError("This company was merged meanwhile.", field="into", code="conflict", status_code=409)
    # aliases first, then the members (a statement after every wait: it sees the assignments committed meanwhile)
    Company.objects.filter(merged_into=source).update(merged_into=target, updated_at=timezone.now())
    CompanyMembership.objects.filter(company=source).update(company=target)
    CompanyScore.objects.filter(company=source).delete()
    target.traits = {**source.traits, **target.traits}
    if target.name in ("", target.domain) and source.name not in ("", source.domain):
        target.name = source.name  # a real name beats the placeholder (the domain) a company started with
    target.domain = target.domain or source.domain
    target.save(update_fields=["traits", "name", "domain", "updated_at"])
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    companies_recompute(company_ids=[target.id], reason="merge")
    return target


# Above this many companies, a settings change recomputes them in a Celery task, in chunks, not in the request.
RECOMPUTE_INLINE_LIMIT = 500
RECOMPUTE_CHUNK = 500
PROJECT_RECOMPUTE_TASK = "companies.project_recompute_task"


@transaction.atomic
def company_rollup_settings_update(*, model: ScoringModel, data: dict[str, Any]) -> CompanyRollupSettings:
    """Store the model's roll-up settings, then recompute the project's companies: at once for a few, in a
    task after commit for many."""
    # created once (a concurrent first save gets the same row), then locked: saves of one model queue up
    CompanyRollupSettings.objects.get_or_create(model=model, defaults={"project_id": model.project_id})
    row = CompanyRollupSettings.objects.select_for_update().get(model=model)
    for name, value in data.items():
        setattr(row, name, value)
    row.save()
    companies = Company.objects.filter(project_id=model.project_id, merged_into__isnull=True)
    if companies.count() <= RECOMPUTE_INLINE_LIMIT:
        companies_recompute(company_ids=list(companies.values_list("id", flat=True)), reason="settings")
    else:
        project_id = model.project_id
        transaction.on_commit(lambda: app.send_task(PROJECT_RECOMPUTE_TASK, kwargs={"project_id": project_id}))
    return row


def project_companies_recompute(*, project_id: int, chunk: int = RECOMPUTE_CHUNK) -> int:
    """Recompute all the project's companies, a transaction per chunk of them; return how many."""
    done, after = 0, 0
    while True:
        ids = list(
            Company.objects.filter(project_id=project_id, merged_into__isnull=True, id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:chunk]
        )
        if not ids:
            return done
        done += companies_recompute(company_ids=ids, reason="settings")
        after = ids[-1]
