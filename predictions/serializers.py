"""Outcomes and prediction settings on the wire (camelCase; request bodies refuse unknown fields and wrong types)."""

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.errors import ApplicationError
from core.fields import StrictCharField, StrictIntegerField, StrictSerializer

from .models import Outcome
from .services import BULK_MAX_ITEMS, REASON_MAX_LENGTH, VALUE_MAX, OutcomeInput, lead_ref, outcome_input_check

VALUE_SCHEMA = {"type": "number", "minimum": 0, "maximum": float(VALUE_MAX)}


@extend_schema_field(VALUE_SCHEMA)
class StrictValueField(serializers.Field):
    """A JSON number from 0 (kept to the cent); never a string or a boolean. Checked by the service."""

    default_error_messages = {"invalid": "Must be a number."}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return float(value)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time as a JSON string (never a number)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        return super().to_internal_value(value)


OUTCOME_CHOICES = Outcome.Kind.values


@extend_schema_field({"type": "string", "enum": OUTCOME_CHOICES})
class OutcomeKindField(serializers.ChoiceField):
    """won or lost (documented inline: no enum component of its own to collide with another app's)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=OUTCOME_CHOICES, **kwargs)


@extend_schema_field({"type": "string", "enum": Outcome.Source.values})
class OutcomeSourceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Outcome.Source.values, **kwargs)


@extend_schema_field({"type": "string", "enum": ["user", "key"]})
class AuthorTypeField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=["user", "key"], **kwargs)


@extend_schema_serializer(component_name="OutcomeCreate")
class OutcomeCreateSerializer(StrictSerializer):
    outcome = OutcomeKindField(help_text="won or lost.")
    value = StrictValueField(required=False, allow_null=True, help_text="The deal's value (kept to the cent).")
    at = StrictDateTimeField(
        required=False, allow_null=True, help_text="When it was won or lost (default now); 2000-01-01 to a day ahead."
    )
    reason = StrictCharField(
        required=False, allow_blank=True, max_length=REASON_MAX_LENGTH, help_text="Why, in words (optional)."
    )


@extend_schema_serializer(component_name="OutcomeBulkItem")
class OutcomeItemSerializer(OutcomeCreateSerializer):
    leadId = StrictIntegerField(required=False, min_value=1, help_text="The lead's id.")
    email = StrictCharField(required=False, max_length=255, help_text="The lead's email (case-insensitive).")
    userId = StrictCharField(required=False, max_length=255, help_text="The lead's external id (Segment `userId`).")


@extend_schema_field(OutcomeItemSerializer)
class OutcomeItemField(serializers.Field):
    """A bulk item, passed on as sent: items are checked one by one (`OutcomeItemSerializer`), so a bad one is
    reported by its index instead of failing the whole request."""

    def to_internal_value(self, data: Any) -> Any:
        return data


@extend_schema_serializer(component_name="OutcomeBulk")
class OutcomeBulkSerializer(StrictSerializer):
    outcomes = serializers.ListField(
        child=OutcomeItemField(), min_length=1, max_length=BULK_MAX_ITEMS,
        help_text=f"1-{BULK_MAX_ITEMS} items, each naming its lead by exactly one of leadId, email and userId.",
    )  # fmt: skip


@extend_schema_serializer(component_name="OutcomeUpload")
class OutcomeUploadJsonSerializer(StrictSerializer):
    csv = StrictCharField(
        max_length=2 * 1024 * 1024,
        help_text="The CSV text: a header row (email|userId|leadId, outcome, value, at, reason), then a row per lead.",
    )


@extend_schema_serializer(component_name="OutcomeUploadForm")
class OutcomeUploadFormSerializer(StrictSerializer):
    file = serializers.FileField(help_text="A CSV file (UTF-8), at most 2 MB: as `csv` in the JSON body.")


@extend_schema_serializer(component_name="OutcomeAuthor")
class AuthorSerializer(serializers.Serializer):
    type = AuthorTypeField()
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label


@extend_schema_serializer(component_name="Outcome")
class OutcomeSerializer(serializers.Serializer):
    leadId = serializers.IntegerField(source="lead_id")
    outcome = OutcomeKindField()
    value = StrictValueField(allow_null=True)
    at = serializers.DateTimeField(source="occurred_at")
    reason = serializers.CharField()
    source = OutcomeSourceField()  # type: ignore[assignment]  # a field, not Field.source
    author = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at", help_text="When it was recorded.")

    @extend_schema_field(AuthorSerializer(allow_null=True))
    def get_author(self, outcome: Outcome) -> dict[str, Any] | None:
        if outcome.author is not None:
            return {"type": "user", "id": outcome.author.id, "label": outcome.author.email}
        if outcome.api_key is not None:
            return {"type": "key", "id": outcome.api_key.id, "label": f"secret key {outcome.api_key.prefix}…"}
        return None


@extend_schema_serializer(component_name="OutcomeListItem")
class OutcomeListItemSerializer(OutcomeSerializer):
    email = serializers.CharField(source="lead.email")
    anonymousId = serializers.CharField(source="lead.anonymous_id")


@extend_schema_serializer(component_name="OutcomeBulkError")
class BulkErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's index (a CSV's data row: 0 is the row below the header).")
    row = serializers.IntegerField(required=False, help_text="CSV: the line of the file (the header is line 1).")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


@extend_schema_serializer(component_name="OutcomeBulkStored")
class BulkStoredSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    outcome = OutcomeSerializer()


@extend_schema_serializer(component_name="OutcomeBulkResult")
class BulkResultSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Items (or CSV rows) received.")
    stored = serializers.IntegerField(help_text="Outcomes stored.")
    results = BulkStoredSerializer(many=True)
    errors = BulkErrorSerializer(many=True)  # type: ignore[assignment]  # a field, not Serializer.errors


@extend_schema_field({"type": "string", "maxLength": 128, "pattern": r"^[A-Za-z0-9_ .:\-]{0,128}$"})
class EventNameField(StrictCharField):
    """An event name ingest accepts, or "" (documented as such: the service checks it once trimmed)."""


@extend_schema_serializer(component_name="PredictionSettings")
class PredictionSettingsSerializer(StrictSerializer):
    wonEventType = EventNameField(
        source="won_event_type", allow_blank=True, max_length=128,
        help_text='An event of this type records the lead as won at its time (default `contract_signed`; "": none).',
    )  # fmt: skip


def _first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a DRF error detail."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        return _first_error(value, f"{path}.{key}".lstrip("."))
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], path)
    return path, str(detail)


def bulk_item_parse(item: Any) -> tuple[tuple[str, Any], OutcomeInput] | ApplicationError:
    """A bulk item as `outcomes_record` takes it (its lead and outcome), or the error naming its first bad field."""
    if not isinstance(item, dict):
        return ApplicationError("Must be an object.")
    serializer = OutcomeItemSerializer(data=item)
    if not serializer.is_valid():
        field, message = _first_error(serializer.errors)
        return ApplicationError(message, field=field or None)
    data = dict(serializer.validated_data)
    try:
        ref = lead_ref(data)
        return ref, outcome_input_check(
            outcome=data["outcome"], value=data.get("value"), at=data.get("at"), reason=data.get("reason", "")
        )
    except ApplicationError as error:
        return error
