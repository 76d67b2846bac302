import json
from typing import Any

from django.http import StreamingHttpResponse
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from ingest.services import lead_create
from leadpulse.api import ProjectApiView
from leadpulse.errors import ApplicationError

from .models import ScoreHistory, ScoringRule
from .selectors import (
    lead_export,
    lead_get,
    lead_history_for_project,
    lead_intelligence,
    lead_score_breakdown,
    lead_stage_counts,
    lead_timeline,
    leaderboard,
    leads_export_csv,
    leads_for_project,
    project_dashboard,
    rescore_job_get,
    rule_get,
    rules_for_project,
    rules_preview_proposed,
)
from .serializers import (
    LeadSerializer,
    PreviewSerializer,
    RescoreJobSerializer,
    RuleSerializer,
    ScoringSettingsSerializer,
)
from .services import lead_erase, lead_update, rule_create, rule_delete, rule_update, scoring_settings_update


class LeadPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500


class LeadCreateSerializer(serializers.Serializer):
    anonymousId = serializers.CharField(max_length=255)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    company = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


TRAITS_MAX_BYTES = 32 * 1024
TRAITS_MAX_DEPTH = 5


def json_shape(value: Any) -> tuple[int, bool]:
    """How deeply objects and arrays nest in a JSON value (a flat object is 1), and whether a NUL occurs.

    Iterative, so a hostile nesting cannot exhaust the stack.
    """
    depth, nul = 0, False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            depth = max(depth, level + 1)
            nul = nul or any("\x00" in key for key in item)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            depth = max(depth, level + 1)
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            nul = nul or "\x00" in item
    return depth, nul


