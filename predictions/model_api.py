"""The predictions API: train (admins) and poll the job, the model's report, suggestions and applying them (admins).

`?model=` (or `model` in a body) names a scoring model by key; the primary one by default.
"""

import math
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.errors import ApplicationError
from core.fields import StrictCharField, StrictFloatField, StrictSerializer
from scoring.selectors import scoring_model_get

from .model_selectors import prediction_model_get, report_document, training_job_get
from .models import TrainingJob
from .services.training import DEFAULT_TARGET_PRECISION, suggestions_apply, suggestions_compute, training_job_start

TAGS = ["Predictions"]
MIN_TARGET = 0.01
MODEL = OpenApiParameter("model", OpenApiTypes.STR, description="A scoring model's key (default: the primary model).")
TARGET = OpenApiParameter(
    "targetPrecision",
    {"type": "number", "minimum": 0.01, "maximum": 1},
    description=f"The precision wanted of 'qualified' (default {DEFAULT_TARGET_PRECISION}).",
)
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="A training job's id.")


class TrainingJobSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="scoring_model.key", read_only=True)
    requestedBy = serializers.EmailField(source="requested_by.email", read_only=True, allow_null=True, default=None)
    startedAt = serializers.DateTimeField(source="started_at", read_only=True, allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", read_only=True, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    version = serializers.IntegerField(source="prediction_model.version", read_only=True, allow_null=True, default=None)

    class Meta:
        model = TrainingJob
        fields = ["id", "model", "status", "progress", "message", "version", "requestedBy", "createdAt", "startedAt",
                  "finishedAt"]  # fmt: skip


class TrainSerializer(StrictSerializer):
    model = StrictCharField(required=False, max_length=50, help_text="A scoring model's key (default: primary).")


class ApplySerializer(StrictSerializer):
    model = StrictCharField(required=False, max_length=50, help_text="A scoring model's key (default: primary).")
    targetPrecision = StrictFloatField(required=False, min_value=MIN_TARGET, max_value=1.0)


def _scoring_model(view: ProjectApiView, key: str | None) -> Any:
    return scoring_model_get(project=view.project, key=key or None)


def _target(request: Request) -> float:
    raw = request.query_params.get("targetPrecision", "").strip()
    if not raw:
        return DEFAULT_TARGET_PRECISION
    try:
        value = float(raw)
    except ValueError:
        raise ApplicationError("Must be a number.", field="targetPrecision") from None
    if not math.isfinite(value) or not MIN_TARGET <= value <= 1:
        raise ApplicationError(f"Must be a number from {MIN_TARGET} to 1.", field="targetPrecision")
    return value


EVALUATION = serializers.DictField(help_text="{auc, stage_thresholds, stages, lift, curve}")
REPORT = inline_serializer(
    "PredictionReport",
    fields={
        "model": serializers.CharField(),
        "version": serializers.IntegerField(),
        "trainedAt": serializers.DateTimeField(),
        "trainCount": serializers.IntegerField(),
        "testCount": serializers.IntegerField(),
        "train": serializers.DictField(),
        "holdout": serializers.DictField(),
        "learned": serializers.DictField(
            help_text="The learnt model on the holdout: {auc, stage_thresholds, stages, lift, curve}."
        ),
        "rules": serializers.DictField(allow_null=True, help_text="The rule-based score on the same holdout."),
        "calibration": serializers.ListField(child=serializers.DictField()),
        "brier": serializers.FloatField(),
        "calibrationError": serializers.FloatField(),
    },
)
SUGGESTIONS = inline_serializer(
    "PredictionSuggestions",
    fields={
        "model": serializers.CharField(),
        "version": serializers.IntegerField(),
        "targetPrecision": serializers.FloatField(),
        "points": serializers.ListField(
            child=serializers.DictField(), help_text="[{eventType, current, suggested, logOdds}]"
        ),
        "thresholds": serializers.DictField(help_text="{current: [warm, hot, qualified], suggested: [...] or null}"),
        "probabilityThreshold": serializers.FloatField(allow_null=True),
    },
)
APPLIED = inline_serializer(
    "PredictionSuggestionsApplied",
    fields={
        "model": serializers.CharField(),
        "baseVersion": serializers.IntegerField(),
        "draft": serializers.DictField(help_text="The draft document: {settings, rules}."),
    },
)


class TrainApi(ProjectApiView):
    @extend_schema(
        summary="Train a prediction model from the outcomes (admins): 202 with a job to poll",
        description="A job already pending or running for the scoring model is returned instead of a new one.",
        tags=TAGS,
        request=TrainSerializer,
        responses={202: TrainingJobSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        body = TrainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        model = _scoring_model(self, body.validated_data.get("model"))
        job = training_job_start(project=self.project, scoring_model=model, requested_by=request_person(request))
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/predictions/jobs/{job.id}"})  # fmt: skip


class TrainingJobApi(ProjectApiView):
    @extend_schema(summary="A training job: status, progress, message", tags=TAGS, parameters=[JOB_ID],
                   responses=TrainingJobSerializer)  # fmt: skip
    def get(self, request: Request, job_id: str) -> Response:
        return Response(TrainingJobSerializer(training_job_get(project=self.project, job_id=job_id)).data)


class ReportApi(ProjectApiView):
    @extend_schema(
        summary="The prediction model's holdout report beside the rule-based score's (404 before training)",
        tags=TAGS,
        parameters=[MODEL],
        responses=REPORT,
    )
    def get(self, request: Request) -> Response:
        model = prediction_model_get(
            project=self.project, scoring_model=_scoring_model(self, request.query_params.get("model"))
        )
        return Response(report_document(model=model))


class SuggestionsApi(ProjectApiView):
    @extend_schema(
        summary="Points per event type and thresholds suggested by the prediction model (404 before training)",
        tags=TAGS,
        parameters=[MODEL, TARGET],
        responses=SUGGESTIONS,
    )
    def get(self, request: Request) -> Response:
        scoring_model = _scoring_model(self, request.query_params.get("model"))
        model = prediction_model_get(project=self.project, scoring_model=scoring_model)
        target = _target(request)
        return Response(suggestions_compute(model=model, scoring_model=scoring_model, target_precision=target))


class SuggestionsApplyApi(ProjectApiView):
    @extend_schema(
        summary="Write the suggestions into the scoring model's draft (admins); nothing is published",
        tags=TAGS,
        request=ApplySerializer,
        responses={200: APPLIED, 404: OpenApiResponse(description="No prediction model trained.")},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        body = ApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        scoring_model = _scoring_model(self, body.validated_data.get("model"))
        model = prediction_model_get(project=self.project, scoring_model=scoring_model)
        target = body.validated_data.get("targetPrecision", DEFAULT_TARGET_PRECISION)
        draft = suggestions_apply(model=model, scoring_model=scoring_model, target_precision=target,
                                  author=request_person(request))  # fmt: skip
        return Response({"model": scoring_model.key, "baseVersion": draft.base_version, "draft": draft.document})
