"""Rule-set versions and drafts on the wire: a document is the settings and the whole rule list of a model."""

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.fields import StrictCharField, StrictIntegerField, StrictSerializer

from ..models import RuleSetDraft, RuleSetVersion
from ..services.versions import RULE_DEFAULTS
from .rules import RuleSerializer, ScoringSettingsSerializer


@extend_schema_serializer(component_name="ScoringRuleSetRule")
class DocumentRuleSerializer(RuleSerializer):
    """A rule of a draft or version: `id` names the live rule it is (absent: a new rule)."""

    id = StrictIntegerField(required=False, min_value=1, help_text="The live rule this is; absent for a new one.")

    class Meta(RuleSerializer.Meta):
        read_only_fields: list[str] = []


@extend_schema_serializer(component_name="ScoringRuleSetDocument")
class DocumentSerializer(StrictSerializer):
    settings = ScoringSettingsSerializer()
    rules = DocumentRuleSerializer(many=True, help_text="The model's whole rule list.")

    def validate_rules(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [rule["id"] for rule in value if "id" in rule]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("A rule id appears twice.")
        if len(value) > 1000:
            raise serializers.ValidationError("At most 1000 rules.")
        return value

    def document(self) -> dict[str, Any]:
        """The validated document as stored (model field names; every rule field present)."""
        data = self.validated_data
        return {
            "settings": dict(data["settings"]),
            "rules": [{**RULE_DEFAULTS, **rule} for rule in data["rules"]],
        }


@extend_schema_serializer(component_name="ScoringRuleSetVersion")
class VersionSerializer(serializers.ModelSerializer):
    author = serializers.EmailField(source="author.email", allow_null=True, default=None)
    createdAt = serializers.DateTimeField(source="created_at")
    isLive = serializers.SerializerMethodField()

    class Meta:
        model = RuleSetVersion
        fields = ["number", "author", "note", "createdAt", "isLive"]

    def get_isLive(self, version: RuleSetVersion) -> bool:
        return version.number == version.model.version


@extend_schema_serializer(component_name="ScoringRuleSetVersionDetail")
class VersionDetailSerializer(VersionSerializer):
    document = DocumentSerializer()

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "document"]


@extend_schema_serializer(component_name="ScoringRuleSetDraft")
class DraftSerializer(serializers.ModelSerializer):
    baseVersion = serializers.IntegerField(source="base_version")
    author = serializers.EmailField(source="author.email", allow_null=True, default=None)
    updatedAt = serializers.DateTimeField(source="updated_at")
    document = DocumentSerializer()

    class Meta:
        model = RuleSetDraft
        fields = ["baseVersion", "author", "updatedAt", "document"]


@extend_schema_serializer(component_name="ScoringRuleSetPublish")
class PublishSerializer(StrictSerializer):
    note = StrictCharField(max_length=500, required=False, allow_blank=True)


@extend_schema_serializer(component_name="ScoringRuleSetDiff")
class DiffSerializer(serializers.Serializer):
    settings = serializers.DictField(child=serializers.DictField(), help_text="field: {from, to}, changed ones only")
    added = DocumentRuleSerializer(many=True)
    removed = DocumentRuleSerializer(many=True)
    changed = serializers.ListField(
        child=serializers.DictField(), help_text="[{id, fields: {field: {from, to}}}] for rules in both"
    )
