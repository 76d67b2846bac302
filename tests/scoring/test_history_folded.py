"""A non-primary model's history is folded on read: every reader answers exactly as if its rows were stored.

The same mixed log (rules with conditions, caps and windows, decay, manual adjustments of both models, a late
event refolded a chunk at a time, a merge, a published change scored before and after its re-score job) is
scored twice in one test, rolled back in between: once with a row stored per event under every model
(`LEADPULSE_HISTORY_ALL_MODELS`, the way history was kept before), once with the non-primary model's rows made
from its segments. The readers' answers must be the same (row ids aside: made rows have their own).
"""

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import ScoreHistory, ScoringModel
from scoring.selectors import (
    lead_adjustments,
    lead_export,
    lead_score_breakdown,
    lead_score_history,
    lead_timeline,
)
from scoring.services import leads_score, rule_create, rule_update
from scoring.services.adjustments import Author, adjustment_append
from scoring.services.batch import leads_decay
from scoring.services.history import all_rows
from scoring.services.models import scoring_model_create, scoring_model_primary_set
from tests.scoring.test_versions import run_jobs

NOW = timezone.now().replace(microsecond=0) - timedelta(days=17.5)  # re-score jobs run at the wall clock: day 17.5
AUTHOR = Author(type="user", id=1, label="ana@example.com")


def at(days: float) -> Any:
    return NOW + timedelta(days=days)


def send(project, anonymous_id: str, *events: tuple[str, str, float, dict]) -> None:
    events_ingest(project_id=project.id, events=[
        CanonicalEvent(event_id=eid, name=name, anonymous_id=anonymous_id, timestamp=at(day), properties=props,
                       type="identify" if name == "identify" else "track")
        for eid, name, day, props in events
    ])  # fmt: skip


def score(project, anonymous_id: str, day: float) -> Lead:
    lead = Lead.objects.get(project=project, anonymous_id=anonymous_id)
    result = leads_score(lead_ids=[lead.merged_into_id or lead.id], now=at(day))
    while result.more:
        result = leads_score(lead_ids=sorted(result.more), now=at(day))
    lead.refresh_from_db()
    return Lead.objects.get(id=lead.merged_into_id or lead.id)


def other_model(project) -> ScoringModel:
    """A second model whose rules differ from the primary's: conditions, caps, a window, another decay."""
    primary = ScoringModel.objects.get(project=project, is_primary=True)
    model = scoring_model_create(project=project, data={"key": "other", "name": "Other", "decay_grace_days": 3,
                                                        "decay_rate_percent": 20.0}, copy_from=primary)  # fmt: skip
    # each change published as a version, as the API does: the rows a version folded are made again under it
    pricing = [{"path": "properties.url", "op": "contains", "value": "/pricing"}]
    rule_update(rule=model.rules.get(event_type="page_view"), data={"points": 4, "conditions": pricing,
                                                                    "max_per_day": 2})  # fmt: skip
    rule_update(rule=model.rules.get(event_type="email_open"), data={"window_count": 2, "window_days": 3,
                                                                     "points": 9})  # fmt: skip
    rule_create(project=project, model=model, data={"name": "any", "event_type": "*", "points": 1, "max_points": 6})
    run_jobs(project)
    return model


def scenario(project) -> Lead:
    """The mixed log, scored in several batches at fixed times."""
    pricing, blog = {"url": "https://x.test/pricing"}, {"url": "https://x.test/blog"}
    send(project, "a", ("a1", "page_view", 0, pricing), ("a2", "page_view", 0.1, pricing),
         ("a3", "page_view", 0.2, pricing), ("a4", "email_open", 1, {}), ("a5", "signup", 2, {}))  # fmt: skip
    score(project, "a", 2.5)
    lead = Lead.objects.get(project=project, anonymous_id="a")
    adjustment_append(lead=lead, reason="met", author=AUTHOR, points=-7,
                      model=ScoringModel.objects.get(project=project, key="other"), now=at(3))  # fmt: skip
    send(project, "a", ("a6", "email_open", 3.5, {}), ("a7", "page_view", 4, blog))
    score(project, "a", 12)  # idle past both models' grace: decay between events and to now
    adjustment_append(lead=lead, reason="reset", author=AUTHOR, set_to=15,
                      model=ScoringModel.objects.get(project=project, is_primary=True), now=at(12.5))  # fmt: skip
    send(project, "a", ("a8", "demo_request", 13, {}), ("a9", "email_open", 13.5, {}))
    score(project, "a", 14)
    # a late event: the whole log is refolded, a chunk of events at a time
    send(project, "a", ("a0", "download", 0.05, {}))
    score(project, "a", 15)
    # another device, then its identify call: merged into the first lead, which is refolded
    send(project, "b", ("b1", "pricing_page_visit", 5, {}), ("b2", "page_view", 5.1, pricing))
    score(project, "b", 6)
    Lead.objects.filter(project=project, anonymous_id="a").update(email="a@x.io")
    send(project, "b", ("b3", "identify", 15.5, {"email": "a@x.io"}))
    lead = score(project, "b", 16)
    # a published change of the other model and its re-score job; another change, scored before its job runs
    other = ScoringModel.objects.get(project=project, key="other")
    rule_update(rule=other.rules.get(event_type="signup"), data={"points": 44})
    run_jobs(project)
    rule_update(rule=other.rules.get(event_type="email_open"), data={"points": 3})
    send(project, "a", ("a10", "signup", 17.6, {}), ("a11", "email_open", 17.7, {}))
    score(project, "a", 17.8)
    leads_decay(lead_ids=[lead.id], now=at(30))  # decay materialised as rows
    return Lead.objects.get(id=lead.id)


