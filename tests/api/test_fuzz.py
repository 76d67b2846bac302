"""Schemathesis fuzzes every operation of /api/schema/ in-process against PostgreSQL.

Each operation gets generated requests with valid credentials for its auth scheme, and ids
that exist half of the time, so both the success shapes and the errors are checked: no 5xx,
every status code documented, every body matching its schema.
"""

import base64
import os
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.services import secret_key_create
from companies.selectors import lead_companies
from companies.services import lead_changes_consume
from core.contracts import LeadChange
from ingest.models import Lead
from leadpulse.health import worker_heartbeat_record
from tests.accounts.factories import invitation_with_token
from tests.predictions.support import prediction_world
from tests.scoring.factories import scored_lead

# Schema-invalid input may also be refused as too large (413), e.g. a batch past 500 events.
# Unknown headers and query parameters are ignored, as HTTP APIs do, so they are not "invalid input".
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]}
        },
        "generation": {"allow-extra-parameters": False},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)
if os.environ.get("LEADPULSE_FUZZ_PATHS"):  # e.g. "^/api/leads" while working on one area
    schema = schema.include(path_regex=os.environ["LEADPULSE_FUZZ_PATHS"])

# Operations whose schema-valid requests can still be refused with 400 for reasons a schema
# cannot express (state or semantics); every other 400 for schema-valid input is a schema bug.
# Keyed "METHOD /path" as in the OpenAPI document, with the reason.
SEMANTIC_400_ACCOUNTS: dict[str, str] = {
    "POST /api/auth/register": "a taken email; a password the validators refuse (common, numeric, like the email)",
}
SEMANTIC_400_AUTOMATIONS: dict[str, str] = {
    "POST /api/automations": "a webhook/slack actionConfig.url whose host does not resolve to a public address; "
    "an email actionConfig.to address that is no member's nor verified, or that Django's validate_email refuses",
    "PUT /api/automations/{rule_id}": "as POST (unsafe URL, recipients); fields left out come from the stored rule",
    "PATCH /api/automations/{rule_id}": "as POST (unsafe URL, recipients); checked together with the stored rule",
    "POST /api/email-recipients": "a member's address (members need no verification); an address Django refuses",
    "POST /api/webhooks/subscribe": "a URL Django's URLValidator refuses, or whose host does not resolve publicly",
}
SEMANTIC_400_INGEST: dict[str, str] = {
    "POST /api/ingest/event": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /api/events": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /api/events/batch": "as /api/events, and at least one item must be a valid event",
    "POST /v1/track": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/identify": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/page": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/screen": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/group": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/alias": "timestamps only from 2000-01-01 to a day ahead of now; no NUL in keys",
    "POST /v1/batch": "as /api/events, and at least one item must be a valid event",
}
SEMANTIC_400_SCORING: dict[str, str] = {
    "PUT /api/leads/{lead_id}": "traits: no NUL in keys and at most 32 KiB (OpenAPI 3.0 cannot say either)",
    "PATCH /api/leads/{lead_id}": "traits: no NUL in keys and at most 32 KiB (OpenAPI 3.0 cannot say either)",
    "POST /api/rules": "a regex condition must compile with RE2; only engagement rules take a window",
    "PUT /api/rules/{rule_id}": "RE2 regexes; an omitted kind is the stored rule's, deciding eventType/conditions"
    " and whether a window is allowed",
    "PATCH /api/rules/{rule_id}": "RE2 regexes; eventType/conditions/window are checked against the stored rule's kind",
    "POST /api/rules/preview": "RE2 regexes; proposed thresholds must rise together with the project's others; "
    "only engagement rules take a window",
    "PUT /api/scoring/settings": "thresholds must rise: warm < hot < qualified <= maxScore",
    "PATCH /api/scoring/settings": "thresholds must rise, together with the stored ones",
    "POST /api/models": "thresholds must rise together; at most 25 models per project",
    "PATCH /api/models/{key}": "thresholds must rise, together with the stored ones",
    "PUT /api/models/{key}/draft": "thresholds must rise; a rule id at most once; RE2 regexes; "
    "only engagement rules take a window",
    "POST /api/leads/{lead_id}/adjustments": "model must be a key of one of the project's models",
}
SEMANTIC_400_PREDICTIONS: dict[str, str] = {
    "POST /api/leads/{lead_id}/outcome": "at: only from 2000-01-01 to a day ahead of now",
    "POST /api/outcomes/bulk": "each item must name an existing lead of the project by exactly one of leadId, email "
    "and userId, at from 2000-01-01 to a day ahead; 400 only when no item is valid",
    "POST /api/outcomes/upload": "the CSV's header must name known columns, and some row must be a valid outcome of "
    "an existing lead",
}
SEMANTIC_400_COMPANIES: dict[str, str] = {
    "PATCH /api/companies/{company_id}": "traits: no NUL in keys and at most 32 KiB (OpenAPI 3.0 cannot say either)",
    "POST /api/companies/{company_id}/merge": "into must be the id of another company of the project",
    "PUT /api/companies/settings": "thresholds must rise: warm < hot < qualified; a regex condition must compile "
    "with RE2",
}
SEMANTIC_400 = (
    SEMANTIC_400_ACCOUNTS | SEMANTIC_400_AUTOMATIONS | SEMANTIC_400_INGEST | SEMANTIC_400_SCORING
    | SEMANTIC_400_COMPANIES | SEMANTIC_400_PREDICTIONS
)  # fmt: skip

