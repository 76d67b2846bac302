from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from leadpulse.api import ProjectApiView, require_admin
from leadpulse.errors import NotAuthenticated

from .models import Membership, User
from .selectors import membership_for_user, write_key_for_project
from .services import user_register, write_key_rotate


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
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request, email=serializer.validated_data["email"].lower(), password=serializer.validated_data["password"]
        )
        if user is None:
            raise NotAuthenticated("Invalid email or password.", code="invalid_credentials")
        return Response(_session_payload(user))


class MeApi(APIView):
    def get(self, request):
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


class WriteKeyRotateApi(APIView):
    def post(self, request, project_id: int):
        membership = membership_for_user(user=request.user, project_id=project_id)
        require_admin(membership)
        key = write_key_rotate(project=membership.project)
        return Response({"project": {"id": membership.project_id, "apiKey": key.key}})