def answers(tenant, lead: Lead) -> dict[str, Any]:
    """What every history reader says of the lead, under each model, ids and wall-clock times aside."""
    lead = Lead.objects.get(id=lead.id)
    uid = dict(Event.objects.filter(lead=lead).values_list("id", "event_id"))

    def row(r: ScoreHistory) -> tuple:
        moment = r.occurred_at if r.reason == "rule" else None  # merge and rescore rows carry the wall clock
        return (r.reason, r.old_score, r.new_score, r.delta, r.details, uid.get(r.event_id), moment, r.version)

    def api(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "id" and (k != "occurredAt" or r["reason"] == "rule")}

    def wall(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: wall(v) for k, v in value.items() if k not in ("id", "timestamp") or isinstance(v, dict)}
        return [wall(v) for v in value] if isinstance(value, list) else value

    client, browser = tenant.client, Client()
    browser.force_login(tenant.owner)
    out: dict[str, Any] = {}
    for model in ScoringModel.objects.filter(project=lead.project).order_by("key"):
        query = f"?model={model.key}"
        pages = [client.get(f"/api/leads/{lead.id}/history{query}&pageSize=4&page={n}").json() for n in (1, 2, 3)]
        assert pages[0]["count"] > 8  # three pages of history
        every = client.get(f"/api/leads/{lead.id}/history{query}&pageSize=200").json()
        out[model.key] = {
            "history": [api(r) for r in every["results"]],
            "pages": [[api(r) for r in page["results"]] for page in pages],
            "timeline": [(e.event_id, row(r) if r else None) for e, r in lead_timeline(lead=lead, model=model)],
            "chart": [row(r) for r in lead_score_history(lead=lead, model=model, limit=5)["points"]],
            "breakdown": wall(lead_score_breakdown(lead=lead, model=model)),
            "page": browser.get(f"/leads/{lead.id}/{query}").status_code,
            "rows": [row(r) for r in all_rows(lead=lead, rows=ScoreHistory.objects.filter(lead=lead, model=model))],
        }
        ids = [r["id"] for r in every["results"]]
        assert len(set(ids)) == len(ids)
    out["adjustments"] = lead_adjustments(lead=lead)
    out["export"] = [api(r) for r in lead_export(lead=lead)["scoreHistory"]]
    return anonymous(out)


def difference(a: Any, b: Any, path: str = "") -> str:
    """Where two answers first differ, and how."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return difference(x, y, f"{path}[{i}]")
        return f"{path}: lengths {len(a)} != {len(b)}"
    return f"{path}: {a!r} != {b!r}"


def anonymous(value: Any) -> Any:
    """`value` with the adjustments' event ids (random) as their common prefix, without lead ids."""
    if isinstance(value, dict):  # and lead ids, which each run's leads have their own of
        return {k: anonymous(v) for k, v in value.items() if k not in ("mergedLeadId", "leadId")}
    if isinstance(value, list | tuple):
        return type(value)(anonymous(v) for v in value)
    if isinstance(value, str) and value.startswith(f"{engine.ADJUSTMENT_NAME}:"):
        return engine.ADJUSTMENT_NAME
    return value


def both_ways(tenant, settings, steps) -> tuple[dict, dict]:
    """`steps` run and answered with every model's rows stored, rolled back, then run and answered again with
    the non-primary model's rows made on read."""
    results = []
    for stored in (True, False):
        settings.LEADPULSE_HISTORY_ALL_MODELS = stored
        savepoint = transaction.savepoint()
        lead = steps()
        segments = ScoreHistory.objects.filter(lead=lead, reason=engine.SEGMENT)
        assert segments.exists() != stored
        results.append(answers(tenant, lead))
        transaction.savepoint_rollback(savepoint)
    return results[0], results[1]


@pytest.fixture
def chunked(settings):
    settings.LEADPULSE_SCORE_CHUNK_EVENTS = 4  # refolds and first folds of more events go a chunk at a time


def test_every_reader_answers_the_folded_history_as_the_stored_one(tenant, settings, chunked):
    other_model(tenant.project)
    stored, folded = both_ways(tenant, settings, lambda: scenario(tenant.project))
    assert folded == stored, difference(folded, stored)
    # the log's variety reached the non-primary model's made rows
    reasons = {r["reason"] for r in folded["other"]["history"]}
    assert {"rule", "decay", "rescore"} <= reasons
    details = [r["details"] for r in folded["other"]["history"] if r["reason"] == "rule"]
    assert any(d.get("adjustment") for d in details) and any(d["decay"] for d in details)
    live = ScoringModel.objects.get(project=tenant.project, key="other").version
    assert {r[7] for r in folded["other"]["rows"] if r[0] == "rule"} == {
        live + 1,
        live + 2,
    }  # before and after the change
    assert any(a["model"] == "other" and a["scoreDelta"] == -7 for a in folded["adjustments"])


def test_a_new_primary_reads_its_folded_history_and_the_old_one_its_stored_rows(tenant, settings, chunked):
    def swapped() -> Lead:
        lead = scenario(tenant.project)
        before = answers(tenant, lead)
        scoring_model_primary_set(model=ScoringModel.objects.get(project=tenant.project, key="other"))
        after = answers(tenant, lead)
        assert after == before, difference(after, before)  # nothing refolded: the same rows, made or stored
        send(tenant.project, "a", ("a12", "page_view", 19, {"url": "https://x.test/pricing"}))
        return score(tenant.project, "a", 20)

    other_model(tenant.project)
    stored, folded = both_ways(tenant, settings, swapped)
    assert folded == stored, difference(folded, stored)