HOT = {
    "name": "Hot",
    "trigger": "stage_entered",
    "triggerConfig": {"stage": "hot"},
    "action": "webhook",
    "actionConfig": {"url": "http://127.0.0.1:9/hook"},
}


@pytest.fixture
def world(tenant):
    """One of each object the API addresses by id, in the tenant's project."""
    lead = scored_lead(tenant.project, "fuzz-visitor", "page_view", "demo_request")
    automation = tenant.client.post("/api/automations", HOT, format="json").json()
    subscription = tenant.client.post(
        "/api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h", "events": ["lead.updated"]}, format="json"
    ).json()
    secret_key, _raw = secret_key_create(project=tenant.project)
    invitation, _ = invitation_with_token(project=tenant.project, email="fuzz@example.com", invited_by=tenant.owner)
    worker_heartbeat_record(hostname="fuzz@test")  # /api/health is 503 without a worker
    company_lead = Lead.objects.create(project=tenant.project, anonymous_id="fuzz-ada", email="ada@fuzz-acme.com")
    change = LeadChange(kind="scored", project_id=tenant.project.id, lead_id=company_lead.id, old_score=0,
                        new_score=0, old_stage="cold", new_stage="cold")  # fmt: skip
    lead_changes_consume(changes=[change])  # a company, as scoring hands the lead to companies
    ids = {
        "lead_id": lead.id,
        "rule_id": tenant.project.scoring_rules.first().id,
        "automation:rule_id": automation["id"],
        "subscription_id": subscription["id"],
        "project_id": tenant.project.id,
        "key_id": secret_key.id,
        "invitation_id": invitation.id,
        "company_id": lead_companies(project=tenant.project, lead_ids=[company_lead.id])[company_lead.id].id,
        "job_id": prediction_world(tenant.project),
    }
    # As Django's test client does while it runs a request (so only after the setup's requests):
    # a request's start and end must not close the connection holding the test's transaction.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield tenant, ids
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def _half(case) -> bool:
    """A stable coin per generated case (hypothesis replays it exactly when shrinking)."""
    return zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2 == 0


@schema.parametrize()
@settings(
    # 25 per operation in `make test`; LEADPULSE_FUZZ_EXAMPLES=500 for a deeper run by hand
    max_examples=int(os.environ.get("LEADPULSE_FUZZ_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, world):
    tenant, ids = world
    security = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
    sent = {name.lower() for name in case.headers or {}}
    headers = {}
    # Valid credentials, unless the generated case carries its own (a negative case about auth).
    if security & {"jwtAuth", "secretKey"} and "authorization" not in sent:
        headers["Authorization"] = tenant.client._credentials["HTTP_AUTHORIZATION"]
    if "writeKeyHeader" in security and "x-api-key" not in sent:
        headers["X-API-Key"] = tenant.write_key
    if "writeKeyBasic" in security and "authorization" not in sent and _half(case):
        headers["Authorization"] = "Basic " + base64.b64encode(f"{tenant.write_key}:".encode()).decode()
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if positive:
        # Half of the valid cases address real objects and the caller's project, so success shapes are checked;
        # negative cases are left as generated, or a valid id would "accept" the invalid input.
        if isinstance(case.body, dict) and _half(case):
            for field in ("apiKey", "writeKey"):
                if field in case.body:
                    case.body[field] = tenant.write_key
        if case.path_parameters and _half(case):
            area = "automation:" if case.operation.path.startswith("/api/automations") else ""
            for name in case.path_parameters:
                value = ids.get(area + name, ids.get(name))
                if value is not None:
                    case.path_parameters[name] = value
        if case.headers and "X-LeadPulse-Project" in case.headers and _half(case):
            case.headers["X-LeadPulse-Project"] = str(tenant.project.id)
    label = f"{case.operation.method.upper()} {case.operation.path}"
    excluded = [positive_data_acceptance] if label in SEMANTIC_400 else []
    case.call_and_validate(headers=headers, excluded_checks=excluded)
