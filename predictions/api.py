"""The predictions API: a lead's outcome (record, get, clear), bulk and CSV writes, the list and the settings;
training and its job, the report, the suggestions and applying them.

Members record and clear outcomes, as they adjust scores and edit leads; only admins change the settings,
train and apply suggestions. `?model=` (or `model` in a body) names a scoring model by key, the primary one
by default.
"""

import math
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.errors import ApplicationError
from core.fields import StrictCharField, StrictFloatField, StrictSerializer
from core.jsonbody import JsonBodyParser
from core.openapi import page_of
from scoring.selectors import lead_get, scoring_model_get

from .models import TrainingJob
from .selectors import (
    outcome_get,
    outcomes_for_project,
    prediction_model_get,
    prediction_settings_get,
    report_document,
    training_job_get,
)
from .serializers import (
    BulkResultSerializer,
    OutcomeBulkSerializer,
    OutcomeCreateSerializer,
    OutcomeListItemSerializer,
    OutcomeSerializer,
    OutcomeUploadFormSerializer,
    OutcomeUploadJsonSerializer,
    PredictionSettingsSerializer,
    bulk_item_parse,
)
from .services import (
    CSV_MAX_BYTES,
    BulkResult,
    Recorder,
    csv_items,
    outcome_clear,
    outcome_input_check,
    outcome_record,
    outcome_recorder,
    outcomes_record,
    prediction_settings_update,
)
from .services.training import DEFAULT_TARGET_PRECISION, suggestions_apply, suggestions_compute, training_job_start

LEAD_ID = OpenApiParameter(
    "lead_id",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="A lead id; a merged-away lead's id answers with the lead it was merged into.",
)


def api_recorder(request: Request, *, source: str) -> Recorder:
    """The caller as an outcome's author: the signed-in person, or the secret key."""
    person = request_person(request)
    key = None if person is not None else getattr(request.user, "api_key", None)
    return outcome_recorder(source=source, user=person, api_key=key)


