"""Scoring models: list, create, change, make primary, delete."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.fields import EmptySerializer
from core.openapi import ErrorSerializer, results_of

from ..selectors import scoring_model_get, scoring_models_with_rule_counts
from ..serializers.models import ScoringModelCreateSerializer, ScoringModelSerializer, ScoringModelUpdateSerializer
from ..services.models import (
    scoring_model_create,
    scoring_model_delete,
    scoring_model_primary_set,
    scoring_model_update,
)

MODEL_KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="A scoring model's key.")


class ScoringModelListApi(ProjectApiView):
    @extend_schema(
        summary="The project's scoring models, the primary one first",
        tags=["Scoring models"],
        responses=results_of(ScoringModelSerializer, "ScoringModelList"),
    )
    def get(self, request: Request) -> Response:
        models = scoring_models_with_rule_counts(project=self.project)
        return Response({"results": ScoringModelSerializer(models, many=True).data})

    @extend_schema(
        summary="Add a scoring model (admins); its scores are filled in by a re-score",
        description="At most 25 models per project. `copyFrom` starts from another model's rules and settings; "
        "without it the model starts with no rules and the default settings.",
        tags=["Scoring models"],
        request=ScoringModelCreateSerializer,
        responses={
            201: ScoringModelSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The project has a model with this key already."),
        },
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        serializer = ScoringModelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        source = data.pop("copyFrom", None)
        copy_from = scoring_model_get(project=self.project, key=source) if source else None
        model = scoring_model_create(
            project=self.project, data=data, copy_from=copy_from, author=request_person(request)
        )
        created = scoring_models_with_rule_counts(project=self.project).get(id=model.id)  # with its rule count
        return Response(ScoringModelSerializer(created).data, status=status.HTTP_201_CREATED)


class ScoringModelDetailApi(ProjectApiView):
    @extend_schema(summary="A scoring model", tags=["Scoring models"], parameters=[MODEL_KEY],
                   responses=ScoringModelSerializer)  # fmt: skip
    def get(self, request: Request, key: str) -> Response:
        return Response(ScoringModelSerializer(scoring_model_get(project=self.project, key=key)).data)

    @extend_schema(
        summary="Rename a scoring model or change its settings (admins); settings re-score the project",
        tags=["Scoring models"],
        parameters=[MODEL_KEY],
        request=ScoringModelUpdateSerializer,
        responses=ScoringModelSerializer,
    )
    def patch(self, request: Request, key: str) -> Response:
        self.require_admin()
        model = scoring_model_get(project=self.project, key=key)
        serializer = ScoringModelUpdateSerializer(model, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(
            ScoringModelSerializer(
                scoring_model_update(model=model, data=serializer.validated_data, author=request_person(request))
            ).data
        )

    @extend_schema(
        summary="Delete a scoring model with its rules and scores (admins); the primary one cannot be",
        tags=["Scoring models"],
        parameters=[MODEL_KEY],
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(ErrorSerializer, description="The primary model: make another one primary first."),
        },
    )
    def delete(self, request: Request, key: str) -> Response:
        self.require_admin()
        scoring_model_delete(model=scoring_model_get(project=self.project, key=key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScoringModelPrimaryApi(ProjectApiView):
    @extend_schema(
        summary="Make a scoring model the primary one (admins): it drives currentScore and leadStage",
        tags=["Scoring models"],
        parameters=[MODEL_KEY],
        request=None,
        responses=ScoringModelSerializer,
    )
    def post(self, request: Request, key: str) -> Response:
        self.require_admin()
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        model = scoring_model_primary_set(model=scoring_model_get(project=self.project, key=key))
        return Response(ScoringModelSerializer(model).data)
