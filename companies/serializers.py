"""The companies API's shapes (camelCase on the wire): strict request bodies, documented responses."""

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.fields import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    traits_clean,
    traits_schema,
)
from scoring.contracts import CONDITION_SCHEMA, MAX_CONDITIONS, STAGES, conditions_clean

TRAITS_SCHEMA = traits_schema("The company's traits (industry, employees, plan …)")
MAX_FIT_RULES = 50


@extend_schema_field(TRAITS_SCHEMA)
class TraitsField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return traits_clean(data)


@extend_schema_serializer(component_name="CompanyUpdate")
class CompanyUpdateSerializer(StrictSerializer):
    """What a person may change on a company; anything else (key, domain, scores, members) is refused."""

    name = StrictCharField(max_length=255, allow_blank=True, trim_whitespace=True)
    traits = TraitsField()


@extend_schema_serializer(component_name="CompanyMerge")
class CompanyMergeSerializer(StrictSerializer):
    into = StrictIntegerField(min_value=1, help_text="The id of the company that survives (same project).")


# --- Responses -----------------------------------------------------------------------------------------------------


class CompanyBreakdownSerializer(serializers.Serializer):
    """`companies.rollup.CompanyResult.to_json()`: where a company's score comes from."""

    score = serializers.IntegerField()
    stage = serializers.ChoiceField(choices=STAGES)
    top = serializers.IntegerField(help_text="The sum of the best `topN` members' scores.")
    breadth = serializers.IntegerField(help_text="`breadthPoints` per engaged member, at most `breadthCap` of them.")
    fit = serializers.IntegerField(help_text="The points of the company fit rules that hold on its traits.")
    engaged = serializers.IntegerField(help_text="Members at or above warm and active within `windowDays`.")
    fitApplied = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="[fit rule number (1-based, in the settings' order), points] of each fit rule that applied.",
    )
    contributions = serializers.DictField(
        child=serializers.IntegerField(), help_text="Lead id → the points it gives (top and breadth)."
    )
    movedBy = serializers.IntegerField(
        allow_null=True, help_text="The member whose contribution changed most in the last recompute."
    )


class _ScoredCompanySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField(help_text="What leads are keyed to it by: a domain, or `group:<id>`.")
    name = serializers.SerializerMethodField()
    domain = serializers.CharField()
    score = serializers.IntegerField(help_text="Under the `?model=` scoring model (default: the primary one).")
    stage = serializers.ChoiceField(choices=STAGES)
    members = serializers.IntegerField(source="member_count")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    def get_name(self, company: Any) -> str:
        return company.name or company.key


@extend_schema_serializer(component_name="Company")
class CompanySerializer(_ScoredCompanySerializer):
    pass


class CompanyModelScoreSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="A scoring model's key.")
    primary = serializers.BooleanField()
    score = serializers.IntegerField()
    stage = serializers.ChoiceField(choices=STAGES)
    breakdown = CompanyBreakdownSerializer(allow_null=True)
    updatedAt = serializers.DateTimeField(allow_null=True)


class CompanyMemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    anonymousId = serializers.CharField(source="anonymous_id")
    email = serializers.CharField()
    name = serializers.CharField()
    score = serializers.IntegerField(source="member_score", help_text="Under the `?model=` scoring model.")
    stage = serializers.ChoiceField(source="member_stage", choices=STAGES)
    lastEventAt = serializers.DateTimeField(source="last_event_at", allow_null=True)


@extend_schema_serializer(component_name="CompanyDetail")
class CompanyDetailSerializer(_ScoredCompanySerializer):
    model = serializers.CharField(help_text="The key of the scoring model `score`, `stage`, `breakdown` are under.")
    traits = serializers.DictField(child=serializers.JSONField())
    mergedIds = serializers.ListField(
        child=serializers.IntegerField(), help_text="Companies merged into this one (their ids lead here)."
    )
    breakdown = CompanyBreakdownSerializer(allow_null=True, help_text="Null until first rolled up under the model.")
    scores = CompanyModelScoreSerializer(many=True, help_text="The company's result under every model.")
    topMembers = CompanyMemberSerializer(many=True, help_text="Its members, best first (at most 200).")


# --- Roll-up settings ----------------------------------------------------------------------------------------------


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_CONDITIONS, "items": CONDITION_SCHEMA})
class FitConditionsField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        cleaned, errors = conditions_clean(data)
        if errors:
            raise serializers.ValidationError(errors.get("conditions", errors))
        if not cleaned:
            raise serializers.ValidationError("A fit rule needs at least one condition.")
        return cleaned


class CompanyFitRuleSerializer(StrictSerializer):
    name = StrictCharField(max_length=200, allow_blank=True, required=False, default="")
    points = StrictIntegerField(min_value=-10000, max_value=10000)
    conditions = FitConditionsField(
        help_text="Conditions on the company's traits (`industry`, `employees`, `plan` …), as scoring rules take."
    )

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # lift "conditions[0].op" out of the nested dict so the error names the exact field
            detail = exc.detail
            if isinstance(detail, dict) and isinstance(detail.get("conditions"), dict):
                nested: dict = detail.pop("conditions")  # type: ignore[assignment]
                detail.update(nested)
            raise serializers.ValidationError(detail) from exc


class CompanyThresholdsSerializer(StrictSerializer):
    warm = StrictIntegerField(min_value=1, max_value=1_000_000)
    hot = StrictIntegerField(min_value=2, max_value=1_000_000)
    qualified = StrictIntegerField(min_value=3, max_value=1_000_000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["warm"] < attrs["hot"] < attrs["qualified"]:
            raise serializers.ValidationError({"hot": ["Thresholds must rise: warm < hot < qualified."]})
        return attrs


@extend_schema_serializer(component_name="CompanyRollupSettings")
class CompanyRollupSettingsSerializer(StrictSerializer):
    """A scoring model's company roll-up: score = top + breadth + fit, clamped to the model's range."""

    model = serializers.CharField(source="model.key", read_only=True, help_text="The scoring model's key.")
    topN = StrictIntegerField(source="top_n", min_value=0, max_value=100, help_text="Members summed (best first).")
    breadthPoints = StrictIntegerField(
        source="breadth_points", min_value=-10000, max_value=10000, help_text="Points per engaged member."
    )
    breadthCap = StrictIntegerField(
        source="breadth_cap", min_value=0, max_value=1000, help_text="Engaged members counted at most."
    )
    windowDays = StrictIntegerField(
        source="window_days", min_value=1, max_value=3650, help_text="Engaged: warm or better, active this recently."
    )
    fitRules = CompanyFitRuleSerializer(  # type: ignore[call-arg]  # ListSerializer's, which the stubs miss
        source="fit_rules", many=True, max_length=MAX_FIT_RULES, required=False, default=list,
        help_text=f"Company fit rules (at most {MAX_FIT_RULES}), each applying once. Left out: none.",
    )  # fmt: skip
    thresholds = CompanyThresholdsSerializer(
        allow_null=True, required=False, default=None,
        help_text="The companies' own stage thresholds; null (or left out): the scoring model's.",
    )  # fmt: skip
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        values = super().to_internal_value(data)
        thresholds = values.pop("thresholds", None) or {}
        for name in ("warm", "hot", "qualified"):
            values[f"{name}_threshold"] = thresholds.get(name)
        return values
