"""The ingest shapes as the OpenAPI document describes them.

Ingest validates with the pure functions of `schema.py` (clients expect its messages); these
serializers only document what those functions accept and what the views answer.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.fields import json_value_schema
from core.openapi import ErrorSerializer

from .models import Event
from .schema import (
    EARLIEST_TIMESTAMP,
    EVENT_NAME_RE,
    MAX_EVENT_ID_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_PROPERTY_DEPTH,
    SEGMENT_TYPES,
)

NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f]*$"
MAX_EVENT_NAME_LENGTH = 128


# A client identifier: a string without control characters, or an integer stored as its text.
class IdentifierField(serializers.Field):
    def __init__(self, *, max_length: int = MAX_IDENTIFIER_LENGTH, **kwargs: Any):
        self.max_length = max_length
        super().__init__(**kwargs)


class IdentifierFieldExtension(OpenApiSerializerFieldExtension):
    target_class = IdentifierField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return identifier_schema(self.target.max_length, present=self.target.required)


def identifier_schema(max_length: int, *, present: bool) -> dict[str, Any]:
    """`present`: an empty string counts as missing, so a required identifier is not empty."""
    string = {"type": "string", "maxLength": max_length, "pattern": NO_CONTROL_CHARACTERS}
    if present:
        string["minLength"] = 1
    return {"anyOf": [string, {"type": "integer"}]}


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "number", "minimum": int(EARLIEST_TIMESTAMP.timestamp())},
            {"type": "string", "enum": [""]},
        ],
    }
)
class TimestampField(serializers.Field):
    pass


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JsonObjectField(serializers.JSONField):
    pass


# A credential, not data: any value other than a project's write key (a string of at most 128
# characters) is answered 401, and a body's key is not even read when the Basic-auth header has one.
@extend_schema_field({})
class WriteKeyField(serializers.JSONField):
    pass


WRITE_KEY_IN_BODY = (
    "The write key (`lp_pub_…`, at most 128 characters) when the Basic-auth header does not carry it "
    "(it is ignored when the header does); 401 when unknown."
)


def timestamp_field(help_text: str) -> TimestampField:
    return TimestampField(
        required=False,
        allow_null=True,
        help_text=f"{help_text} An ISO-8601 date-time (UTC when it names no offset) or epoch seconds "
        "(milliseconds above 10^11), from 2000-01-01 to at most a day ahead of the server's clock. "
        "Empty or null: the time of receipt.",
    )


PROPERTIES_COMPONENT = ResolvedComponent(
    name="IngestProperties",
    type=ResolvedComponent.SCHEMA,
    object="IngestProperties",
    schema={
        "type": "object",
        "additionalProperties": json_value_schema(MAX_PROPERTY_DEPTH - 1),
        "description": f"A JSON object nesting at most {MAX_PROPERTY_DEPTH} levels (a flat object is 1), "
        "with no NUL characters in its keys or strings.",
    },
)


class PropertiesField(serializers.JSONField):
    pass


class PropertiesFieldExtension(OpenApiSerializerFieldExtension):
    target_class = PropertiesField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        auto_schema.registry.register_on_missing(PROPERTIES_COMPONENT)
        return PROPERTIES_COMPONENT.ref


def properties_field(help_text: str) -> PropertiesField:
    return PropertiesField(required=False, allow_null=True, help_text=help_text)


def event_id_field(help_text: str) -> IdentifierField:
    return IdentifierField(
        max_length=MAX_EVENT_ID_LENGTH,
        required=False,
        allow_null=True,
        help_text=f"{help_text} A UUID is assigned when missing.",
    )


# Serializers whose request schema also needs one of several properties (`anyOf` of `required`).
class AnyOfRequired:
    openapi_any_of: tuple[str, ...] = ()


class AnyOfRequiredExtension(OpenApiSerializerExtension):
    target_class = AnyOfRequired
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request" and self.target.openapi_any_of:
            schema["anyOf"] = [
                {"required": [name], "properties": {name: identifier_schema(MAX_IDENTIFIER_LENGTH, present=True)}}
                for name in self.target.openapi_any_of
            ]
        return schema


# Our own shapes


@extend_schema_serializer(component_name="IngestSdkEvent")
class SdkEventSerializer(serializers.Serializer):
    apiKey = WriteKeyField(help_text="The project's write key (`lp_pub_…`, at most 128 characters); 401 when unknown.")
    event = serializers.RegexField(
        EVENT_NAME_RE.pattern,
        max_length=MAX_EVENT_NAME_LENGTH,
        help_text="The event name: 1-128 letters, digits, spaces, `_`, `.`, `:` or `-`. "
        "`identify` records an identify call.",
    )
    anonymousId = IdentifierField(help_text="The browser's anonymous id.")
    sessionId = IdentifierField(required=False, allow_null=True)
    eventId = event_id_field("Your id for the event; a repeated id is answered as a duplicate.")
    properties = properties_field("Event properties.")
    timestamp = timestamp_field("When it happened.")


@extend_schema_serializer(component_name="IngestServerEvent")
class ServerEventSerializer(serializers.Serializer):
    eventType = serializers.RegexField(
        EVENT_NAME_RE.pattern,
        max_length=MAX_EVENT_NAME_LENGTH,
        help_text="The event name: 1-128 letters, digits, spaces, `_`, `.`, `:` or `-`.",
    )
    leadId = IdentifierField(help_text="Your id for the person or device (the lead's anonymous id).")
    eventId = event_id_field("Your id for the event; a repeated id is answered as a duplicate.")
    properties = properties_field("Event properties.")
    timestamp = timestamp_field("When it happened.")


# A batch body: an object whose list field holds the items, or (`bare_array`) the list alone. Items
# are checked one by one: the ones that are not valid events are reported in `errors` by index and
# not stored, so any JSON value is accepted as an item; the schema names the shapes that are stored.
class ItemsOf(serializers.Serializer):
    list_field = "events"
    item: type[serializers.Serializer]
    item_union: tuple[type[serializers.Serializer], ...] = ()
    bare_array = False


class ItemsOfExtension(OpenApiSerializerExtension):
    target_class = ItemsOf
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        target = self.target
        schema = auto_schema._map_serializer(target, direction, bypass_extensions=True)
        shapes = [auto_schema.resolve_serializer(item, direction).ref for item in target.item_union or (target.item,)]
        items = {
            "anyOf": [
                *shapes,
                {"description": "Anything else is reported in `errors` by its index, and not stored."},
            ]
        }
        array = {
            "type": "array",
            "minItems": 1,
            "items": items,
            # no maxItems: more items are refused with 413, which fuzzers do not expect for a schema violation
            "description": f"1-{settings.LEADPULSE_MAX_BATCH_EVENTS} items; more is refused with 413.",
        }
        schema["properties"][target.list_field] = array
        if direction == "request" and target.bare_array:
            return {"oneOf": [schema, array]}
        return schema


@extend_schema_serializer(component_name="IngestServerBatch")
class ServerBatchSerializer(ItemsOf):
    list_field = "events"
    item = ServerEventSerializer
    bare_array = True

    events = serializers.ListField()


class BatchErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, help_text="The item's position in the batch.")
    field = serializers.CharField(help_text="The rejected field of the item (`body` for the item as a whole).")
    message = serializers.CharField()


@extend_schema_serializer(component_name="IngestBatchResult")
class BatchResultSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, help_text="Items received.")
    accepted = serializers.IntegerField(min_value=0, help_text="Events stored.")
    duplicates = serializers.IntegerField(
        min_value=0, help_text="Valid events not stored again: their id was seen before (or earlier in the batch)."
    )
    errors = BatchErrorSerializer(  # type: ignore[assignment]  # shadows `Serializer.errors` on the class only
        many=True, help_text="The items that were not valid, by index."
    )


@extend_schema_serializer(component_name="IngestBatchRejected")
class BatchRejectedSerializer(ErrorSerializer):
    """The error shape; when the batch itself was read, the counts are there too."""

    count = serializers.IntegerField(required=False, min_value=1)
    accepted = serializers.IntegerField(required=False, min_value=0, max_value=0)
    duplicates = serializers.IntegerField(required=False, min_value=0, max_value=0)
    errors = BatchErrorSerializer(many=True, required=False)  # type: ignore[assignment]


@extend_schema_serializer(component_name="IngestSdkQueued")
class SdkQueuedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued"])
    eventId = serializers.CharField()


@extend_schema_serializer(component_name="IngestSdkDuplicate")
class SdkDuplicateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["duplicate"])
    eventId = serializers.CharField()


@extend_schema_serializer(component_name="IngestServerQueued")
class ServerQueuedSerializer(serializers.Serializer):
    message = serializers.ChoiceField(choices=["Event queued"])
    eventId = serializers.CharField()


@extend_schema_serializer(component_name="IngestServerDuplicate")
class ServerDuplicateSerializer(serializers.Serializer):
    message = serializers.ChoiceField(choices=["Duplicate event ignored"])
    status = serializers.CharField(help_text="Always `duplicate`.")
    eventId = serializers.CharField()


# Segment's tracking API


# The fields every Segment call shares.
class SegmentMessageSerializer(AnyOfRequired, serializers.Serializer):
    openapi_any_of: tuple[str, ...] = ("anonymousId", "userId")

    userId = IdentifierField(required=False, allow_null=True, help_text="Your id for the known user.")
    anonymousId = IdentifierField(
        required=False, allow_null=True, help_text="The device's anonymous id; this or `userId` is required."
    )
    messageId = event_id_field("The message's unique id; a repeated id is answered with `duplicate: true`.")
    timestamp = timestamp_field("When it happened.")
    sentAt = timestamp_field(
        "When the client sent it: with `timestamp`, the client's clock skew is removed "
        "(`timestamp := receivedAt - (sentAt - timestamp)`), which must land in the same window."
    )
    context = JsonObjectField(  # type: ignore[assignment]
        required=False, allow_null=True, help_text="Segment's context object (no NUL characters)."
    )
    properties = properties_field("Call properties.")


class SegmentTrackSerializer(SegmentMessageSerializer):
    event = serializers.RegexField(
        r"^[^\x00-\x1f\x7f-\x9f]+$",
        max_length=MAX_EVENT_NAME_LENGTH,
        help_text="The event name: 1-128 printable characters (Python's `str.isprintable`).",
    )


class SegmentPageSerializer(SegmentMessageSerializer):
    name = IdentifierField(required=False, allow_null=True, help_text="The page's name (stored in properties).")
    category = IdentifierField(required=False, allow_null=True, help_text="The page's category.")


class SegmentIdentifySerializer(SegmentMessageSerializer):
    traits = properties_field("The user's traits (or `context.traits`).")


class SegmentGroupSerializer(SegmentIdentifySerializer):
    groupId = IdentifierField(help_text="The group (account) id.")


class SegmentAliasSerializer(SegmentMessageSerializer):
    openapi_any_of = ()

    anonymousId = None  # type: ignore[assignment]  # alias takes the device id from `previousId`
    userId = IdentifierField(help_text="The new id.")
    previousId = IdentifierField(help_text="The id merged into `userId` (usually the anonymous id).")


SEGMENT_MESSAGES: dict[str, type[SegmentMessageSerializer]] = {
    "track": SegmentTrackSerializer,
    "page": SegmentPageSerializer,
    "screen": SegmentPageSerializer,
    "identify": SegmentIdentifySerializer,
    "group": SegmentGroupSerializer,
    "alias": SegmentAliasSerializer,
}
assert set(SEGMENT_MESSAGES) == set(SEGMENT_TYPES)


def _segment_call(call: str) -> type[serializers.Serializer]:
    fields = {
        "type": serializers.JSONField(required=False, help_text="Ignored: the path names the call."),
        "writeKey": WriteKeyField(required=False, help_text=WRITE_KEY_IN_BODY),
    }
    cls = type(f"Segment{call.title()}Serializer", (SEGMENT_MESSAGES[call],), fields)
    return extend_schema_serializer(component_name=f"Segment{call.title()}")(cls)


def _segment_batch_item(call: str) -> type[serializers.Serializer]:
    fields = {"type": serializers.ChoiceField(choices=[call], help_text="The call.")}
    cls = type(f"SegmentBatch{call.title()}Serializer", (SEGMENT_MESSAGES[call],), fields)
    return extend_schema_serializer(component_name=f"SegmentBatch{call.title()}")(cls)


SEGMENT_CALL_REQUESTS = {call: _segment_call(call) for call in SEGMENT_TYPES}
SEGMENT_BATCH_ITEMS = tuple(_segment_batch_item(call) for call in SEGMENT_TYPES)


@extend_schema_serializer(component_name="SegmentBatch")
class SegmentBatchSerializer(ItemsOf):
    list_field = "batch"
    item_union = SEGMENT_BATCH_ITEMS

    batch = serializers.ListField()
    sentAt = timestamp_field("When the client sent the batch; the default of each message's `sentAt`.")
    writeKey = WriteKeyField(required=False, help_text=WRITE_KEY_IN_BODY)


@extend_schema_serializer(component_name="SegmentCallResult")
class SegmentCallResultSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")
    messageId = serializers.CharField(help_text="The message's id (assigned when it had none).")
    duplicate = serializers.BooleanField(help_text="The id was seen before: nothing was stored.")


@extend_schema_serializer(component_name="SegmentBatchResult")
class SegmentBatchResultSerializer(BatchResultSerializer):
    success = serializers.BooleanField(help_text="Always true.")


@extend_schema_serializer(component_name="SegmentBatchRejected")
class SegmentBatchRejectedSerializer(BatchRejectedSerializer):
    success = serializers.BooleanField(required=False, help_text="False when the batch itself was read.")


# The event log


@extend_schema_serializer(component_name="IngestEvent")
class EventSerializer(serializers.ModelSerializer):
    eventId = serializers.CharField(source="event_id")
    eventType = serializers.CharField(source="name")
    leadId = serializers.IntegerField(source="lead_id")
    anonymousId = serializers.CharField(source="anonymous_id")
    userId = serializers.CharField(source="user_id", help_text="Empty for anonymous events.")
    receivedAt = serializers.DateTimeField(source="received_at")
    processedAt = serializers.DateTimeField(
        source="processed_at", allow_null=True, help_text="When scoring folded it in; null until then."
    )
    properties = JsonObjectField()

    class Meta:
        model = Event
        fields = [
            "eventId",
            "eventType",
            "type",
            "leadId",
            "anonymousId",
            "userId",
            "timestamp",
            "receivedAt",
            "processedAt",
            "properties",
        ]
