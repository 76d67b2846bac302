"""The access audit of the public API: authentication, tenancy, roles and input validation.

One table lists every operation of the JSON API and of ingest. The completeness test walks
the URL resolver, so an endpoint added without a row here (or an explicit alias entry)
fails; every other test is parametrized over the table.

Two projects with one of every addressable object are committed once for the module (and
deleted after it): each test runs in its own rolled-back transaction on top of them, which
keeps some six hundred requests well under a minute.
"""

import base64
import json
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import Membership, Project, User
from accounts.services import secret_key_create, secret_key_revoke, write_key_rotate
from automations.services import (
    automation_create,
    delivery_attempt,
    delivery_create,
    email_recipient_request,
    webhook_subscribe,
)
from companies.selectors import lead_companies
from companies.services import lead_changes_consume
from core.contracts import LeadChange
from core.deadletter import failed_jobs_for_project
from ingest.models import Event, Lead
from predictions.models import Outcome
from scoring.models import ScoringModel
from scoring.selectors import rules_for_project
from scoring.services.drafts import draft_start
from scoring.services.rules import rescore_job_start
from scoring.services.versions import version_publish
from tests.accounts.factories import UserFactory, invitation_with_token, project_with_owner
from tests.conftest import client_for
from tests.predictions.support import prediction_world
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

PUBLIC, INGEST, MEMBER, ADMIN = "public", "ingest", "member", "admin"

RULE = {"name": "Signed up", "kind": "engagement", "eventType": "signup", "points": 5}
AUTOMATION = {"name": "Hot", "trigger": "stage_entered", "triggerConfig": {"stage": "hot"}, "action": "webhook",
              "actionConfig": {"url": "http://127.0.0.1:9/hook"}}  # fmt: skip
SETTINGS = {"warmThreshold": 11, "hotThreshold": 31, "qualifiedThreshold": 60, "maxScore": 10000,
            "decayEnabled": True, "decayRatePercent": 5.0, "decayGraceDays": 3}  # fmt: skip
AUTOMATION_ROW = {"name": "Hot", "trigger": "stage_entered", "trigger_config": {"stage": "hot"}, "action": "webhook",
                  "action_config": {"url": "http://127.0.0.1:9/hook"}}  # fmt: skip
LEAD = {"email": "ada@example.com", "name": "Ada", "company": "Analytical", "traits": {"plan": "pro"}}
COMPANY_SETTINGS = {"topN": 2, "breadthPoints": 5, "breadthCap": 3, "windowDays": 14, "thresholds": None,
                    "fitRules": [{"name": "Pro", "points": 10, "conditions": [{"path": "plan", "op": "eq",
                                                                               "value": "pro"}]}]}  # fmt: skip


@dataclass(frozen=True)
class Op:
    """One API operation. `{name}` in the path is the id of that object of the addressed project."""

    method: str
    path: str
    role: str  # PUBLIC (no credentials), INGEST (write key), MEMBER or ADMIN (least role that may call it)
    body: Any = None  # a valid body, for writes (or a function of the world and the calling client)
    bad: dict[str, Any] | None = None  # a bad body (or query string, for GET) ...
    field: str = ""  # ... and the field the 400 must name
    scoped: bool = True  # the project comes from X-LeadPulse-Project (not the path, nor no project at all)
    user_only: bool = False  # a secret key gets 403: only a signed-in person may do this
    key_in: str = ""  # ingest: where the write key goes ("apiKey" body field, "X-API-Key" header, "basic" auth)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_object(self) -> bool:
        return "{" in self.path

    def url(self, world) -> str:
        return self.path.format(**world.ids)


