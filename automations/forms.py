"""Forms of the automations page; validation goes through the API's serializers so both agree."""

import json
from typing import Any

from django import forms
from rest_framework import serializers

from scoring import contracts as scoring_engine

from . import actions, config_schema, triggers
from .models import WebhookSubscription
from .serializers import AutomationRuleSerializer, EmailRecipientRequestSerializer, WebhookSubscribeSerializer

# API field (first part of an error key such as "triggerConfig.stage") → form field.
RULE_FIELDS = {
    "name": "name",
    "isActive": "is_active",
    "trigger": "trigger",
    "triggerConfig": "trigger_config",
    "leadConditions": "lead_conditions",
    "action": "action",
    "actionConfig": "action_config",
    "cooldownSeconds": "cooldown_seconds",
}


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.strip() or "{}")
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Malformed JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("Must be a JSON object.")
    return value


def serializer_errors_to_form(form: forms.Form, errors: Any, field_map: dict[str, str]) -> None:
    """Attach DRF errors (`{"triggerConfig.stage": ["…"]}`) to the form fields they are about."""
    for key, messages in dict(errors).items():
        head = str(key).split(".", 1)[0].split("[", 1)[0]
        field = field_map.get(head)
        for path, message in _flatten(str(key), messages):
            form.add_error(field, str(message) if path == head else f"{path}: {message}")


def _flatten(path: str, messages: Any) -> list[tuple[str, Any]]:
    if isinstance(messages, dict):
        return [item for key, value in messages.items() for item in _flatten(f"{path}[{key}]", value)]
    if isinstance(messages, list):
        return [(path, message) for message in messages]
    return [(path, messages)]


def _json_field(label: str, example: str, of: str) -> forms.CharField:
    """A JSON object, edited through the form forms.js generates from `config_forms()[of]` (JSON on request)."""
    return forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 3, "cols": 40, "data-config-of": of, "data-operators": ",".join(scoring_engine.OPERATORS)}
        ),
        required=False,
        initial="{}",
        label=label,
        help_text=f"As JSON, e.g. {example}",
    )


FieldForm = dict[str, Any]
EVENT_PATHS = "suggest-event-paths"  # the datalists of templates/_condition_suggestions.html
PROFILE_PATHS = "suggest-profile-paths"


def plain(text: str) -> str:
    return text.replace("`", "")  # help texts are written for the OpenAPI document's Markdown


def config_field_form(field: config_schema.ConfigField, *, models: list[tuple[str, str]]) -> FieldForm:
    """How the page's form shows one declared config field (forms.js renders it; unknown kinds as JSON)."""
    shown: FieldForm = {"name": field.name, "label": field.label, "kind": field.kind, "required": field.required,
                        "help": plain(field.help_text)}  # fmt: skip
    if field is triggers.MODEL:  # a scoring model's key: the project's models
        shown.update(kind="choice", choices=models, blank="The primary model")
    elif isinstance(field, config_schema.Choice):
        shown["choices"] = [(choice, choice) for choice in field.choices]
    elif isinstance(field, config_schema.Integer):
        shown.update(min=field.minimum, max=field.maximum)
    elif isinstance(field, config_schema.Conditions):
        shown["paths"] = EVENT_PATHS
    elif field.name == "eventType":
        shown["suggest"] = "suggest-event-names"
    if not field.required and field.default not in (None, [], {}):
        shown["placeholder"] = str(field.default)
    return shown


# The lead conditions every rule may add (validated by AutomationRuleSerializer.validate).
LEAD_CONDITIONS_FORM: list[FieldForm] = [
    {"name": "stages", "label": "Stages", "kind": "multichoice", "required": False,
     "choices": [(stage, stage) for stage in scoring_engine.STAGES], "help": "Only leads in one of these stages."},
    {"name": "grades", "label": "Fit grades", "kind": "multichoice", "required": False,
     "choices": [(grade, grade) for grade in "ABCD"], "help": "Only leads of one of these fit grades."},
    {"name": "minScore", "label": "Minimum score", "kind": "integer", "required": False, "help": ""},
    {"name": "maxScore", "label": "Maximum score", "kind": "integer", "required": False, "help": ""},
    {"name": "traits", "label": "Profile conditions", "kind": "conditions", "required": False, "paths": PROFILE_PATHS,
     "help": "On the lead's profile: email, name, company, userId, traits.…"},
]  # fmt: skip


def config_forms(*, models: list[tuple[str, str]]) -> dict[str, Any]:
    """The forms of every registered trigger's and action's config, and of the lead conditions (for forms.js)."""
    return {
        "trigger": {t.key: [config_field_form(f, models=models) for f in t.config] for t in triggers.registry},
        "action": {a.key: [config_field_form(f, models=models) for f in a.config] for a in actions.registry},
        "lead_conditions": LEAD_CONDITIONS_FORM,
    }


class AutomationRuleForm(forms.Form):
    name = forms.CharField(max_length=200)
    # callables: a trigger or action registered later is offered too
    trigger = forms.ChoiceField(choices=triggers.choices)
    trigger_config = _json_field("Trigger settings", '{"stage": "hot"}', "trigger")
    lead_conditions = _json_field("Only leads that", '{"minScore": 40}', "lead_conditions")
    action = forms.ChoiceField(choices=actions.choices)
    action_config = _json_field("Action settings", '{"tag": "hot-lead"}', "action")
    cooldown_seconds = forms.IntegerField(initial=86400, label="Cooldown (seconds)")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def clean_trigger_config(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["trigger_config"])

    def clean_lead_conditions(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["lead_conditions"])

    def clean_action_config(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["action_config"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        serializer = AutomationRuleSerializer(
            data={api: data[field] for api, field in RULE_FIELDS.items() if field in data}
        )
        try:
            serializer.is_valid(raise_exception=True)
        except serializers.ValidationError as exc:
            serializer_errors_to_form(self, exc.detail, RULE_FIELDS)
            return data
        data["validated"] = serializer.validated_data
        return data


class WebhookSubscribeForm(forms.Form):
    url = forms.CharField(max_length=2000, label="URL")
    events = forms.MultipleChoiceField(
        choices=WebhookSubscription.Event.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        serializer = WebhookSubscribeSerializer(data={"url": data["url"], "events": data.get("events", [])})
        if not serializer.is_valid():
            serializer_errors_to_form(self, serializer.errors, {"url": "url", "events": "events"})
            return data
        data["validated"] = serializer.validated_data
        return data


class EmailRecipientForm(forms.Form):
    email = forms.CharField(max_length=254, label="Email address")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        serializer = EmailRecipientRequestSerializer(data={"email": data["email"]})
        if not serializer.is_valid():
            serializer_errors_to_form(self, serializer.errors, {"email": "email"})
            return data
        data["validated"] = serializer.validated_data
        return data
