"""Scoring models on the wire."""

import re
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.fields import StrictCharField

from .common import openapi_patch
from .rules import ScoringSettingsSerializer

KEY_PATTERN = r"^[a-z0-9][a-z0-9-_]{0,49}$"


class ModelSettingsSerializer(ScoringSettingsSerializer):
    """A model's thresholds, score range and decay, each optional (on a write, the others stay as they are)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ScoringSettingsSerializer._declared_fields:
            self.fields[name].required = False


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
