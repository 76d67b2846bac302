from django import forms

from .models import Outcome
from .services import REASON_MAX_LENGTH


class OutcomeForm(forms.Form):
    """The lead page's outcome form (`at` as the browser's datetime-local, taken as UTC)."""

    outcome = forms.ChoiceField(choices=Outcome.Kind.choices)
    value = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=2)
    at = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "iso-8601"])
    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH)