# fmt: off
OPS = [
    # accounts
    Op("POST", "/api/auth/register", PUBLIC, bad={"email": "not-an-email", "password": "x7!kq-Lm2@pz"}, field="email"),
    Op("POST", "/api/auth/login", PUBLIC, bad={"email": "ada@example.com"}, field="password"),
    Op("POST", "/api/auth/refresh", PUBLIC, bad={}, field="refresh"),
    Op("POST", "/api/auth/logout", PUBLIC, bad={"refresh": 7}, field="refresh"),
    Op("GET", "/api/auth/me", MEMBER, scoped=False, user_only=True),
    Op("GET", "/api/auth/project", MEMBER),
    Op("GET", "/api/projects", MEMBER, scoped=False),
    Op("POST", "/api/projects", MEMBER, {"name": "Side project"}, bad={"name": ""}, field="name",
       scoped=False, user_only=True),
    Op("PATCH", "/api/projects/{project}", ADMIN, {"name": "Renamed"}, bad={"isActive": "maybe"}, field="isActive",
       scoped=False),
    Op("POST", "/api/projects/{project}/rotate-key", ADMIN, scoped=False),
    Op("GET", "/api/projects/{project}/secret-keys", MEMBER, scoped=False),
    Op("POST", "/api/projects/{project}/secret-keys", ADMIN, scoped=False, user_only=True),
    Op("DELETE", "/api/projects/{project}/secret-keys/{key}", ADMIN, scoped=False),
    Op("GET", "/api/projects/{project}/invitations", ADMIN, scoped=False),
    Op("POST", "/api/projects/{project}/invitations", ADMIN, {"email": "audit-invitee@example.com", "role": "admin"},
       bad={"email": "audit-invitee@example.com", "role": "owner"}, field="role", scoped=False, user_only=True),
    Op("DELETE", "/api/projects/{project}/invitations/{invitation}", ADMIN, scoped=False),
    # an invitation is accepted by the person it names: each caller gets a token of its own
    Op("POST", "/api/invitations/accept", MEMBER, lambda world, client: {"token": world.invitation_tokens.get(client)},
       bad={"token": 7}, field="token", scoped=False, user_only=True),
    # events: the GET of the server ingest URL is the dashboard's event log
    Op("GET", "/api/events", MEMBER, bad={"since": "yesterday"}, field="since"),
    # leads
    Op("GET", "/api/leads", MEMBER, bad={"stage": "boiling"}, field="stage"),
    Op("POST", "/api/leads", MEMBER, {"anonymousId": "new-visitor"}, bad={"anonymousId": "v-2", "email": "nope"},
       field="email"),
    Op("GET", "/api/leads/export", MEMBER, bad={"ordering": "password"}, field="ordering"),
    Op("GET", "/api/leads/{lead}", MEMBER),
    Op("PUT", "/api/leads/{lead}", MEMBER, LEAD, bad={**LEAD, "email": "nope"}, field="email"),
    Op("PATCH", "/api/leads/{lead}", MEMBER, {"name": "Ada L."}, bad={"currentScore": 999}, field="currentScore"),
    Op("DELETE", "/api/leads/{lead}", ADMIN),
    Op("GET", "/api/leads/{lead}/export", MEMBER),
    Op("GET", "/api/leads/{lead}/timeline", MEMBER, bad={"limit": "abc"}, field="limit"),
    Op("GET", "/api/leads/{lead}/score-breakdown", MEMBER),
    Op("GET", "/api/leads/{lead}/intelligence", MEMBER),
    Op("GET", "/api/leads/{lead}/history", MEMBER),
    Op("GET", "/api/leads/{lead}/adjustments", MEMBER),
    Op("POST", "/api/leads/{lead}/adjustments", MEMBER, {"points": -5, "reason": "audit"},
       bad={"points": 5, "setTo": 0, "reason": "audit"}, field="setTo"),
    # reporting
    Op("GET", "/api/leaderboard", MEMBER, bad={"limit": "abc"}, field="limit"),
    Op("GET", "/api/leaderboard/by-stage", MEMBER),
    Op("GET", "/api/analytics/dashboard", MEMBER),
    Op("GET", "/api/analytics/matrix", MEMBER),
    # scoring rules and settings
    Op("GET", "/api/rules", MEMBER, bad={"kind": "vibes"}, field="kind"),
    Op("POST", "/api/rules", ADMIN, RULE, bad={**RULE, "points": "many"}, field="points"),
    Op("POST", "/api/rules/preview", MEMBER, {"rules": [RULE]}, bad={"rules": "all of them"}, field="rules"),
    Op("GET", "/api/rules/{rule}", MEMBER),
    Op("PUT", "/api/rules/{rule}", ADMIN, RULE, bad={**RULE, "eventType": "no/slashes"}, field="eventType"),
    Op("PATCH", "/api/rules/{rule}", ADMIN, {"points": 7}, bad={"points": 99999}, field="points"),
    Op("DELETE", "/api/rules/{rule}", ADMIN),
    Op("GET", "/api/scoring/settings", MEMBER),
    Op("PUT", "/api/scoring/settings", ADMIN, SETTINGS, bad={**SETTINGS, "warmThreshold": 0}, field="warmThreshold"),
    Op("PATCH", "/api/scoring/settings", ADMIN, {"decayGraceDays": 3}, bad={"decayRatePercent": 101},
       field="decayRatePercent"),
    Op("GET", "/api/models", MEMBER),
    Op("POST", "/api/models", ADMIN, {"key": "product-b", "name": "Product B", "copyFrom": "default"},
       bad={"key": "Not a key", "name": "B"}, field="key"),
    Op("GET", "/api/models/{model}", MEMBER),
    Op("PATCH", "/api/models/{model}", ADMIN, {"name": "Renamed", "maxScore": 500}, bad={"decayRatePercent": 101},
       field="decayRatePercent"),
    Op("DELETE", "/api/models/{model}", ADMIN),
    Op("POST", "/api/models/{model}/primary", ADMIN),
    Op("GET", "/api/models/{model}/versions", MEMBER),
    Op("GET", "/api/models/{model}/versions/{version}", MEMBER),
    Op("GET", "/api/models/{model}/versions/{version}/diff/{version}", MEMBER),
    Op("POST", "/api/models/{model}/versions/{version}/rollback", ADMIN, {"note": "back"}, bad={"note": 7},
       field="note"),
    Op("GET", "/api/models/{model}/draft", MEMBER),
    Op("PUT", "/api/models/{model}/draft", MEMBER, {"settings": SETTINGS, "rules": [RULE]},
       bad={"settings": SETTINGS, "rules": [{**RULE, "points": "many"}]}, field="rules"),
    Op("DELETE", "/api/models/{model}/draft", MEMBER),
    Op("POST", "/api/models/{model}/draft/preview", MEMBER),
    Op("POST", "/api/models/{model}/draft/publish", ADMIN, {"note": "live"}, bad={"note": 7}, field="note"),
    Op("GET", "/api/leads/{lead}/score", MEMBER, bad={"version": "latest"}, field="version"),
    Op("GET", "/api/rescore-jobs", MEMBER),
    Op("GET", "/api/rescore-jobs/{rescore_job}", MEMBER),
    # automations, webhooks and the dead-letter queue
    Op("GET", "/api/automations", MEMBER),
    Op("POST", "/api/automations", ADMIN, AUTOMATION, bad={**AUTOMATION, "cooldownSeconds": 5},
       field="cooldownSeconds"),
    Op("GET", "/api/automations/{automation}", MEMBER),
    Op("PUT", "/api/automations/{automation}", ADMIN, AUTOMATION, bad={**AUTOMATION, "trigger": "nope"},
       field="trigger"),
    Op("PATCH", "/api/automations/{automation}", ADMIN, {"cooldownSeconds": 3600},
       bad={"triggerConfig": {"stage": "boiling"}}, field="triggerConfig.stage"),
    Op("DELETE", "/api/automations/{automation}", ADMIN),
    Op("GET", "/api/automations/{automation}/executions", MEMBER),
    Op("GET", "/api/webhooks", MEMBER),
    Op("POST", "/api/webhooks/subscribe", ADMIN, {"url": "http://127.0.0.1:9/h", "events": ["lead.updated"]},
       bad={"url": "not a url", "events": ["lead.updated"]}, field="url"),
    Op("DELETE", "/api/webhooks/{subscription}", ADMIN),
    Op("POST", "/api/webhooks/{subscription}/test", ADMIN),
    Op("GET", "/api/webhooks/{subscription}/deliveries", MEMBER),
    Op("GET", "/api/email-recipients", MEMBER),
    Op("POST", "/api/email-recipients", ADMIN, {"email": "partner@outside.example"}, bad={"email": "not an address"},
       field="email"),
    Op("DELETE", "/api/email-recipients/{recipient}", ADMIN),
    Op("GET", "/api/failed-jobs", MEMBER),
    Op("POST", "/api/failed-jobs/{failed_job}/replay", ADMIN),
    # companies
    Op("GET", "/api/companies", MEMBER, bad={"ordering": "traits"}, field="ordering"),
    Op("GET", "/api/companies/export", MEMBER, bad={"stage": "boiling"}, field="stage"),
    Op("GET", "/api/companies/leaderboard", MEMBER, bad={"limit": "abc"}, field="limit"),
    Op("GET", "/api/companies/settings", MEMBER),
    Op("PUT", "/api/companies/settings", ADMIN, COMPANY_SETTINGS, bad={**COMPANY_SETTINGS, "topN": -1}, field="topN"),
    Op("GET", "/api/companies/{company}", MEMBER),
    Op("PATCH", "/api/companies/{company}", MEMBER, {"name": "Renamed", "traits": {"plan": "pro"}},
       bad={"traits": ["plan"]}, field="traits"),
    Op("POST", "/api/companies/{company}/merge", ADMIN, lambda world, client: {"into": world.ids["other_company"]},
       bad={"into": "x"}, field="into"),
    # ingest: the project's public write key, where each family of clients puts it
    Op("POST", "/api/ingest/event", INGEST, {"event": "page_view", "anonymousId": "audit-visitor"},
       bad={"event": "page_view"}, field="anonymousId", key_in="apiKey"),
    Op("POST", "/api/events", INGEST, {"eventType": "signup", "leadId": "audit-visitor"},
       bad={"eventType": "signup"}, field="leadId", key_in="X-API-Key"),
    Op("POST", "/api/events/batch", INGEST, {"events": [{"eventType": "signup", "leadId": "audit-visitor"}]},
       bad={"events": [{"eventType": "signup"}]}, field="events[0].leadId", key_in="X-API-Key"),
    Op("POST", "/v1/track", INGEST, {"event": "Signed Up", "anonymousId": "audit-visitor"},
       bad={"anonymousId": "audit-visitor"}, field="event", key_in="basic"),
    Op("POST", "/v1/identify", INGEST, {"userId": "u-1", "anonymousId": "audit-visitor", "traits": {"plan": "pro"}},
       bad={"traits": {"plan": "pro"}}, field="anonymousId", key_in="basic"),
    Op("POST", "/v1/page", INGEST, {"anonymousId": "audit-visitor", "name": "Pricing"},
       bad={"anonymousId": "audit-visitor", "properties": "pricing"}, field="properties", key_in="basic"),
    Op("POST", "/v1/screen", INGEST, {"anonymousId": "audit-visitor", "name": "Home"},
       bad={"anonymousId": "audit-visitor", "timestamp": "yesterday"}, field="timestamp", key_in="basic"),
    Op("POST", "/v1/group", INGEST, {"anonymousId": "audit-visitor", "groupId": "g-1"},
       bad={"anonymousId": "audit-visitor"}, field="groupId", key_in="basic"),
    Op("POST", "/v1/alias", INGEST, {"previousId": "audit-visitor", "userId": "u-1"},
       bad={"userId": "u-1"}, field="previousId", key_in="basic"),
    Op("POST", "/v1/batch", INGEST, {"batch": [{"type": "track", "event": "Signed Up", "anonymousId": "a-1"}]},
       bad={"batch": [{"type": "track", "anonymousId": "a-1"}]}, field="batch[0].event", key_in="basic"),
    # predictions: outcomes (members record them) and settings (admins)
    Op("GET", "/api/leads/{lead}/outcome", MEMBER),
    Op("POST", "/api/leads/{lead}/outcome", MEMBER, {"outcome": "won", "value": 100},
       bad={"outcome": "won", "value": "100"}, field="value"),
    Op("DELETE", "/api/leads/{lead}/outcome", MEMBER),
    Op("GET", "/api/outcomes", MEMBER, bad={"outcome": "maybe"}, field="outcome"),
    Op("POST", "/api/outcomes/bulk", MEMBER, lambda world, client: {"outcomes": [{"leadId": world.ids["lead"],
       "outcome": "lost"}]}, bad={"outcomes": []}, field="outcomes"),
    Op("POST", "/api/outcomes/upload", MEMBER,
       lambda world, client: {"csv": f"leadId,outcome\n{world.ids['lead']},won"},
       bad={"csv": "email,result\nada@example.com,won\n"}, field="file"),
    Op("GET", "/api/predictions/settings", MEMBER),
    Op("PUT", "/api/predictions/settings", ADMIN, {"wonEventType": "closed_won"}, bad={"wonEventType": "no/slash"},
       field="wonEventType"),
    # predictions: training, its jobs, the report and the suggestions
    Op("POST", "/api/predictions/train", ADMIN, {}, bad={"model": 7}, field="model"),
    Op("GET", "/api/predictions/jobs/{training_job}", MEMBER),
    Op("GET", "/api/predictions/report", MEMBER),
    Op("GET", "/api/predictions/suggestions", MEMBER, bad={"targetPrecision": "high"}, field="targetPrecision"),
    Op("POST", "/api/predictions/suggestions/apply", ADMIN, {"targetPrecision": 0.8}, bad={"targetPrecision": "high"},
       field="targetPrecision"),
]
# fmt: on

