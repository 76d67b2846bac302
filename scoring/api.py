from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from ingest.models import Lead
from ingest.services import lead_create
from leadpulse.api import ProjectApiView
from leadpulse.errors import ApplicationError

from .selectors import lead_get, lead_timeline, leads_for_project


class LeadSerializer(serializers.ModelSerializer):
    anonymousId = serializers.CharField(source="anonymous_id")
    currentScore = serializers.IntegerField(source="current_score")
    leadStage = serializers.CharField(source="lead_stage")
    velocityScore = serializers.IntegerField(source="velocity_score")
    eventsLast24h = serializers.IntegerField(source="events_last_24h")
    lastEventAt = serializers.DateTimeField(source="last_event_at")
    firstSeenAt = serializers.DateTimeField(source="first_seen_at")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Lead
        fields = [
            "id",
            "anonymousId",
            "email",
            "name",
            "company",
            "currentScore",
            "leadStage",
            "velocityScore",
            "eventsLast24h",
            "lastEventAt",
            "firstSeenAt",
            "createdAt",
        ]


class LeadPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500


class LeadCreateSerializer(serializers.Serializer):
    anonymousId = serializers.CharField(max_length=255)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    company = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


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