class LeadOutcomeApi(ProjectApiView):
    @extend_schema(summary="A lead's outcome", tags=["Outcomes"], parameters=[LEAD_ID], responses=OutcomeSerializer)
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        return Response(OutcomeSerializer(outcome_get(project=self.project, lead_id=lead.id)).data)

    @extend_schema(
        summary="Record a lead's outcome, won or lost (members); replaces the one it had",
        tags=["Outcomes"],
        parameters=[LEAD_ID],
        request=OutcomeCreateSerializer,
        responses={201: OutcomeSerializer},
    )
    def post(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        serializer = OutcomeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = outcome_input_check(**serializer.validated_data)
        outcome = outcome_record(lead=lead, data=data, recorder=api_recorder(request, source="api"))
        return Response(OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Clear a lead's outcome (members)",
        tags=["Outcomes"],
        parameters=[LEAD_ID],
        responses={204: OpenApiResponse(description="Cleared (also when it had none).")},
    )
    def delete(self, request: Request, lead_id: str) -> Response:
        outcome_clear(lead=lead_get(project=self.project, lead_id=lead_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def bulk_response(result: BulkResult, *, rows: bool = False) -> Response:
    """200 with what was stored and what was refused; 400 (with the same report) when nothing was stored."""
    errors = [{**error, "row": error["index"] + 2} if rows else error for error in result.errors]
    body: dict[str, Any] = {
        "count": result.count,
        "stored": len(result.stored),
        "results": [
            {"index": index, "outcome": OutcomeSerializer(outcome).data}
            for index, outcome in sorted(result.stored.items())
        ],
        "errors": errors,
    }
    if result.stored:
        return Response(body)
    prefix = "rows" if rows else "outcomes"
    fields = {f"{prefix}[{e['index']}]" + (f".{e['field']}" if e["field"] else ""): [e["message"]] for e in errors}
    first = next(iter(fields))
    body["error"] = {"code": "invalid", "message": f"No valid outcomes: {first}: {fields[first][0]}", "fields": fields}
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class OutcomeBulkApi(ProjectApiView):
    @extend_schema(
        summary="Record many leads' outcomes (members), by lead id, email or external id",
        description="Each item names its lead by exactly one of `leadId`, `email` and `userId` (a merged-away lead's "
        "id records its survivor's). Valid items are stored (a later item for the same lead wins) and the others "
        "reported in `errors` by index, naming the field; when none is valid the answer is 400 with the same report.",
        tags=["Outcomes"],
        request=OutcomeBulkSerializer,
        responses=BulkResultSerializer,
    )
    def post(self, request: Request) -> Response:
        serializer = OutcomeBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = [bulk_item_parse(item) for item in serializer.validated_data["outcomes"]]
        return bulk_response(
            outcomes_record(project=self.project, items=items, recorder=api_recorder(request, source="api"))
        )


class OutcomeUploadApi(ProjectApiView):
    parser_classes = [JsonBodyParser, MultiPartParser]

    @extend_schema(
        summary="Upload leads' outcomes as CSV (members)",
        description="A header row names the columns: one of `email`, `userId` and `leadId` (the lead), `outcome` "
        "(won or lost), and optionally `value`, `at` (ISO 8601) and `reason`. As a multipart `file`, or as the text "
        "`csv` of a JSON body; at most 2 MB and 1000 rows. Valid rows are stored; the others are reported in "
        "`errors` with their index (0: the first row below the header), `row` (the line of the file) and field. "
        "When none is valid the answer is 400 with the same report.",
        tags=["Outcomes"],
        request={"application/json": OutcomeUploadJsonSerializer, "multipart/form-data": OutcomeUploadFormSerializer},
        responses=BulkResultSerializer,
    )
    def post(self, request: Request) -> Response:
        if request.content_type.startswith("multipart/"):
            form = OutcomeUploadFormSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            upload = form.validated_data["file"]
            if upload.size > CSV_MAX_BYTES:
                raise ApplicationError("At most 2 MB.", field="file")
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ApplicationError("Must be UTF-8 text.", field="file") from None
        else:
            body = OutcomeUploadJsonSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            text = body.validated_data["csv"]
        items = csv_items(text=text)
        recorder = api_recorder(request, source="csv")
        return bulk_response(outcomes_record(project=self.project, items=items, recorder=recorder), rows=True)


class OutcomePagination(PageNumberPagination):
    """`page` and `pageSize` as documented: a malformed size is an error, not silently the default."""

    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        return request.query_params.get(self.page_query_param) or 1

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if not raw:
            return self.page_size
        if not raw.isdecimal() or int(raw) < 1:
            raise ApplicationError("Must be an integer from 1.", field=self.page_size_query_param)
        return min(int(raw), self.max_page_size)


class OutcomeListApi(ProjectApiView):
    @extend_schema(
        summary="The project's outcomes, newest first",
        tags=["Outcomes"],
        parameters=[
            OpenApiParameter("outcome", OpenApiTypes.STR, enum=["", "won", "lost"], description="Only these."),
            OpenApiParameter(
                "page", {"type": "integer", "minimum": 1}, description="1-based page number (404 past the last page)."
            ),
            OpenApiParameter(
                "pageSize", {"type": "integer", "minimum": 1}, description="Items per page, default 50, at most 500."
            ),
        ],
        responses=page_of(OutcomeListItemSerializer, "OutcomePage"),
    )
    def get(self, request: Request) -> Response:
        outcomes = outcomes_for_project(project=self.project, outcome=request.query_params.get("outcome"))
        paginator = OutcomePagination()
        page = paginator.paginate_queryset(outcomes, request, view=self)
        return paginator.get_paginated_response(OutcomeListItemSerializer(page, many=True).data)


class PredictionSettingsApi(ProjectApiView):
    @extend_schema(
        summary="The project's prediction settings", tags=["Outcomes"], responses=PredictionSettingsSerializer
    )
    def get(self, request: Request) -> Response:
        return Response(PredictionSettingsSerializer(prediction_settings_get(project=self.project)).data)

    @extend_schema(
        summary="Replace the prediction settings (admins)",
        tags=["Outcomes"],
        request=PredictionSettingsSerializer,
        responses=PredictionSettingsSerializer,
    )
    def put(self, request: Request) -> Response:
        self.require_admin()
        serializer = PredictionSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        won = serializer.validated_data["won_event_type"]
        return Response(
            PredictionSettingsSerializer(prediction_settings_update(project=self.project, won_event_type=won)).data
        )


# Training (admins) and its job, the report, suggestions and applying them (admins).

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