API_OPS = [op for op in OPS if op.role in (MEMBER, ADMIN)]
INGEST_OPS = [op for op in OPS if op.role == INGEST]

# Routes served by a view of the table under another URL: same view class, same arguments.
ALIASES: dict[str, str] = {
    # the rules API's first name, kept for existing integrations
    **{f"/api/scoring-rules{tail}": f"/api/rules{tail}" for tail in ("", "/preview", "/{}")},
    # analytics.js posts to one-letter paths, /b for batches
    **{f"/v1/{call[0]}": f"/v1/{call}" for call in ("track", "identify", "page", "screen", "group", "alias", "batch")},
    # everything Segment-compatible again under /api/v1, for clients configured with an API host
    **{
        f"/api/v1/{route}": f"/v1/{full}"
        for full in ("track", "identify", "page", "screen", "group", "alias", "batch")
        for route in (full, full[0])
    },
}
# Under /api/ but neither tenant data nor ingest, so open to anyone by design.
UNAUTHENTICATED = {
    "/api/health",  # load balancers and uptime checks
    "/api/schema/",  # the OpenAPI document
    "/api/docs/",  # Swagger UI over it
}

EMAIL_AUTOMATION = {**AUTOMATION, "action": "email"}
ELEVEN_ADDRESSES = [f"u{i}@example.com" for i in range(11)]
# More bad inputs than the table's one per operation: (operation, input, the field the 400 must name).
MORE_BAD_INPUT = [
    ("GET /api/events", {"leadId": "abc"}, "leadId"),
    ("GET /api/events", {"until": "2026-13-45"}, "until"),
    ("GET /api/leads", {"ordering": "password"}, "ordering"),
    ("GET /api/leads", {"matrix": "A1,E9"}, "matrix"),
    ("GET /api/leads/export", {"matrix": "B4"}, "matrix"),
    ("GET /api/leaderboard", {"offset": "-1"}, "offset"),
    ("GET /api/leads/{lead}/timeline", {"limit": "0"}, "limit"),
    ("POST /api/rules/preview", {"rules": [RULE], "settings": {"warmThreshold": 0}}, "settings"),
    ("PATCH /api/scoring/settings", {"hotThreshold": 5}, "hotThreshold"),
    ("PATCH /api/projects/{project}", {"name": "x" * 201}, "name"),
    ("POST /api/projects/{project}/invitations", {"email": "not-an-email"}, "email"),
    ("POST /api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h", "events": ["lead.eaten"]}, "events"),
    # the email action mails members and verified addresses only, ten at most
    ("POST /api/automations", {**EMAIL_AUTOMATION, "actionConfig": {"to": ["x@outside.example"]}}, "actionConfig.to"),
    ("POST /api/automations", {**EMAIL_AUTOMATION, "actionConfig": {"to": ELEVEN_ADDRESSES}}, "actionConfig.to"),
    ("POST /api/email-recipients", {"email": "a@example.com\nBcc: b@example.com"}, "email"),
    ("POST /api/events/batch", {"events": []}, "events"),
    ("POST /v1/batch", {"batch": "not a list"}, "batch"),
    ("POST /api/leads/{lead}/adjustments", {"points": 0, "reason": "audit"}, "points"),
    ("POST /api/leads/{lead}/adjustments", {"points": 5, "reason": "audit", "model": "nope"}, "model"),
    ("POST /api/leads/{lead}/adjustments", {"setTo": 5}, "reason"),
    ("POST /api/leads/{lead}/outcome", {"outcome": "won", "at": "1999-01-01T00:00:00Z"}, "at"),
    ("POST /api/outcomes/bulk", {"outcomes": [{"email": "nobody@example.com", "outcome": "won"}]}, "outcomes[0].email"),
    ("POST /api/outcomes/upload", {"csv": "leadId,outcome\nabc,won\n"}, "rows[0].leadId"),
    ("GET /api/companies", {"stage": "boiling"}, "stage"),
    ("GET /api/companies", {"pageSize": "0"}, "pageSize"),
    (
        "PUT /api/companies/settings",
        {**COMPANY_SETTINGS, "thresholds": {"warm": 9, "hot": 5, "qualified": 20}},
        "thresholds",
    ),
    ("PUT /api/companies/settings", {**COMPANY_SETTINGS, "fitRules": [{"points": 1, "conditions": []}]}, "fitRules"),
    ("PATCH /api/companies/{company}", {"domain": "evil.example"}, "domain"),
    ("POST /api/companies/{company}/merge", {"into": 10**12}, "into"),
]
BAD_INPUT_OPS = [op for op in OPS if op.bad is not None] + [
    replace(next(op for op in OPS if op.id == op_id), bad=bad, field=name) for op_id, bad, name in MORE_BAD_INPUT
]


