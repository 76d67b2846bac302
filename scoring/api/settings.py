"""The project's scoring settings, and the re-score jobs their changes (and rule changes) start."""

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.openapi import results_of

from ..models import ScoringModel
from ..selectors import rescore_job_get, scoring_model_get
from ..serializers import RescoreJobSerializer, ScoringSettingsSerializer
from ..services import scoring_settings_update


class ScoringSettingsApi(ProjectApiView):
    @extend_schema(
        summary="The project's stage thresholds, score cap and decay",
        tags=["Scoring"],
        responses=ScoringSettingsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(ScoringSettingsSerializer(self._model(request)).data)

    def _model(self, request: Request) -> ScoringModel:
        return scoring_model_get(project=self.project, key=request.query_params.get("model"))

    @extend_schema(
        summary="Replace the scoring settings (admins); re-scores the project's leads",
        description="Thresholds must rise: warmThreshold < hotThreshold < qualifiedThreshold <= maxScore.",
        tags=["Scoring"],
        request=ScoringSettingsSerializer,
        responses=ScoringSettingsSerializer,
    )
    def put(self, request: Request, partial: bool = False) -> Response:
        self.require_admin()
        model = self._model(request)
        serializer = ScoringSettingsSerializer(model, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            ScoringSettingsSerializer(
                scoring_settings_update(model=model, data=serializer.validated_data, author=request_person(request))
            ).data
        )

    @extend_schema(
        summary="Change some scoring settings (admins); re-scores the project's leads",
        description="Thresholds must rise: warmThreshold < hotThreshold < qualifiedThreshold <= maxScore "
        "(unchanged ones keep their stored values).",
        tags=["Scoring"],
        request=ScoringSettingsSerializer,
        responses=ScoringSettingsSerializer,
    )
    def patch(self, request: Request) -> Response:
        return self.put(request, partial=True)


class RescoreJobListApi(ProjectApiView):
    @extend_schema(
        summary="The project's 20 newest re-score jobs",
        tags=["Scoring"],
        responses=results_of(RescoreJobSerializer, "ScoringRescoreJobList"),
    )
    def get(self, request: Request) -> Response:
        jobs = self.project.rescore_jobs.order_by("-id")[:20]
        return Response({"results": RescoreJobSerializer(jobs, many=True).data})


class RescoreJobDetailApi(ProjectApiView):
    @extend_schema(
        summary="A re-score job's progress",
        tags=["Scoring"],
        parameters=[
            OpenApiParameter("job_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="A re-score job id.")
        ],
        responses=RescoreJobSerializer,
    )
    def get(self, request: Request, job_id: str) -> Response:
        return Response(RescoreJobSerializer(rescore_job_get(project=self.project, job_id=job_id)).data)