class LeadUpdateSerializer(serializers.Serializer):
    """The fields a person may change on a lead; anything else (scores, ids, project) is rejected."""

    email = serializers.EmailField(max_length=254, allow_blank=True)
    name = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=True)
    company = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=True)
    traits = serializers.JSONField()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                # mass assignment is refused, not silently ignored
                raise serializers.ValidationError({field: ["This field cannot be changed."] for field in unknown})
        return super().to_internal_value(data)

    def validate_email(self, value: str) -> str:
        return value.lower()

    def validate_traits(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        depth, nul = json_shape(value)
        if depth > TRAITS_MAX_DEPTH:
            raise serializers.ValidationError(f"Must nest at most {TRAITS_MAX_DEPTH} levels deep.")
        if nul:
            raise serializers.ValidationError("Must not contain NUL characters.")  # PostgreSQL's jsonb refuses them
        try:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        except UnicodeEncodeError:
            raise serializers.ValidationError("Must be valid Unicode.") from None
        if size > TRAITS_MAX_BYTES:
            raise serializers.ValidationError(f"Must be at most {TRAITS_MAX_BYTES} bytes as JSON.")
        return value


class LeadListApi(ProjectApiView):
    def post(self, request):
        serializer = LeadCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lead, created = lead_create(
            project_id=self.project.id,
            anonymous_id=data["anonymousId"],
            email=data["email"].lower(),
            name=data["name"],
            company=data["company"],
        )
        return Response(LeadSerializer(lead).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def get(self, request):
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
        )
        paginator = LeadPagination()
        page = paginator.paginate_queryset(leads, request, view=self)
        return paginator.get_paginated_response(LeadSerializer(page, many=True).data)


class LeadDetailApi(ProjectApiView):
    def get(self, request, lead_id: str):
        return Response(LeadSerializer(lead_get(project=self.project, lead_id=lead_id)).data)

    def put(self, request, lead_id: str, partial: bool = False):
        lead = lead_get(project=self.project, lead_id=lead_id)
        serializer = LeadUpdateSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(LeadSerializer(lead_update(lead=lead, data=serializer.validated_data)).data)

    def patch(self, request, lead_id: str):
        return self.put(request, lead_id, partial=True)

    def delete(self, request, lead_id: str):
        self.require_admin()
        lead_erase(lead=lead_get(project=self.project, lead_id=lead_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeadExportApi(ProjectApiView):
    """Everything stored about one lead, as JSON (GDPR access)."""

    def get(self, request, lead_id: str):
        return Response(lead_export(lead=lead_get(project=self.project, lead_id=lead_id)))


class LeadsCsvExportApi(ProjectApiView):
    """The project's leads as CSV, streamed, with the filters of the lead list."""

    def perform_content_negotiation(self, request, force=False):
        # `Accept: text/csv` must not 406: errors still render as JSON
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
        )
        response = StreamingHttpResponse(leads_export_csv(leads=leads), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="leads.csv"'
        return response


class LeadTimelineApi(ProjectApiView):
    def get(self, request, lead_id: str):
        lead = lead_get(project=self.project, lead_id=lead_id)
        try:
            limit = int(request.query_params.get("limit", 200))
        except ValueError:
            raise ApplicationError("Must be an integer.", field="limit") from None
        if not 1 <= limit <= 1000:
            raise ApplicationError("Must be between 1 and 1000.", field="limit")
        events = [
            {
                "eventId": event.event_id,
                "eventType": event.name,
                "timestamp": event.timestamp,
                "properties": event.properties,
                "scoreDelta": history.delta if history else None,
                "newScore": history.new_score if history else None,
            }
            for event, history in lead_timeline(lead=lead, limit=limit)
        ]
        return Response({"lead": LeadSerializer(lead).data, "events": events})


class LeadScoreBreakdownApi(ProjectApiView):
    def get(self, request, lead_id: str):
        return Response(lead_score_breakdown(lead=lead_get(project=self.project, lead_id=lead_id)))


class LeadIntelligenceApi(ProjectApiView):
    def get(self, request, lead_id: str):
        return Response(lead_intelligence(lead=lead_get(project=self.project, lead_id=lead_id)))


class RuleListApi(ProjectApiView):
    def get(self, request):
        kind = request.query_params.get("kind")
        if kind and kind not in ScoringRule.Kind.values:
            raise ApplicationError("Must be engagement or fit.", field="kind")
        return Response({"results": RuleSerializer(rules_for_project(project=self.project, kind=kind), many=True).data})

    def post(self, request):
        self.require_admin()
        serializer = RuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = rule_create(project=self.project, data=serializer.validated_data)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(ProjectApiView):
    def get(self, request, rule_id: str):
        return Response(RuleSerializer(rule_get(project=self.project, rule_id=rule_id)).data)

    def put(self, request, rule_id: str, partial: bool = False):
        self.require_admin()
        rule = rule_get(project=self.project, rule_id=rule_id)
        serializer = RuleSerializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(RuleSerializer(rule_update(rule=rule, data=serializer.validated_data)).data)

    def patch(self, request, rule_id: str):
        return self.put(request, rule_id, partial=True)

    def delete(self, request, rule_id: str):
        self.require_admin()
        rule_delete(rule=rule_get(project=self.project, rule_id=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RulePreviewApi(ProjectApiView):
    """What a proposed rule set (and settings) would do, without saving anything."""

    def post(self, request):
        project = self.project
        serializer = PreviewSerializer(data=request.data, context={"project": project})
        serializer.is_valid(raise_exception=True)
        rows = [ScoringRule(id=-(i + 1), **data) for i, data in enumerate(serializer.validated_data["rules"])]
        settings = serializer.validated_data.get("settings")
        return Response(rules_preview_proposed(project=project, rows=rows, settings=settings))


class ScoringSettingsApi(ProjectApiView):
    def get(self, request):
        return Response(ScoringSettingsSerializer(self.project).data)

    def put(self, request, partial: bool = False):
        self.require_admin()
        serializer = ScoringSettingsSerializer(self.project, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            ScoringSettingsSerializer(
                scoring_settings_update(project=self.project, data=serializer.validated_data)
            ).data
        )

    def patch(self, request):
        return self.put(request, partial=True)


class RescoreJobListApi(ProjectApiView):
    def get(self, request):
        jobs = self.project.rescore_jobs.order_by("-id")[:20]
        return Response({"results": RescoreJobSerializer(jobs, many=True).data})


class RescoreJobDetailApi(ProjectApiView):
    def get(self, request, job_id: str):
        return Response(RescoreJobSerializer(rescore_job_get(project=self.project, job_id=job_id)).data)


# Reporting: leaderboard, stage counts, the dashboard's numbers and a lead's score history.

MAX_OFFSET = 1_000_000_000


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within [minimum, maximum]; 400 naming it otherwise."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError("Must be an integer.", field=name) from None
    if not minimum <= value <= maximum:
        raise ApplicationError(f"Must be between {minimum} and {maximum}.", field=name)
    return value


class LeaderboardApi(ProjectApiView):
    def get(self, request):
        limit = query_int(request, "limit", default=10, minimum=1, maximum=100)
        offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        leads, count = leaderboard(project=self.project, limit=limit, offset=offset)
        return Response({"results": LeadSerializer(leads, many=True).data, "count": count})


class LeaderboardByStageApi(ProjectApiView):
    def get(self, request):
        return Response(lead_stage_counts(project=self.project))


class AnalyticsDashboardApi(ProjectApiView):
    def get(self, request):
        dashboard = project_dashboard(project=self.project)
        return Response({**dashboard, "topLeads": LeadSerializer(dashboard["topLeads"], many=True).data})


class ScoreHistorySerializer(serializers.ModelSerializer):
    oldScore = serializers.IntegerField(source="old_score")
    newScore = serializers.IntegerField(source="new_score")
    occurredAt = serializers.DateTimeField(source="occurred_at")
    eventId = serializers.CharField(source="event_uid", allow_null=True)

    class Meta:
        model = ScoreHistory
        fields = ["id", "reason", "oldScore", "newScore", "delta", "occurredAt", "eventId", "details"]


class ScoreHistoryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 200


class LeadHistoryApi(ProjectApiView):
    def get(self, request, lead_id: str):
        lead = lead_get(project=self.project, lead_id=lead_id)
        paginator = ScoreHistoryPagination()
        history = lead_history_for_project(project=self.project, lead=lead)
        page = paginator.paginate_queryset(history, request, view=self)
        return paginator.get_paginated_response(ScoreHistorySerializer(page, many=True).data)