def cases(ops: list[Op], name=lambda op: op.id) -> list:
    """One pytest param per operation, named after it."""
    return [pytest.param(op, id=name(op)) for op in ops]


# --- The world: one of every addressable object in a project -------------------------------------------------------


def audit_model(project: Project) -> ScoringModel:
    """A second model of the project, with a published version and a draft."""
    model = ScoringModel.objects.create(project=project, key=f"audit-{project.id}", name="Audit")
    version_publish(model=model, note="audit")
    draft_start(model=model)
    return model


def world_for(name: str) -> SimpleNamespace:
    """A project with one of every object the API addresses by id, and a caller of every kind."""
    project, owner, write_key = project_with_owner(name=name)
    lead = scored_lead(project, "visitor-1", "page_view", "signup")
    Outcome.objects.create(project=project, lead=lead, outcome="won", occurred_at=lead.created_at, source="api")
    automation = automation_create(project=project, data=AUTOMATION_ROW)
    subscription = webhook_subscribe(project=project, url="http://127.0.0.1:9/h", events=["lead.updated"])
    recipient, _ = email_recipient_request(project=project, email="pending@outside.example")
    key, _ = secret_key_create(project=project)
    _, secret = secret_key_create(project=project)
    revoked, revoked_secret = secret_key_create(project=project)
    secret_key_revoke(api_key=revoked)
    expired = AccessToken.for_user(owner)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    rescore_job = rescore_job_start(project=project, reason="audit")
    # a delivery to the cloud-metadata address is refused when sent, and so dead-lettered at once
    delivery = delivery_create(project_id=project.id, url="http://169.254.169.254/latest", event="ping", data={})
    delivery_attempt(delivery_id=delivery.id)
    # two companies, from two leads' work addresses, as scoring hands leads to companies
    companies = [Lead.objects.create(project=project, anonymous_id=f"co-{n}", email=f"ada@{n}-audit.com")
                 for n in ("acme", "globex")]  # fmt: skip
    lead_changes_consume(changes=[LeadChange(kind="scored", project_id=project.id, lead_id=lead.id, old_score=0,
                                             new_score=0, old_stage="cold", new_stage="cold")
                                  for lead in companies])  # fmt: skip
    member, admin = UserFactory(), UserFactory()
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    Membership.objects.create(user=admin, project=project, role=Membership.Role.ADMIN)
    invitation, _ = invitation_with_token(project=project, email="audit-pending@example.com", invited_by=owner)
    # another project's invitations to this project's member and admin, for them to accept
    inviting, inviter, _ = project_with_owner(name=f"{name}, inviting")
    tokens = {
        user: invitation_with_token(project=inviting, email=user.email, invited_by=inviter)[1]
        for user in (member, admin)
    }
    ids = {
        "project": project.id,
        "lead": lead.id,
        "rule": rules_for_project(project=project).first().id,
        "automation": automation.id,
        "subscription": subscription.id,
        "recipient": recipient.id,
        "key": key.id,
        "rescore_job": rescore_job.id,
        "model": audit_model(project).key,
        "version": 1,
        "failed_job": failed_jobs_for_project(project_id=project.id).get().id,
        "invitation": invitation.id,
        "company": lead_companies(project=project, lead_ids=[companies[0].id])[companies[0].id].id,
        "other_company": lead_companies(project=project, lead_ids=[companies[1].id])[companies[1].id].id,
        "training_job": prediction_world(project),
    }
    clients = {user: client_for(user) for user in (owner, member, admin)}
    return SimpleNamespace(
        project=project,
        projects=[project, inviting],
        ids=ids,
        write_key=write_key,
        users=[owner, member, admin, inviter],
        owner=clients[owner],
        member=clients[member],
        admin=clients[admin],
        invitation_tokens={clients[user]: token for user, token in tokens.items()},
        secret=bearer(secret),
        # clients are made once: each new one loads the middleware, and WhiteNoise scans the static files
        anonymous=APIClient(),
        refused={  # credentials the API must refuse
            "none": APIClient(),
            "write-key": bearer(write_key),  # public, so it authenticates ingest only
            "revoked-secret-key": bearer(revoked_secret),
            "expired-token": bearer(str(expired)),
        },
    )


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker):
    """Two projects, committed once for the module (each test's own writes are rolled back), removed after."""
    with django_db_blocker.unblock(), transaction.atomic():
        made = [world_for("Tenant A"), world_for("Tenant B")]
    yield made
    with django_db_blocker.unblock(), transaction.atomic():
        Project.objects.filter(pk__in=[p.pk for w in made for p in w.projects]).delete()
        User.objects.filter(pk__in=[user.pk for w in made for user in w.users]).delete()


