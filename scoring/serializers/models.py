"""Scoring models on the wire."""

import re
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField, StrictSerializer

from ..models import ScoringModel
from .common import openapi_patch

KEY_PATTERN = r"^[a-z0-9][a-z0-9-_]{0,49}$"


class ModelSettingsSerializer(StrictSerializer):
    """A model's thresholds, score range and decay (each optional on a write: the others stay)."""

    warmThreshold = StrictIntegerField(source="warm_threshold", min_value=1, required=False)
    hotThreshold = StrictIntegerField(source="hot_threshold", min_value=2, required=False)
    qualifiedThreshold = StrictIntegerField(source="qualified_threshold", min_value=3, required=False)
    maxScore = StrictIntegerField(source="max_score", min_value=3, max_value=1_000_000, required=False)
    decayEnabled = StrictBooleanField(source="decay_enabled", required=False)
    decayRatePercent = StrictFloatField(source="decay_rate_percent", min_value=0, max_value=100, required=False)
    decayGraceDays = StrictIntegerField(source="decay_grace_days", min_value=0, max_value=365, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        base = self.instance or ScoringModel()
        merged = {name: attrs.get(name, getattr(base, name)) for name in (
            "warm_threshold", "hot_threshold", "qualified_threshold", "max_score")}  # fmt: skip
        if (
            not merged["warm_threshold"]
            < merged["hot_threshold"]
            < merged["qualified_threshold"]
            <= merged["max_score"]
        ):
            raise serializers.ValidationError(
                {"hotThreshold": ["Thresholds must rise: warm < hot < qualified <= maxScore."]}
            )
        return attrs


@extend_schema_serializer(component_name="ScoringModel")
class ScoringModelSerializer(ModelSettingsSerializer):
    key = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    isPrimary = serializers.BooleanField(source="is_primary", read_only=True)
    ruleCount = serializers.IntegerField(source="rule_count", read_only=True, default=None, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)


@extend_schema_serializer(component_name="ScoringModelCreate")
@openapi_patch(request={"key": {"pattern": KEY_PATTERN}})
class ScoringModelCreateSerializer(ModelSettingsSerializer):
    key = StrictCharField(
        max_length=50, help_text="Lowercase letters, digits, - and _; unique in the project; used in ?model=."
    )
    name = StrictCharField(max_length=200)
    description = StrictCharField(max_length=2000, required=False, allow_blank=True)
    copyFrom = StrictCharField(
        max_length=50, required=False, help_text="The key of a model whose rules and settings to start from."
    )

    def validate_key(self, value: str) -> str:
        if not re.fullmatch(KEY_PATTERN, value):
            raise serializers.ValidationError("Lowercase letters, digits, - and _, starting with a letter or digit.")
        return value


@extend_schema_serializer(component_name="ScoringModelUpdate")
class ScoringModelUpdateSerializer(ModelSettingsSerializer):
    name = StrictCharField(max_length=200, required=False)
    description = StrictCharField(max_length=2000, required=False, allow_blank=True)
