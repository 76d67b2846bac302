"""Forms of the companies pages: the list's filters, a company's name and traits, a merge's target."""

import json
from typing import Any

from django import forms

from scoring.contracts import STAGES

from .selectors import COMPANY_ORDERINGS
from .serializers import CompanyUpdateSerializer

SORTABLE = ("score", "name", "members")


class CompanyFilterForm(forms.Form):
    """Search, stage and ordering of the companies table; an unknown value is reported and ignored."""

    search = forms.CharField(required=False, max_length=200)
    stage = forms.ChoiceField(required=False, choices=[("", "All stages"), *((stage, stage) for stage in STAGES)])
    ordering = forms.ChoiceField(
        required=False, choices=[(key, key) for key in COMPANY_ORDERINGS] + [(f"-{k}", k) for k in COMPANY_ORDERINGS]
    )

    def filters(self) -> dict[str, str]:
        data = self.cleaned_data if self.is_bound else {}
        return {name: data.get(name) or "" for name in ("search", "stage", "ordering")}

    def sort_links(self) -> dict[str, str]:
        """The ordering each sortable column header switches to: descending first (names: A first), then back."""
        current = self.filters()["ordering"] or "-score"
        links = {key: key if current == f"-{key}" else f"-{key}" for key in SORTABLE}
        links["name"] = "-name" if current == "name" else "name"
        return links


class CompanyUpdateForm(forms.Form):
    """A company's name and traits (a JSON object), checked by the API's own serializer (PATCH /api/companies/{id})."""

    name = forms.CharField(required=False, max_length=255)
    traits = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validated_data: dict[str, Any] = {}

    def clean_traits(self) -> Any:
        text = self.cleaned_data["traits"].strip() or "{}"
        try:
            return json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Must be JSON: {error}.") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        serializer = CompanyUpdateSerializer(data={"name": cleaned.get("name", ""), "traits": cleaned.get("traits")})
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
        else:
            for name, messages in serializer.errors.items():
                for message in messages if isinstance(messages, list) else [messages]:
                    self.add_error(name if name in self.fields else None, str(message))
        return cleaned


class CompanyMergeForm(forms.Form):
    """The company that survives a merge (its id, in the same project)."""

    into = forms.IntegerField(min_value=1, max_value=2**63 - 1, label="Merge into company #")
