from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from leadpulse.api import ProjectApiView, require_admin
from leadpulse.errors import Forbidden, NotAuthenticated
from leadpulse.ratelimits import rate_limit

from .authentication import ProjectKeyUser
from .models import ApiKey, Membership, Project, User
from .selectors import (
    memberships_for_user,
    secret_key_for_project,
    secret_keys_for_project,
    write_key_for_project,
)
from .services import (
    project_create,
    project_update,
    secret_key_create,
    secret_key_revoke,
    user_register,
    write_key_rotate,
)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name"]


def _session_payload(user: User) -> dict:
    refresh = RefreshToken.for_user(user)
    access = str(refresh.access_token)
    return {"user": UserSerializer(user).data, "access": access, "refresh": str(refresh), "token": access}


class RegisterApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=128, write_only=True)
        name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")

        def validate_email(self, value: str) -> str:
            value = value.lower()
            if User.objects.filter(email=value).exists():
                raise serializers.ValidationError("An account with this email already exists.")
            return value

        def validate_password(self, value: str) -> str:
            try:
                validate_password(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(list(exc.messages)) from exc
            return value

    def post(self, request):
        rate_limit(request, scope="register-ip", rate=settings.LEADPULSE_RATE_REGISTER_IP)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, _project = user_register(**serializer.validated_data)
        return Response(_session_payload(user), status=status.HTTP_201_CREATED)


class LoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=128)

    def post(self, request):
        # Every attempt counts, successful or not: per IP, and per account against spread-out guessing.
        rate_limit(request, scope="login-ip", rate=settings.LEADPULSE_RATE_LOGIN_IP)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].lower()
        rate_limit(request, scope="login-account", key=email, rate=settings.LEADPULSE_RATE_LOGIN_ACCOUNT)
        user = authenticate(request, email=email, password=serializer.validated_data["password"])
        if user is None:
            raise NotAuthenticated("Invalid email or password.", code="invalid_credentials")
        return Response(_session_payload(user))


class MeApi(APIView):
    def get(self, request):
        if isinstance(request.user, ProjectKeyUser):
            raise Forbidden("This is a user endpoint; secret keys cannot use it.", code="user_required")
        memberships = Membership.objects.filter(user=request.user).select_related("project").order_by("created_at")
        return Response(
            {
                "user": UserSerializer(request.user).data,
                "projects": [{"id": m.project_id, "name": m.project.name, "role": m.role} for m in memberships],
            }
        )


class CurrentProjectApi(ProjectApiView):
    def get(self, request):
        project = self.project
        return Response(
            {
                "project": {
                    "id": project.id,
                    "name": project.name,
                    "domain": project.domain,
                    "apiKey": write_key_for_project(project=project),
                }
            }
        )


class WriteKeyRotateApi(ProjectApiView):
    def post(self, request, project_id: int):
        membership = self.membership_for(project_id)
        require_admin(membership)
        key = write_key_rotate(project=membership.project)
        return Response({"project": {"id": membership.project_id, "apiKey": key.key}})


class SecretKeySerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at")
    revokedAt = serializers.DateTimeField(source="revoked_at")

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "createdAt", "lastUsedAt", "revokedAt"]


class SecretKeyListApi(ProjectApiView):
    def get(self, request, project_id: int):
        keys = secret_keys_for_project(project=self.membership_for(project_id).project)
        return Response({"results": SecretKeySerializer(keys, many=True).data})

    def post(self, request, project_id: int):
        membership = self.membership_for(project_id)
        require_admin(membership)
        if isinstance(request.user, ProjectKeyUser):
            # a leaked key must not be able to mint itself successors
            raise Forbidden("Secret keys are issued by signed-in owners and admins.", code="user_required")
        api_key, raw_key = secret_key_create(project=membership.project)
        body = {"id": api_key.id, "prefix": api_key.prefix, "createdAt": api_key.created_at, "key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)


class SecretKeyDetailApi(ProjectApiView):
    def delete(self, request, project_id: int, key_id: int):
        membership = self.membership_for(project_id)
        require_admin(membership)
        secret_key_revoke(api_key=secret_key_for_project(project=membership.project, key_id=key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectSerializer(serializers.ModelSerializer):
    isActive = serializers.BooleanField(source="is_active", required=False)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "domain", "isActive", "createdAt"]
        read_only_fields = ["id"]
        extra_kwargs = {"domain": {"required": False}}


def _project_payload(project: Project, role: str) -> dict:
    return {**ProjectSerializer(project).data, "role": role}


class ProjectListApi(ProjectApiView):
    def get(self, request):
        if isinstance(request.user, ProjectKeyUser):
            memberships = [self.membership_for(None)]
        else:
            memberships = list(memberships_for_user(user=request.user))
        return Response({"results": [_project_payload(m.project, m.role) for m in memberships]})

    def post(self, request):
        if isinstance(request.user, ProjectKeyUser):
            raise Forbidden("Projects are created by signed-in users.", code="user_required")
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = project_create(owner=request.user, name=data["name"], domain=data.get("domain", ""))
        body = {**_project_payload(project, Membership.Role.OWNER), "apiKey": write_key_for_project(project=project)}
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectApiView):
    def patch(self, request, project_id: int):
        membership = self.membership_for(project_id)
        require_admin(membership)
        serializer = ProjectSerializer(membership.project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = project_update(
            project=membership.project,
            name=data.get("name"),
            domain=data.get("domain"),
            is_active=data.get("is_active"),
        )
        return Response(_project_payload(project, membership.role))
