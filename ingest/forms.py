"""Forms of the ingest dashboard pages."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from .schema import CanonicalEvent, SchemaError, event_from_segment

# Segment message keys → the simulator field that produced them.
SEGMENT_FIELDS = {
    "event": "event_type",
    "anonymousId": "anonymous_id",
    "userId": "user_id",
    "messageId": "event_id",
    "properties": "properties",
    "traits": "email",
    "body": "properties",
}


class SimulatorForm(forms.Form):
    event_type = forms.CharField(max_length=128, label="Event type")
    anonymous_id = forms.CharField(max_length=255, label="Anonymous id", initial="sim-visitor-1")
    user_id = forms.CharField(max_length=255, required=False, label="User id")
    email = forms.EmailField(max_length=254, required=False)
    identify = forms.BooleanField(required=False, label="Also identify with this email (traits.email)")
    event_id = forms.CharField(max_length=128, required=False, label="Event id (optional; repeats are duplicates)")
    properties = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, initial="{}")

    def clean_properties(self) -> dict[str, Any]:
        raw = self.cleaned_data["properties"].strip() or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Malformed JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def clean(self) -> dict[str, Any]:
        """Validate through the Segment schema, so the simulator accepts exactly what ingest accepts."""
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        if data.get("identify") and not data.get("email"):
            self.add_error("email", "Give the email to identify with.")
            return data
        identity = {"anonymousId": data["anonymous_id"], "userId": data.get("user_id") or None}
        messages: list[tuple[str, dict[str, Any]]] = []
        if data.get("identify"):
            messages.append(("identify", {**identity, "traits": {"email": data["email"]}}))
        track = {**identity, "event": data["event_type"], "properties": data["properties"]}
        if data.get("event_id"):
            track["messageId"] = data["event_id"]
        messages.append(("track", track))
        events: list[CanonicalEvent] = []
        now = timezone.now()
        limit = settings.LEADPULSE_MAX_EVENT_BYTES
        for call_type, message in messages:
            try:
                events.append(event_from_segment(message, call_type=call_type, received_at=now, max_event_bytes=limit))
            except SchemaError as exc:
                self.add_error(SEGMENT_FIELDS.get(exc.field or ""), exc.message)
                return data
        data["events"] = events
        return data


class RotateKeyForm(forms.Form):
    confirm = forms.BooleanField(
        label="I understand the current key stops working at once", error_messages={"required": "Tick to confirm."}
    )
