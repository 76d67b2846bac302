"""The scoring rule endpoints, and the preview of a proposed rule set."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.errors import ApplicationError
from core.openapi import results_of

from ..models import ScoringRule
from ..selectors import rule_get, rules_for_project, rules_preview_proposed, scoring_model_get
from ..serializers import PreviewSerializer, RulePreviewSerializer, RuleSerializer
from ..services import rule_create, rule_delete, rule_update
from .leads import MODEL_PARAMETER, request_model

RULE_ID = OpenApiParameter("rule_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="A scoring rule id.")


class RuleListApi(ProjectApiView):
    @extend_schema(
        summary="List the project's scoring rules",
        tags=["Rules"],
        parameters=[
            OpenApiParameter(
                "kind",
                OpenApiTypes.STR,
                enum=["", *ScoringRule.Kind.values],
                description="Only rules of this kind (empty: all).",
            ),
            MODEL_PARAMETER,
        ],
        responses=results_of(RuleSerializer, "ScoringRuleList"),
    )
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind and kind not in ScoringRule.Kind.values:
            raise ApplicationError("Must be engagement or fit.", field="kind")
        rules = rules_for_project(project=self.project, kind=kind, model=request_model(self, request))
        return Response({"results": RuleSerializer(rules, many=True).data})

    @extend_schema(
        summary="Create a scoring rule (admins) in the `?model=` model (default: primary); re-scores the leads",
        tags=["Rules"],
        parameters=[MODEL_PARAMETER],
        request=RuleSerializer,
        responses={201: RuleSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        serializer = RuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = request_model(self, request)
        rule = rule_create(
            project=self.project, data=serializer.validated_data, model=model, author=request_person(request)
        )
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(ProjectApiView):
    @extend_schema(summary="Get a scoring rule", tags=["Rules"], parameters=[RULE_ID], responses=RuleSerializer)
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(RuleSerializer(rule_get(project=self.project, rule_id=rule_id)).data)

    @extend_schema(
        summary="Replace a scoring rule (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        request=RuleSerializer,
        responses=RuleSerializer,
    )
    def put(self, request: Request, rule_id: str, partial: bool = False) -> Response:
        self.require_admin()
        rule = rule_get(project=self.project, rule_id=rule_id)
        serializer = RuleSerializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            RuleSerializer(rule_update(rule=rule, data=serializer.validated_data, author=request_person(request))).data
        )

    @extend_schema(
        summary="Change some of a scoring rule's fields (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        request=RuleSerializer,
        responses=RuleSerializer,
    )
    def patch(self, request: Request, rule_id: str) -> Response:
        return self.put(request, rule_id, partial=True)

    @extend_schema(
        summary="Delete a scoring rule (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, rule_id: str) -> Response:
        self.require_admin()
        rule_delete(rule=rule_get(project=self.project, rule_id=rule_id), author=request_person(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RulePreviewApi(ProjectApiView):
    """What a proposed rule set (and settings) would do, without saving anything."""

    @extend_schema(
        summary="Preview what a proposed rule set and settings would do to the leads, saving nothing",
        tags=["Rules"],
        request=PreviewSerializer,
        responses=RulePreviewSerializer,
    )
    def post(self, request: Request) -> Response:
        project = self.project
        model = scoring_model_get(project=project)
        serializer = PreviewSerializer(data=request.data, context={"project": project, "model": model})
        serializer.is_valid(raise_exception=True)
        rows = [ScoringRule(id=-(i + 1), **data) for i, data in enumerate(serializer.validated_data["rules"])]
        settings = serializer.validated_data.get("settings")
        return Response(rules_preview_proposed(project=project, rows=rows, settings=settings))
