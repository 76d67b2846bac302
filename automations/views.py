"""Dashboard pages of the automations app: rules, executions, webhooks, deliveries, dead letters."""

import json
from collections.abc import Callable, Collection, Iterable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.scoping import ProjectRequest, project_page
from core.deadletter import failed_job_get, failed_job_replay, failed_jobs_for_project
from core.errors import ApplicationError, NotFound
from ingest.selectors import condition_suggestions_for_project
from scoring.selectors import scoring_models_for_project

from . import actions, selectors, services, triggers
from .forms import RULE_FIELDS, AutomationRuleForm, EmailRecipientForm, WebhookSubscribeForm, config_forms, plain

FAILED_JOBS_SHOWN = 50


def config_summary(config: dict[str, Any], *, hidden: Collection[str] = ()) -> str:
    """A rule's config as compact JSON, without its secrets (a webhook's signing secret)."""
    return json.dumps({k: v for k, v in config.items() if k not in hidden}, separators=(", ", ": "), sort_keys=True)


def config_reference(registry: Iterable[triggers.Trigger | actions.Action]) -> list[dict[str, Any]]:
    """What each registered trigger (or action) takes, for the form's reference: its declared fields and an example."""
    return [
        {
            "key": entry.key,
            "label": entry.label,
            "fields": [
                {
                    "name": f.name,
                    "label": f.label,
                    "required": f.required,
                    "expects": f.what(),
                    "help": plain(f.help_text) if f.help_text.rstrip(".").lower() != f.what().lower() else "",
                }
                for f in entry.config
            ],
            "example": config_summary(entry.example),
        }
        for entry in registry
    ]


