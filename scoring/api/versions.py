"""Rule-set versions and drafts of a scoring model: list, show, diff, roll back; draft, preview, publish.

Members may draft and preview; only admins publish and roll back. A lead's score under any version
is recomputed from its log on demand (`/api/leads/{id}/score?version=`).
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.fields import EmptySerializer
from core.openapi import ErrorSerializer, results_of
from core.queries import query_int

from ..selectors import (
    documents_diff,
    draft_get,
    draft_preview,
    lead_get,
    lead_score_at_version,
    scoring_model_get,
    version_get,
    versions_for_model,
)
from ..serializers import RulePreviewSerializer
from ..serializers.leads import MatrixCellField
from ..serializers.versions import (
    DiffSerializer,
    DocumentRuleSerializer,
    DocumentSerializer,
    DraftSerializer,
    PublishSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
from ..services.drafts import draft_discard, draft_publish, draft_save, version_rollback
from .leads import LEAD_ID, MODEL_PARAMETER, request_model
from .models import MODEL_KEY

TAGS = ["Scoring models"]
NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="A version number.")
OTHER = OpenApiParameter(
    "other", OpenApiTypes.STR, OpenApiParameter.PATH, description="Another version number, or `draft`."
)


class VersionListApi(ProjectApiView):
    @extend_schema(summary="A model's published versions, newest first", tags=TAGS, parameters=[MODEL_KEY],
                   responses=results_of(VersionSerializer, "ScoringRuleSetVersionList"))  # fmt: skip
    def get(self, request: Request, key: str) -> Response:
        versions = versions_for_model(model=scoring_model_get(project=self.project, key=key))
        return Response({"results": VersionSerializer(versions, many=True).data})


class VersionDetailApi(ProjectApiView):
    @extend_schema(summary="A published version: its settings and whole rule list", tags=TAGS,
                   parameters=[MODEL_KEY, NUMBER], responses=VersionDetailSerializer)  # fmt: skip
    def get(self, request: Request, key: str, number: str) -> Response:
        version = version_get(model=scoring_model_get(project=self.project, key=key), number=number)
        return Response(VersionDetailSerializer(version).data)


class VersionDiffApi(ProjectApiView):
    @extend_schema(summary="What changed from one version to another (or to the draft)", tags=TAGS,
                   parameters=[MODEL_KEY, NUMBER, OTHER], responses=DiffSerializer)  # fmt: skip
    def get(self, request: Request, key: str, number: str, other: str) -> Response:
        model = scoring_model_get(project=self.project, key=key)
        before = version_get(model=model, number=number).document
        after = draft_get(model=model).document if other == "draft" else version_get(model=model, number=other).document
        return Response(wire_diff(documents_diff(before=before, after=after)))


class VersionRollbackApi(ProjectApiView):
    @extend_schema(
        summary="Publish a copy of this version as the newest (admins); re-scores the project",
        tags=TAGS,
        parameters=[MODEL_KEY, NUMBER],
        request=PublishSerializer,
        responses={201: VersionSerializer},
    )
    def post(self, request: Request, key: str, number: str) -> Response:
        self.require_admin()
        version = version_get(model=scoring_model_get(project=self.project, key=key), number=number)
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        published = version_rollback(
            version=version, author=request_person(request), note=body.validated_data.get("note", "")
        )
        return Response(VersionSerializer(published).data, status=status.HTTP_201_CREATED)


class DraftApi(ProjectApiView):
    @extend_schema(summary="The model's draft (404 when it has none)", tags=TAGS, parameters=[MODEL_KEY],
                   responses=DraftSerializer)  # fmt: skip
    def get(self, request: Request, key: str) -> Response:
        return Response(DraftSerializer(draft_get(model=scoring_model_get(project=self.project, key=key))).data)

    @extend_schema(
        summary="Save the model's draft: its settings and whole rule list (members); nothing changes until published",
        description="A rule with an `id` edits that live rule; one without is new; a live rule left out is deleted.",
        tags=TAGS,
        parameters=[MODEL_KEY],
        request=DocumentSerializer,
        responses=DraftSerializer,
    )
    def put(self, request: Request, key: str) -> Response:
        model = scoring_model_get(project=self.project, key=key)
        body = DocumentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(
            DraftSerializer(draft_save(model=model, document=body.document(), author=request_person(request))).data
        )

    @extend_schema(summary="Discard the model's draft (members)", tags=TAGS, parameters=[MODEL_KEY],
                   responses={204: OpenApiResponse(description="Discarded.")})  # fmt: skip
    def delete(self, request: Request, key: str) -> Response:
        draft_discard(model=scoring_model_get(project=self.project, key=key))
        return Response(status=status.HTTP_204_NO_CONTENT)


DRAFT_PREVIEW = inline_serializer(
    "ScoringRuleSetDraftPreview",
    fields={
        **RulePreviewSerializer().fields,
        "distribution": inline_serializer(
            "ScoringRuleSetDistribution",
            fields={
                "stages": serializers.ListField(child=serializers.DictField(), help_text="[{stage, before, after}]"),
                "bands": serializers.ListField(child=serializers.DictField(), help_text="[{band, before, after}]"),
            },
        ),
    },
)


class DraftPreviewApi(ProjectApiView):
    @extend_schema(
        summary="Compare the draft with the live version over the stored events, saving nothing",
        tags=TAGS,
        parameters=[MODEL_KEY],
        request=None,
        responses=DRAFT_PREVIEW,
    )
    def post(self, request: Request, key: str) -> Response:
        model = scoring_model_get(project=self.project, key=key)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        return Response(draft_preview(model=model, draft=draft_get(model=model)))


class DraftPublishApi(ProjectApiView):
    @extend_schema(
        summary="Publish the draft as the model's newest version (admins); re-scores the project",
        tags=TAGS,
        parameters=[MODEL_KEY],
        request=PublishSerializer,
        responses={201: VersionSerializer, 409: OpenApiResponse(ErrorSerializer, description="No draft.")},
    )
    def post(self, request: Request, key: str) -> Response:
        self.require_admin()
        model = scoring_model_get(project=self.project, key=key)
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = draft_publish(model=model, author=request_person(request), note=body.validated_data.get("note", ""))
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


VERSION_PARAMETER = OpenApiParameter(
    "version", {"type": "integer", "minimum": 1}, description="A version number (default: the live one)."
)


class LeadVersionScoreApi(ProjectApiView):
    @extend_schema(
        summary="A lead's score under any version of a model, recomputed from its log",
        tags=["Leads"],
        parameters=[LEAD_ID, MODEL_PARAMETER, VERSION_PARAMETER],
        responses=inline_serializer(
            "LeadVersionScore",
            fields={
                "leadId": serializers.IntegerField(),
                "model": serializers.CharField(),
                "version": serializers.IntegerField(),
                "liveVersion": serializers.IntegerField(),
                "score": serializers.IntegerField(),
                "stage": serializers.CharField(),
                "engagement": serializers.IntegerField(),
                "fit": serializers.IntegerField(),
                "grade": serializers.CharField(),
                "cell": MatrixCellField(help_text="The fit x engagement cell under that version (its thresholds)."),
                "eventsFolded": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        model = request_model(self, request) or scoring_model_get(project=self.project)
        number = query_int(request, "version", default=model.version, minimum=1, maximum=2_000_000_000)
        return Response(lead_score_at_version(lead=lead, model=model, version=version_get(model=model, number=number)))


def wire_diff(diff: dict[str, Any]) -> dict[str, Any]:
    """A documents' diff with the API's field names."""
    rule_names = {field.source: name for name, field in DocumentRuleSerializer().fields.items()}
    settings_names = {field.source: name for name, field in DocumentSerializer().fields["settings"].fields.items()}
    rules = DocumentRuleSerializer
    return {
        "settings": {settings_names.get(f, f): change for f, change in diff["settings"].items()},
        "added": rules(diff["added"], many=True).data,
        "removed": rules(diff["removed"], many=True).data,
        "changed": [{"id": item["id"], "fields": _wire_fields(item["fields"], rule_names)} for item in diff["changed"]],
    }


def _wire_fields(fields: dict[str, dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A rule's changed fields with the API's names; its window's two fields as one `window`."""
    wire = {names.get(f, f): change for f, change in fields.items() if f not in ("window_count", "window_days")}
    if "window_count" in fields:
        count, days = fields["window_count"], fields["window_days"]
        wire["window"] = {
            end: None if count[end] is None else {"count": count[end], "days": days[end]} for end in ("from", "to")
        }
    return wire