@pytest.fixture
def world(worlds, db):
    return worlds[0]


@pytest.fixture
def other_world(worlds, db):
    return worlds[1]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Requests and checks -------------------------------------------------------------------------------------------


def call(client: APIClient, op: Op, world, *, body: Any = None, query: dict | None = None, **headers):
    url = op.url(world) + (f"?{urlencode(query)}" if query else "")
    if op.method == "GET":
        response = client.get(url, **headers)
    else:
        raw = "" if body is None else json.dumps(body)
        response = client.generic(op.method, url, raw, content_type="application/json", **headers)
    if response.streaming:  # the CSV export: run the query, release the cursor
        b"".join(response.streaming_content)
    return response


def call_valid(client: APIClient, op: Op, world, **headers):
    body = op.body(world, client) if callable(op.body) else op.body
    return call(client, op, world, body=body, **headers)


def call_bad(client: APIClient, op: Op, world):
    if op.method == "GET":
        return call(client, op, world, query=op.bad)
    return call(client, op, world, body=op.bad)


def ingest(world, op: Op, key: str | None, body: Any):
    """POST an ingest body with the write key (None: without one) where the op's clients put it."""
    headers = {}
    if key is not None:
        if op.key_in == "apiKey":
            body = {**body, "apiKey": key}
        elif op.key_in == "X-API-Key":
            headers["HTTP_X_API_KEY"] = key
        else:
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return world.anonymous.post(op.path, json.dumps(body), content_type="application/json", **headers)