def admin_write(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponseBase]:
    """A POST-only page action for owners and admins; another project's ids are 404s."""

    @project_page
    @require_POST
    @wraps(view)
    def wrapper(request: ProjectRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.membership.is_admin:
            raise PermissionDenied
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None

    return wrapper


def _automations_render(request: ProjectRequest, **extra: Any) -> HttpResponse:
    project = request.project
    executions = selectors.executions_by_rule(project=project)
    secret = actions.secret_config_keys()
    rules = [
        {
            "rule": rule,
            "trigger_config": config_summary(rule.trigger_config, hidden=secret),
            "lead_conditions": config_summary(rule.lead_conditions, hidden=secret),
            "action_config": config_summary(rule.action_config, hidden=secret),
            "executions": executions.get(rule.id, []),
        }
        for rule in selectors.automations_for_project(project=project)
    ]
    context = {
        "rules": rules,
        "subscriptions": selectors.subscriptions_for_project(project=project),
        "deliveries": selectors.recent_deliveries_for_project(project=project),
        "failed_jobs": failed_jobs_for_project(project_id=project.id)[:FAILED_JOBS_SHOWN],
        "is_admin": request.membership.is_admin,
        "rule_form": AutomationRuleForm(),
        # a data attribute, not a JSON <script>: the pages hold no inline script of any type
        "config_forms": json.dumps(
            config_forms(models=[(m.key, f"{m.name} ({m.key})") for m in scoring_models_for_project(project=project)])
        ),
        "suggestions": condition_suggestions_for_project(project=project),
        "subscribe_form": WebhookSubscribeForm(),
        "recipients": selectors.email_recipients_for_project(project=project),
        "recipient_form": EmailRecipientForm(),
        "config_reference": [
            ("trigger", config_reference(triggers.registry)),
            ("action", config_reference(actions.registry)),
        ],
        **extra,
    }
    return render(request, "automations/automations.html", context)


@project_page
def automation_list_view(request: ProjectRequest) -> HttpResponse:
    return _automations_render(request)


@admin_write
def automation_create_view(request: ProjectRequest) -> HttpResponse:
    form = AutomationRuleForm(request.POST)
    if form.is_valid():
        try:
            rule = services.automation_create(project=request.project, data=form.cleaned_data["validated"])
        except ApplicationError as exc:
            form.add_error(RULE_FIELDS.get((exc.field or "").split(".")[0]), exc.message)
        else:
            messages.success(request, f"Automation “{rule.name}” created.")
            return redirect("automations:automation_list")
    return _automations_render(request, rule_form=form)


@admin_write
def automation_toggle_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    rule = selectors.automation_get(project=request.project, rule_id=rule_id)
    rule = services.automation_update(rule=rule, data={"is_active": not rule.is_active})
    messages.success(request, f"Automation “{rule.name}” {'activated' if rule.is_active else 'paused'}.")
    return redirect("automations:automation_list")


@admin_write
def automation_delete_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    rule = selectors.automation_get(project=request.project, rule_id=rule_id)
    services.automation_delete(rule=rule)
    messages.success(request, f"Automation “{rule.name}” deleted.")
    return redirect("automations:automation_list")


@admin_write
def webhook_subscribe_view(request: ProjectRequest) -> HttpResponse:
    form = WebhookSubscribeForm(request.POST)
    if form.is_valid():
        try:
            subscription = services.webhook_subscribe(project=request.project, **form.cleaned_data["validated"])
        except ApplicationError as exc:
            form.add_error("url", exc.message)
        else:
            # Rendered, not redirected: the signing secret is shown this once and never stored in the session.
            return _automations_render(request, new_subscription=subscription)
    return _automations_render(request, subscribe_form=form)


@admin_write
def webhook_delete_view(request: ProjectRequest, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_get(project=request.project, subscription_id=subscription_id)
    services.webhook_unsubscribe(subscription=subscription)
    messages.success(request, f"Unsubscribed {subscription.url}.")
    return redirect("automations:automation_list")


@admin_write
def webhook_test_view(request: ProjectRequest, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_get(project=request.project, subscription_id=subscription_id)
    delivery = services.webhook_test_send(subscription=subscription)
    messages.success(request, f"Test delivery {delivery.delivery_id} queued to {subscription.url}.")
    return redirect("automations:automation_list")


@admin_write
def failed_job_replay_view(request: ProjectRequest, job_id: int) -> HttpResponse:
    job = failed_job_replay(job=failed_job_get(project_id=request.project.id, job_id=job_id))
    messages.success(request, f"Replayed {job.kind} {job.reference}.")
    return redirect("automations:automation_list")


@admin_write
def email_recipient_request_view(request: ProjectRequest) -> HttpResponse:
    form = EmailRecipientForm(request.POST)
    if form.is_valid():
        try:
            recipient, sent = services.email_recipient_request(
                project=request.project,
                email=form.cleaned_data["validated"]["email"],
            )
        except ApplicationError as exc:
            form.add_error("email", exc.message)
        except services.EmailBudgetExhausted as exc:
            form.add_error("email", str(exc.detail))
        else:
            messages.success(
                request,
                f"Confirmation link sent to {recipient.email}." if sent else f"{recipient.email} is verified already.",
            )
            return redirect("automations:automation_list")
    return _automations_render(request, recipient_form=form)


@admin_write
def email_recipient_delete_view(request: ProjectRequest, recipient_id: int) -> HttpResponse:
    recipient = selectors.email_recipient_get(project=request.project, recipient_id=recipient_id)
    services.email_recipient_delete(recipient=recipient)
    messages.success(request, f"{recipient.email} will get no more automation emails.")
    return redirect("automations:automation_list")


@require_http_methods(["GET", "POST"])
def email_recipient_confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the address's owner confirms with a POST (a GET changes nothing, as mail scanners follow links)."""
    recipient = selectors.email_recipient_for_token(token=token)
    confirmed = False
    if request.method == "POST" and recipient is not None:
        try:
            recipient, confirmed = services.email_recipient_confirm(token=token), True
        except ApplicationError:
            recipient = None
    context = {"recipient": recipient, "confirmed": confirmed}
    return render(request, "automations/recipient_confirm.html", context, status=200 if recipient else 404)
