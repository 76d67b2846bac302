"""Forms of the dashboard pages; rules and settings validate through the API's serializers."""

import json
import uuid
from typing import Any, cast

from django import forms

from core.errors import ApplicationError
from core.leadfacets import lead_facets
from ingest.models import Lead

from . import engine
from .models import ScoringModel, ScoringRule
from .selectors import MATRIX_ORDERING, lead_orderings, matrix_cells_parse
from .serializers import RuleSerializer, ScoringSettingsSerializer
from .serializers.models import ScoringModelCreateSerializer, ScoringModelUpdateSerializer

SORTABLE = ("name", "currentScore", "velocityScore", "lastEventAt", MATRIX_ORDERING)
# forms.js turns the textarea into rows (the datalists are templates/_condition_suggestions.html's)
CONDITION_BUILDER = {
    "rows": 4,
    "cols": 60,
    "data-condition-builder": "",
    "data-operators": ",".join(engine.OPERATORS),
    "data-paths": "suggest-event-paths",
    "data-paths-fit": "suggest-profile-paths",
    "data-event-names": "suggest-event-names",
}


class LeadFilterForm(forms.Form):
    """Search, stage, matrix cells and ordering of the leads table; an unknown value is reported and ignored."""

    search = forms.CharField(required=False, max_length=200)
    stage = forms.ChoiceField(required=False, choices=[("", "All stages"), *Lead.Stage.choices])
    # one cell from the select, or several as the API takes them (`A1,B1`)
    matrix = forms.CharField(required=False, max_length=64)
    ordering = forms.ChoiceField(required=False)
    MATRIX_CHOICES = [("", "All matrix cells"), *((cell, cell) for cell in engine.MATRIX_CELLS)]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the lead facets' sort keys and filters (`core.leadfacets`), as registered once the apps are ready
        orderings = lead_orderings()
        cast(forms.ChoiceField, self.fields["ordering"]).choices = [(key, key) for key in orderings] + [
            (f"-{key}", key) for key in orderings
        ]
        for facet in lead_facets.filters():
            self.fields[facet.key] = forms.CharField(required=False, max_length=255, label=facet.label)

    def facet_filters(self) -> dict[str, str | None]:
        data = self.cleaned_data if self.is_bound else {}
        return {facet.key: data.get(facet.key) or None for facet in lead_facets.filters()}

    def clean_matrix(self) -> str:
        try:
            return ",".join(matrix_cells_parse(self.cleaned_data["matrix"]))
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None

    def filters(self) -> dict[str, str | None]:
        data = self.cleaned_data if self.is_bound else {}
        return {name: data.get(name) or None for name in ("search", "stage", "matrix", "ordering")}

    def matrix_choices(self) -> list[tuple[str, str]]:
        """The matrix select's options: every cell, and the filter in force when it names several."""
        current = self.filters()["matrix"]
        extra = [(current, current)] if current and current not in engine.MATRIX_CELLS else []
        return [*self.MATRIX_CHOICES, *extra]

    def sort_links(self) -> dict[str, str]:
        """The ordering each sortable column header switches to (descending first, then ascending; the matrix:
        A1 first, then D3 first)."""
        current = self.filters()["ordering"] or "-currentScore"
        sortable = [*SORTABLE, *lead_facets.orderings()]
        links = {key: key if current == f"-{key}" else f"-{key}" for key in sortable}
        links[MATRIX_ORDERING] = f"-{MATRIX_ORDERING}" if current == MATRIX_ORDERING else MATRIX_ORDERING
        return links


def serializer_errors(form: forms.Form, errors: Any) -> None:
    """Show a serializer's errors on the form's fields of the same (camelCase) name."""
    for name, messages in errors.items() if isinstance(errors, dict) else [(None, errors)]:
        # "conditions[0].op" belongs to the conditions textarea
        field = name.split("[", 1)[0] if name else None
        label = f"{name}: " if name and name != field else ""
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(field if field in form.fields else None, f"{label}{message}")


class RuleForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    kind = forms.ChoiceField(choices=ScoringRule.Kind.choices, initial=ScoringRule.Kind.ENGAGEMENT)
    eventType = forms.CharField(required=False, max_length=128, label="Event type")
    points = forms.IntegerField()
    conditions = forms.CharField(
        required=False,
        initial="[]",
        widget=forms.Textarea(attrs=CONDITION_BUILDER),
        help_text="All must hold: a path (properties.url, traits.plan…), an operator and a value. As JSON: a list "
        'of {"path", "op", "value"}.',
    )
    maxPerDay = forms.IntegerField(required=False, label="Max per day")
    maxPerLead = forms.IntegerField(required=False, label="Max per lead")
    maxPoints = forms.IntegerField(required=False, label="Max points")
    # the window, `{"count", "days"}` on the API: "at least N times within D days" (both empty: every time)
    windowCount = forms.IntegerField(
        required=False, label="Window: at least (times)",
        help_text="The rule scores the matching event that makes this many within the days below. Both empty: "
        "every matching event scores.",
    )  # fmt: skip
    windowDays = forms.IntegerField(
        required=False, label="within (days)", help_text="Counted back from each event; after scoring, the rule "
        "rests this many days."
    )  # fmt: skip
    isActive = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, data: Any = None, *, rule: ScoringRule | None = None) -> None:
        initial = None
        if rule is not None:
            initial = {**RuleSerializer(rule).data, "conditions": json.dumps(rule.conditions, indent=1),
                       "windowCount": rule.window_count, "windowDays": rule.window_days}  # fmt: skip
        super().__init__(data, initial=initial)
        self.rule = rule
        self.validated_data: dict[str, Any] = {}

    def clean_conditions(self) -> Any:
        text = self.cleaned_data["conditions"].strip() or "[]"
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        serializer = RuleSerializer(self.rule, data=_with_window(cleaned))
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
        else:
            serializer_errors(self, _window_errors(serializer.errors))
        return cleaned