def assert_error(response, status: int, field: str = "") -> None:
    assert response.status_code == status, (response.status_code, response.content[:500])
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    if field:
        assert field in error["fields"], error


def assert_2xx(response) -> None:
    assert 200 <= response.status_code < 300, (response.status_code, response.content[:500])


def state(project: Project) -> list:
    """Every row the project owns, every value, to compare before and after a refused request (one query)."""
    tables = [(Project._meta.db_table, "id")] + [
        (model._meta.db_table, model._meta.get_field("project").column)
        for model in apps.get_models()
        if "project" in {f.name for f in model._meta.concrete_fields}
    ]
    quote = connection.ops.quote_name
    # names from the models, quoted: no input reaches this SQL
    subqueries = [f"SELECT json_agg(t ORDER BY t.id) FROM {quote(table)} t WHERE t.{quote(column)} = %s"  # noqa: S608
                  for table, column in tables]  # fmt: skip
    sql = "SELECT " + ", ".join(f"({subquery})" for subquery in subqueries)
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk] * len(tables))
        return list(cursor.fetchone())


def counts() -> tuple[int, ...]:
    return User.objects.count(), Project.objects.count(), Lead.objects.count(), Event.objects.count()


# --- Completeness: every route is audited --------------------------------------------------------------------------


def routes() -> dict[tuple[str, str], Any]:
    """(METHOD, /path with {} for parameters) -> view callback, for every route under api/ and v1/."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    found = {}
    for route, callback in walk(get_resolver().url_patterns):
        if not route.startswith(("api/", "v1/")):
            continue
        path = "/" + re.sub(r"<[^>]+>", "{}", route)
        view_class = getattr(callback, "view_class", None)
        if view_class is None:  # a plain function view: its methods cannot be read, so it must be listed as ANY
            found["ANY", path] = callback
            continue
        for method in view_class.http_method_names:
            if method not in ("head", "options") and hasattr(view_class, method):
                found[method.upper(), path] = callback
    return found


def normalized(op: Op) -> tuple[str, str]:
    return op.method, re.sub(r"\{[^}]*\}", "{}", op.path)


def test_every_api_route_is_in_the_table_or_an_explicit_exception():
    table = {normalized(op) for op in OPS}
    missing = [
        f"{method} {path}"
        for method, path in routes()
        if (method, path) not in table and path not in ALIASES and path not in UNAUTHENTICATED
    ]
    assert not missing, f"add these operations to OPS (or ALIASES / UNAUTHENTICATED, saying why): {missing}"


def test_every_table_row_and_exception_names_a_real_route():
    served = routes()
    assert [op.id for op in OPS if normalized(op) not in served] == []
    paths = {path for _, path in served}
    assert sorted((set(ALIASES) | UNAUTHENTICATED) - paths) == []
    assert len({op.id for op in OPS}) == len(OPS)


def test_aliases_serve_the_same_view_as_an_audited_route():
    served = routes()
    for (method, path), callback in served.items():
        if path not in ALIASES:
            continue
        target = served.get((method, ALIASES[path]))
        assert target is not None, f"{method} {path} is an alias of nothing"
        assert (target.view_class, target.view_initkwargs) == (callback.view_class, callback.view_initkwargs), path
        assert (method, ALIASES[path]) in {normalized(op) for op in OPS}


# --- a. Authentication ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "write-key", "revoked-secret-key", "expired-token"])
@pytest.mark.parametrize("op", cases(API_OPS))
def test_missing_or_refused_credentials_are_401(op, kind, world):
    before = state(world.project)
    assert_error(call_valid(world.refused[kind], op, world), 401)
    assert state(world.project) == before


def test_a_refused_token_is_explained_in_words(world):
    # simplejwt's detail is a dict; the error keeps its words and its code, not a Python repr
    error = world.refused["expired-token"].get("/api/leads").json()["error"]
    assert error["code"] == "token_not_valid", error
    assert error["message"] == "Given token not valid for any token type", error
    refresh = APIClient().post("/api/auth/refresh", {"refresh": "abc"}, format="json")
    assert refresh.status_code == 401 and refresh.json()["error"]["code"] == "token_not_valid"
    assert "ErrorDetail" not in refresh.json()["error"]["message"]


@pytest.mark.parametrize("op", cases(INGEST_OPS))
def test_ingest_accepts_its_write_key(op, world):
    before = Event.objects.filter(project=world.project).count()
    assert_2xx(ingest(world, op, world.write_key, op.body))
    assert Event.objects.filter(project=world.project).count() == before + 1


def bad_write_key(kind: str, world) -> str | None:
    if kind == "missing":
        return None
    if kind == "unknown":
        return "lp_pub_" + "x" * 32
    if kind == "revoked":
        write_key_rotate(project=world.project)
        return world.write_key
    return secret_key_create(project=world.project)[1]  # a secret key is no write key


@pytest.mark.parametrize("kind", ["missing", "unknown", "revoked", "secret-key"])
@pytest.mark.parametrize("op", cases(INGEST_OPS))
def test_ingest_without_a_valid_write_key_is_401_and_stores_nothing(op, kind, world):
    key = bad_write_key(kind, world)
    before = counts()
    assert_error(ingest(world, op, key, op.body), 401)
    assert counts() == before


# --- b. Tenancy ----------------------------------------------------------------------------------------------------

OBJECT_OPS = [op for op in API_OPS if op.has_object]
SCOPED_OPS = [op for op in API_OPS if op.scoped]


@pytest.mark.parametrize("caller", ["owner", "secret"])
@pytest.mark.parametrize("op", cases(OBJECT_OPS))
def test_another_projects_object_is_404_and_untouched(op, caller, world, other_world):
    before = state(other_world.project)
    assert_error(call_valid(getattr(world, caller), op, other_world), 404)
    assert state(other_world.project) == before


@pytest.mark.parametrize("caller", ["owner", "secret"])
@pytest.mark.parametrize("op", cases(SCOPED_OPS))
def test_naming_another_project_in_the_header_is_404(op, caller, world, other_world):
    before = state(other_world.project)
    response = call_valid(getattr(world, caller), op, world, HTTP_X_LEADPULSE_PROJECT=str(other_world.project.id))
    assert_error(response, 404)
    assert state(other_world.project) == before


def test_a_key_of_another_project_in_an_own_project_url_is_404(world, other_world):
    url = f"/api/projects/{world.project.id}/secret-keys/{other_world.ids['key']}"
    before = state(other_world.project)
    assert_error(world.owner.delete(url), 404)
    assert state(other_world.project) == before


# --- c. Roles ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", cases(API_OPS))
def test_a_member_reads_but_gets_403_on_admin_writes(op, world):
    before = state(world.project)
    response = call_valid(world.member, op, world)
    if op.role == ADMIN:
        assert_error(response, 403)
        assert state(world.project) == before
    else:
        assert_2xx(response)


@pytest.mark.parametrize("op", cases(API_OPS))
def test_an_admin_may_do_everything(op, world):
    assert_2xx(call_valid(world.admin, op, world))


@pytest.mark.parametrize("op", cases(API_OPS))
def test_a_secret_key_acts_as_an_admin_of_its_project(op, world):
    response = call_valid(world.secret, op, world)
    if op.user_only:
        assert_error(response, 403)
    else:
        assert_2xx(response)


# --- d. Input validation -------------------------------------------------------------------------------------------


def bad_input_name(op: Op) -> str:
    return f"{op.id} {op.field}"


@pytest.mark.parametrize("op", cases([op for op in BAD_INPUT_OPS if op.role != INGEST], bad_input_name))
def test_bad_input_is_400_naming_the_field_and_stores_nothing(op, world):
    client = world.anonymous if op.role == PUBLIC else world.owner
    before = state(world.project), counts()
    assert_error(call_bad(client, op, world), 400, op.field)
    assert (state(world.project), counts()) == before


@pytest.mark.parametrize("op", cases([op for op in BAD_INPUT_OPS if op.role == INGEST], bad_input_name))
def test_bad_ingest_input_is_400_naming_the_field_and_stores_nothing(op, world):
    before = counts()
    assert_error(ingest(world, op, world.write_key, op.bad), 400, op.field)
    assert counts() == before


# --- e. Unknown fields ---------------------------------------------------------------------------------------------
# Our own write bodies refuse what they do not know (400 naming it, nothing stored), as Stripe does: a rule with a
# `within` the API has not got must not be stored as a rule that awards on every event. Ingest bodies follow the
# Segment spec, which lets clients send extra fields, so they keep accepting them.

WRITE_METHODS = ("POST", "PUT", "PATCH")
STRICT_OPS = [op for op in OPS if op.method in WRITE_METHODS and op.role != INGEST]
FIT_RULE = {"name": "Pro plan", "kind": "fit", "points": 10, "conditions": [{"path": "traits.plan", "op": "eq",
                                                                            "value": "pro"}]}  # fmt: skip
EVENT_AUTOMATION = {**AUTOMATION, "trigger": "event_received", "triggerConfig": {"eventType": "signup",
                    "conditions": [{"path": "properties.plan", "op": "exists"}]}}  # fmt: skip
# (operation, body, the unknown field's path in the error): nested objects and list items refuse theirs too.
NESTED_UNKNOWN_FIELDS = [
    ("POST /api/rules", {**FIT_RULE, "conditions": [{**FIT_RULE["conditions"][0], "within": "7d"}]},
     "conditions[0].within"),
    ("PUT /api/rules/{rule}", {**RULE, "id": 1}, "id"),  # read-only, e.g. echoed back from a GET
    ("POST /api/rules/preview", {"rules": [RULE, {**RULE, "within": "7d"}]}, "rules[1].within"),
    ("POST /api/rules/preview", {"rules": [RULE], "settings": {"warmThreshold": 12, "within": 7}}, "settings.within"),
    ("POST /api/automations", {**AUTOMATION, "triggerConfig": {"stage": "hot", "within": 7}}, "triggerConfig.within"),
    ("POST /api/automations", {**AUTOMATION, "actionConfig": {"url": "http://127.0.0.1:9/hook", "headers": {}}},
     "actionConfig.headers"),
    ("PATCH /api/automations/{automation}", {"trigger": "lead_merged", "triggerConfig": {"stage": "hot"}},
     "triggerConfig.stage"),
    ("POST /api/automations", {**EVENT_AUTOMATION, "triggerConfig": {"eventType": "signup", "conditions": [
        {"path": "properties.plan", "op": "exists", "within": 7}]}}, "triggerConfig.conditions[0].within"),
    ("PATCH /api/leads/{lead}", {"name": "Ada", "currentScore": 999}, "currentScore"),
    ("PUT /api/companies/settings", {**COMPANY_SETTINGS, "fitRules": [{**COMPANY_SETTINGS["fitRules"][0], "x": 1}]},
     "fitRules[0].x"),
    ("PUT /api/companies/settings", {**COMPANY_SETTINGS, "thresholds": {"warm": 1, "hot": 2, "qualified": 3,
                                                                         "x": 4}}, "thresholds.x"),
    ("PUT /api/companies/settings", {**COMPANY_SETTINGS, "fitRules": [{**COMPANY_SETTINGS["fitRules"][0],
     "conditions": [{"path": "plan", "op": "exists", "within": 7}]}]}, "fitRules[0].conditions[0].within"),
]  # fmt: skip


def error_paths(fields: Any, path: str = "") -> set[str]:
    """Every field path an error's `fields` names: `within`, `rules[1].within`, `conditions[0].within`
    (list items' errors come keyed by index, as DRF gives them)."""
    if isinstance(fields, dict):
        return {
            found
            for key, value in fields.items()
            for found in error_paths(value, f"{path}[{key}]" if key.isdecimal() else f"{path}.{key}".lstrip("."))
        }
    if isinstance(fields, list) and any(isinstance(item, dict | list) for item in fields):
        return {found for index, item in enumerate(fields) for found in error_paths(item, f"{path}[{index}]")}
    return {path} if fields else set()


def strict_body(op: Op, world, client: APIClient) -> dict[str, Any]:
    """A body the operation would accept (PUBLIC ones have none in the table)."""
    if op.id == "POST /api/auth/register":
        return {"email": "strict@example.com", "password": "x7!kq-Lm2@pz"}
    if op.id == "POST /api/auth/login":
        return {"email": world.users[0].email, "password": "correct horse battery staple"}
    if op.id in ("POST /api/auth/refresh", "POST /api/auth/logout"):
        return {"refresh": str(RefreshToken.for_user(world.users[0]))}
    return dict((op.body(world, client) if callable(op.body) else op.body) or {})


def test_every_write_operation_in_the_document_is_strict_or_ingest():
    """The OpenAPI document closes every request body of ours (and leaves ingest's open); each is tested below."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    components = document["components"]["schemas"]
    strict, ingest_ops = {normalized(op) for op in STRICT_OPS}, {normalized(op) for op in INGEST_OPS}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            key = method.upper(), re.sub(r"\{[^}]*\}", "{}", path)
            if key[0] not in WRITE_METHODS:
                continue
            content = operation.get("requestBody", {}).get("content", {"application/json": {"schema": {}}})
            schema = content["application/json"]["schema"]
            schema = components[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
            if key in ingest_ops:
                assert schema.get("additionalProperties") is not False, f"{method} {path}: Segment allows extras"
            else:
                assert key in strict, f"{method} {path} is not in STRICT_OPS: add it to OPS"
                if "requestBody" in operation:
                    assert schema.get("additionalProperties") is False, f"{method} {path} documents an open body"


@pytest.mark.parametrize("op", cases(STRICT_OPS))
def test_an_unknown_field_is_400_naming_it_and_stores_nothing(op, world):
    client = {PUBLIC: world.anonymous, MEMBER: world.member}.get(op.role, world.owner)
    before = state(world.project), counts()
    # when: a body the operation accepts, plus a field it does not know
    response = call(client, op, world, body={**strict_body(op, world, client), "within": "7d"})
    # then
    assert_error(response, 400, "within")
    error = response.json()["error"]
    assert error["fields"] == {"within": ["Unknown field."]}, error
    assert error["message"] == "within: Unknown field.", error
    assert (state(world.project), counts()) == before


@pytest.mark.parametrize(("op_id", "body", "path"), NESTED_UNKNOWN_FIELDS, ids=[c[2] for c in NESTED_UNKNOWN_FIELDS])
def test_an_unknown_nested_field_is_400_naming_its_path(op_id, body, path, world):
    op = next(op for op in OPS if op.id == op_id)
    before = state(world.project), counts()

    response = call(world.owner, op, world, body=body)

    assert_error(response, 400)
    error = response.json()["error"]
    assert error_paths(error["fields"]) == {path}, error
    assert error["message"].startswith(f"{path}: "), error
    assert (state(world.project), counts()) == before


@pytest.mark.parametrize("op", cases(INGEST_OPS))
def test_ingest_bodies_keep_accepting_extra_fields(op, world):
    before = Event.objects.filter(project=world.project).count()
    assert_2xx(ingest(world, op, world.write_key, {**op.body, "within": "7d"}))
    assert Event.objects.filter(project=world.project).count() == before + 1
