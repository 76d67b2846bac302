"""Writes of the automations app: rules, email recipients, webhook subscriptions, reacting to lead changes, deliveries.

Callers (views, API, tasks, actions and the `LEADPULSE_LEAD_ERASERS` hook in settings) use the names below.
"""

from .changes import (
    automation_execute,
    company_change_handle,
    execution_deliver,
    lead_change_handle,
    lead_changes_handle,
    lead_traits_update,
)
from .deliveries import Attempt, delivery_attempt, delivery_create, delivery_replay, lead_deliveries_erase
from .outbox import outbox_sweep
from .recipients import (
    EmailBudgetExhausted,
    email_budget_spend,
    email_recipient_confirm,
    email_recipient_delete,
    email_recipient_request,
    recipients_validate,
)
from .rules import automation_create, automation_delete, automation_update
from .subscriptions import url_validate, webhook_subscribe, webhook_test_send, webhook_unsubscribe

__all__ = [
    "Attempt",
    "EmailBudgetExhausted",
    "automation_create",
    "automation_delete",
    "automation_execute",
    "automation_update",
    "company_change_handle",
    "delivery_attempt",
    "delivery_create",
    "delivery_replay",
    "email_budget_spend",
    "email_recipient_confirm",
    "email_recipient_delete",
    "email_recipient_request",
    "execution_deliver",
    "lead_change_handle",
    "lead_changes_handle",
    "lead_deliveries_erase",
    "lead_traits_update",
    "outbox_sweep",
    "recipients_validate",
    "url_validate",
    "webhook_subscribe",
    "webhook_test_send",
    "webhook_unsubscribe",
]