def _with_window(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The form's two window inputs as the API's `window` (null when both are empty)."""
    data = {k: v for k, v in cleaned.items() if k not in ("windowCount", "windowDays")}
    count, days = cleaned.get("windowCount"), cleaned.get("windowDays")
    if count is None and days is None:
        data["window"] = None
    else:
        data["window"] = {k: v for k, v in (("count", count), ("days", days)) if v is not None}
    return data


def _window_errors(errors: Any) -> Any:
    """`window.count` / `window.days` errors on their inputs; a window error as a whole on the count's."""
    if not isinstance(errors, dict) or "window" not in errors:
        return errors
    errors = dict(errors)
    window = errors.pop("window")
    parts = window.items() if isinstance(window, dict) else [("count", window)]
    for part, messages in parts:
        errors[{"count": "windowCount", "days": "windowDays"}.get(part, "windowCount")] = messages
    return errors


class ScoringSettingsForm(forms.Form):
    warmThreshold = forms.IntegerField(label="Warm at")
    hotThreshold = forms.IntegerField(label="Hot at")
    qualifiedThreshold = forms.IntegerField(label="Qualified at")
    maxScore = forms.IntegerField(label="Max score")
    decayEnabled = forms.BooleanField(required=False, label="Decay enabled")
    decayRatePercent = forms.FloatField(label="Decay % per day")
    decayGraceDays = forms.IntegerField(label="Grace days")

    def __init__(self, data: Any = None, *, model: ScoringModel) -> None:
        super().__init__(data, initial=ScoringSettingsSerializer(model).data)
        self.model = model
        self.validated_data: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        serializer = ScoringSettingsSerializer(self.model, data=cleaned)
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
        else:
            serializer_errors(self, serializer.errors)
        return cleaned


class ScoringModelCreateForm(forms.Form):
    key = forms.CharField(max_length=50, help_text="Lowercase letters, digits, - and _; used in ?model=.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 40}))
    copyFrom = forms.ChoiceField(required=False, label="Copy rules and settings from")

    def __init__(self, data: Any = None, *, models: list[ScoringModel]) -> None:
        super().__init__(data)
        choices = [("", "Nothing (no rules, default settings)")] + [(m.key, f"{m.name} ({m.key})") for m in models]
        self.fields["copyFrom"].choices = choices  # type: ignore[attr-defined]
        self.validated_data: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        data = {name: value for name, value in cleaned.items() if value != "" or name == "description"}
        serializer = ScoringModelCreateSerializer(data=data)
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
        else:
            serializer_errors(self, serializer.errors)
        return cleaned


class ScoringModelUpdateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 40}))

    def __init__(self, data: Any = None, *, model: ScoringModel) -> None:
        super().__init__(data, initial={"name": model.name, "description": model.description})
        self.model = model
        self.validated_data: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        serializer = ScoringModelUpdateSerializer(self.model, data=cleaned, partial=True)
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
        else:
            serializer_errors(self, serializer.errors)
        return cleaned


class AdjustmentForm(forms.Form):
    """A manual adjustment from the lead page: add (or subtract) points, or set the engagement score, and why."""

    CHANGES = [("points", "Add or subtract points"), ("setTo", "Set engagement to (0 resets)")]

    change = forms.ChoiceField(choices=CHANGES, initial="points")
    value = forms.IntegerField(initial=0, label="Points")
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 40}))
    model = forms.ChoiceField(choices=())
    # the adjustment's idempotency key: a form sent twice (a double click, a resend) adjusts once
    token = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args: Any, models: list[ScoringModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["token"].initial = f"form-{uuid.uuid4().hex}"
        model = cast(forms.ChoiceField, self.fields["model"])
        model.choices = [(m.key, f"{m.name} (primary)" if m.is_primary else m.name) for m in models]
        model.initial = next((m.key for m in models if m.is_primary), None)

    def points_or_set_to(self) -> tuple[int | None, int | None]:
        """The service's `points` and `set_to` (one of them None)."""
        value = self.cleaned_data["value"]
        return (value, None) if self.cleaned_data["change"] == "points" else (None, value)


# which form field shows a service error about a field of the API body
ADJUSTMENT_ERROR_FIELDS = {"points": "value", "setTo": "value", "reason": "reason", "model": "model",
                           "Idempotency-Key": None}  # fmt: skip
