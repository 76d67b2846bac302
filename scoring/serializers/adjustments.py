"""Manual adjustments on the wire: the request, one adjustment, and how timelines and breakdowns show one."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.fields import NOT_BLANK_NO_NUL, StrictCharField, StrictIntegerField, StrictSerializer

from ..services.adjustments import ADJUSTMENT_POINTS_MAX, REASON_MAX_LENGTH
from .common import enum_field, openapi_patch


@extend_schema_serializer(component_name="LeadAdjustmentRequest")
@openapi_patch(
    request={"reason": {"pattern": NOT_BLANK_NO_NUL}, "points": {"not": {"enum": [0]}}},
    create=(
        "LeadAdjustmentCreate",
        [
            {"title": "points", "required": ["points"], "not": {"required": ["setTo"]}},
            {"title": "setTo", "required": ["setTo"], "not": {"required": ["points"]}},
        ],
    ),
)
class AdjustmentCreateSerializer(StrictSerializer):
    points = StrictIntegerField(
        required=False, min_value=-ADJUSTMENT_POINTS_MAX, max_value=ADJUSTMENT_POINTS_MAX,
        help_text="Points to add (negative: subtract) to the engagement score; not 0. Exactly one of points and setTo.",
    )  # fmt: skip
    setTo = StrictIntegerField(
        required=False, min_value=0, max_value=ADJUSTMENT_POINTS_MAX,
        help_text="Set the engagement score to this (the fit still adds to it); 0 resets it.",
    )  # fmt: skip
    reason = StrictCharField(max_length=REASON_MAX_LENGTH, help_text="Why: kept in the lead's log and shown with it.")
    model = StrictCharField(
        required=False, max_length=64,
        help_text="The key of the scoring model to adjust (default: the primary model), stored as it is now.",
    )  # fmt: skip


@extend_schema_serializer(component_name="LeadAdjustmentAuthor")
class AdjustmentAuthorSerializer(serializers.Serializer):
    type = enum_field("LeadAdjustmentAuthorType", ["user", "key"], help_text="A person or a secret key.")
    id = serializers.IntegerField()
    label = serializers.CharField(help_text="The person's email, or the key's name.")  # type: ignore[assignment]  # a field, not Field.label


@extend_schema_serializer(component_name="LeadAdjustmentSummary")
class AdjustmentSummarySerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The key of the model it adjusts.")
    points = serializers.IntegerField(allow_null=True)
    setTo = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    author = AdjustmentAuthorSerializer()
    label = serializers.CharField(help_text="As people read it: `Manual -20 by ana@example.com: disqualified`.")  # type: ignore[assignment]


@extend_schema_serializer(component_name="LeadAdjustment")
class AdjustmentSerializer(AdjustmentSummarySerializer):
    eventId = serializers.CharField(help_text="The adjustment's event in the lead's log.")
    timestamp = serializers.DateTimeField()
    scored = serializers.BooleanField(help_text="False until folded (moments later, when a worker held the lead).")
    scoreDelta = serializers.IntegerField(allow_null=True, help_text="Its model's score change; null until scored.")
    newScore = serializers.IntegerField(allow_null=True, help_text="Its model's score after it; null until scored.")
