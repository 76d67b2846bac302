from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import (
    MinimumLengthValidator,
    get_default_password_validators,
    validate_password,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scoping import ProjectApiView, require_admin
from core.errors import Forbidden, NotAuthenticated, NotFound
from core.fields import (
    EmptySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictModelSerializer,
    StrictSerializer,
)
from core.openapi import ERROR_DESCRIPTIONS, PROJECT_PARAMETER, AutoSchema, ErrorSerializer, results_of
from core.ratelimits import rate_limit

from .authentication import ProjectKeyUser
from .models import INVITATION_ROLES, ApiKey, Invitation, Membership, Project, User
from .selectors import (
    invitation_for_project,
    invitations_for_project,
    memberships_for_user,
    secret_key_for_project,
    secret_keys_for_project,
    write_key_for_project,
)
from .services import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    project_create,
    project_update,
    secret_key_create,
    secret_key_revoke,
    session_refresh,
    session_revoke,
    session_tokens_issue,
    user_register,
    write_key_rotate,
)

AUTH_ERRORS = {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in (400, 401, 429)}
RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429], description="Seconds."
)
PROJECT_ID = OpenApiParameter(
    "project_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH, description="The project's id."
)
INVITATION_ID = OpenApiParameter(
    "invitation_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH, description="The invitation's id."
)
KEY_ID = OpenApiParameter(
    "key_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH, description="The secret key's id."
)
PASSWORD_MIN_LENGTH = max(
    (v.min_length for v in get_default_password_validators() if isinstance(v, MinimumLengthValidator)), default=1
)


@extend_schema_serializer(component_name="AuthUser")
def signed_in_user(request: Request, *, refusal: str) -> User:
    """The person calling a user-only endpoint; a secret key (a project's, not a person's) gets 403 `user_required`."""
    user = request.user
    if not isinstance(user, User):  # a ProjectKeyUser: anonymous callers were refused before the handler
        raise Forbidden(refusal, code="user_required")
    return user


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name"]
        read_only_fields = fields  # output only


@extend_schema_serializer(component_name="AuthSession")
class SessionSerializer(serializers.Serializer):
    user = UserSerializer()
    access = serializers.CharField(help_text="A JWT for `Authorization: Bearer …`.")
    refresh = serializers.CharField(
        help_text="Exchanged once for new tokens at `POST /api/auth/refresh`; revoked by `POST /api/auth/logout`."
    )
    token = serializers.CharField(help_text="The access token again (older clients read this).")


def _session_payload(user: User) -> dict:
    access, refresh = session_tokens_issue(user=user)
    return {"user": UserSerializer(user).data, "access": access, "refresh": refresh, "token": access}


class RegisterApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="AuthRegister")
    class InputSerializer(StrictSerializer):
        email = serializers.EmailField(max_length=254)
        password = StrictCharField(max_length=128, write_only=True)
        name = StrictCharField(max_length=150, required=False, allow_blank=True, default="")

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

    @extend_schema(
        summary="Create an account and its first project",
        description="Signs the new user in. 400 names the field: a taken email, or a password the "
        "password validators refuse (too short, too common, all digits, too like the email).",
        tags=["Auth"],
        auth=[],
        request=InputSerializer,
        parameters=[RETRY_AFTER],
        responses={201: SessionSerializer, 400: AUTH_ERRORS[400], 429: AUTH_ERRORS[429]},
    )
    def post(self, request: Request) -> Response:
        rate_limit(request, scope="register-ip", rate=settings.LEADPULSE_RATE_REGISTER_IP)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, _project = user_register(**serializer.validated_data)
        return Response(_session_payload(user), status=status.HTTP_201_CREATED)


class LoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="AuthLogin")
    class InputSerializer(StrictSerializer):
        email = serializers.EmailField(max_length=254)
        password = StrictCharField(max_length=128)

    @extend_schema(
        summary="Sign in with email and password",
        description="401 `invalid_credentials` for a wrong email or password; attempts are rate limited "
        "per IP and per account.",
        tags=["Auth"],
        auth=[],
        request=InputSerializer,
        parameters=[RETRY_AFTER],
        responses={200: SessionSerializer, **AUTH_ERRORS},
    )
    def post(self, request: Request) -> Response:
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


class RegisterInputSchema(OpenApiSerializerExtension):
    """States the password's minimum length, which the password validators (not the field) enforce."""

    target_class = RegisterApi.InputSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["password"]["minLength"] = PASSWORD_MIN_LENGTH
        return schema


class UserJWTScheme(SimpleJWTScheme):
    """Our JWT authentication is simplejwt's with revocation checks: the same `jwtAuth` scheme."""

    target_class = "accounts.authentication.UserJWTAuthentication"


class TokenApiView(APIView):
    """Takes a refresh token in the body, no credentials; a refused token is 401 (DRF would make it 403)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class RefreshApi(TokenApiView):
    @extend_schema_serializer(component_name="AuthRefresh")
    class InputSerializer(StrictSerializer):
        refresh = StrictCharField(help_text="The refresh token of the last sign-in or refresh.")

    @extend_schema(
        summary="Exchange a refresh token for a new access and refresh token",
        description="A refresh token works once: keep the new one. 401 `token_not_valid` when it is malformed, "
        "expired, forged, already used, signed out, or older than the user's last password change.",
        tags=["Auth"],
        auth=[],
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "AuthRefreshed",
                fields={
                    "access": serializers.CharField(help_text="A JWT for `Authorization: Bearer …`."),
                    "refresh": serializers.CharField(help_text="The next refresh token (this one is now spent)."),
                },
            ),
            400: AUTH_ERRORS[400],
            401: AUTH_ERRORS[401],
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        access, refresh = session_refresh(raw_refresh=serializer.validated_data["refresh"])
        return Response({"access": access, "refresh": refresh})


class LogoutApi(TokenApiView):
    @extend_schema_serializer(component_name="AuthLogout")
    class InputSerializer(StrictSerializer):
        refresh = StrictCharField(help_text="The refresh token to revoke.")

    @extend_schema(
        summary="Sign out: revoke a refresh token",
        description="The refresh token can no longer be exchanged; access tokens already issued expire on their "
        "own (`JWT_ACCESS_MINUTES`). A password change or reset revokes every token of the user at once. "
        "401 `token_not_valid` when the token is not a live refresh token.",
        tags=["Auth"],
        auth=[],
        request=InputSerializer,
        responses={205: OpenApiResponse(description="Signed out."), 400: AUTH_ERRORS[400], 401: AUTH_ERRORS[401]},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session_revoke(raw_refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_205_RESET_CONTENT)


MeProjectSerializer = inline_serializer(
    "AuthMeProject",
    fields={
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "role": serializers.ChoiceField(choices=Membership.Role.choices),
    },
    many=True,
)


class MeApi(APIView):
    @extend_schema(
        summary="The signed-in user and their projects",
        description="A user endpoint: a secret key gets 403 `user_required`.",
        tags=["Auth"],
        responses={
            200: inline_serializer("AuthMe", fields={"user": UserSerializer(), "projects": MeProjectSerializer}),
            401: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[401]),
            403: OpenApiResponse(ErrorSerializer, description="A secret key called a user endpoint."),
        },
    )
    def get(self, request: Request) -> Response:
        user = signed_in_user(request, refusal="This is a user endpoint; secret keys cannot use it.")
        memberships = Membership.objects.filter(user=user).select_related("project").order_by("created_at")
        return Response(
            {
                "user": UserSerializer(user).data,
                "projects": [{"id": m.project_id, "name": m.project.name, "role": m.role} for m in memberships],
            }
        )


class PathProjectSchema(AutoSchema):
    """For views that name their project in the path (or list them all): `X-LeadPulse-Project` is ignored there."""

    def get_override_parameters(self) -> list[Any]:
        return [p for p in super().get_override_parameters() if p is not PROJECT_PARAMETER]


class CurrentProjectApi(ProjectApiView):
    @extend_schema(
        summary="The current project and its write key",
        description="The project chosen by `X-LeadPulse-Project` (default: the caller's first), with the "
        "public write key the SDKs send (empty when it was revoked and not rotated).",
        tags=["Projects"],
        responses={
            200: inline_serializer(
                "ProjectCurrent",
                fields={
                    "project": inline_serializer(
                        "ProjectCurrentDetail",
                        fields={
                            "id": serializers.IntegerField(),
                            "name": serializers.CharField(),
                            "domain": serializers.CharField(),
                            "apiKey": serializers.CharField(help_text="The public write key, `lp_pub_…`."),
                        },
                    )
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
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
    schema = PathProjectSchema()

    @extend_schema(
        summary="Rotate the project's write key",
        description="Issues a new public write key and revokes the old one at once. Owners and admins only.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        request=None,
        responses={
            200: inline_serializer(
                "ProjectKeyRotated",
                fields={
                    "project": inline_serializer(
                        "ProjectKeyRotatedDetail",
                        fields={
                            "id": serializers.IntegerField(),
                            "apiKey": serializers.CharField(help_text="The new public write key, `lp_pub_…`."),
                        },
                    )
                },
            )
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        key = write_key_rotate(project=membership.project)
        return Response({"project": {"id": membership.project_id, "apiKey": key.key}})


@extend_schema_serializer(component_name="ProjectSecretKey")
class SecretKeySerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "createdAt", "lastUsedAt", "revokedAt"]


class SecretKeyListApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema(
        summary="List the project's secret keys",
        description="Revoked keys included; the key itself is never shown again, only its prefix.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        responses={200: results_of(SecretKeySerializer, "ProjectSecretKeyList")},
    )
    def get(self, request: Request, project_id: int) -> Response:
        keys = secret_keys_for_project(project=self.membership_for(project_id).project)
        return Response({"results": SecretKeySerializer(keys, many=True).data})

    @extend_schema(
        summary="Issue a secret key",
        description="The key (`lp_sec_…`) is in this response only. Signed-in owners and admins only: "
        "a secret key cannot issue keys (403 `user_required`).",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        request=None,
        responses={
            201: inline_serializer(
                "ProjectSecretKeyCreated",
                fields={
                    "id": serializers.IntegerField(),
                    "prefix": serializers.CharField(),
                    "createdAt": serializers.DateTimeField(),
                    "key": serializers.CharField(help_text="The secret key, `lp_sec_…`; shown once."),
                },
            )
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        if isinstance(request.user, ProjectKeyUser):
            # a leaked key must not be able to mint itself successors
            raise Forbidden("Secret keys are issued by signed-in owners and admins.", code="user_required")
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        api_key, raw_key = secret_key_create(project=membership.project)
        body = {"id": api_key.id, "prefix": api_key.prefix, "createdAt": api_key.created_at, "key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)


class SecretKeyDetailApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema(
        summary="Revoke a secret key",
        description="Takes effect at once; revoking a revoked key is a no-op. Owners and admins only.",
        tags=["Projects"],
        parameters=[PROJECT_ID, KEY_ID],
        responses={204: None},
    )
    def delete(self, request: Request, project_id: int, key_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        try:
            key_id = int(key_id)  # routed as an int today; a str route must still answer 404, not 500
        except (TypeError, ValueError):
            raise NotFound("Secret key not found.") from None
        secret_key_revoke(api_key=secret_key_for_project(project=membership.project, key_id=key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_serializer(component_name="Project")
class ProjectSerializer(StrictModelSerializer):
    name = StrictCharField(max_length=200)
    domain = StrictCharField(max_length=253, required=False, allow_blank=True)
    isActive = StrictBooleanField(source="is_active", required=False)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "domain", "isActive", "createdAt"]
        read_only_fields = ["id"]


@extend_schema_serializer(component_name="ProjectWithRole")
class ProjectWithRoleSerializer(ProjectSerializer):
    """A project as its member sees it (output only)."""

    domain = StrictCharField(read_only=True)
    isActive = StrictBooleanField(source="is_active", read_only=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices, read_only=True, help_text="The caller's role.")

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "role"]


@extend_schema_serializer(component_name="ProjectCreated")
class ProjectCreatedSerializer(ProjectWithRoleSerializer):
    apiKey = serializers.CharField(read_only=True, help_text="The new project's public write key, `lp_pub_…`.")

    class Meta(ProjectWithRoleSerializer.Meta):
        fields = [*ProjectWithRoleSerializer.Meta.fields, "apiKey"]


def _project_payload(project: Project, role: str) -> dict:
    return {**ProjectSerializer(project).data, "role": role}


class ProjectListApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema(
        summary="List the caller's projects",
        description="A user's projects with their role in each; a secret key sees only its own project.",
        tags=["Projects"],
        responses={200: results_of(ProjectWithRoleSerializer, "ProjectList")},
    )
    def get(self, request: Request) -> Response:
        user = request.user
        memberships = list(memberships_for_user(user=user)) if isinstance(user, User) else [self.membership_for(None)]
        return Response({"results": [_project_payload(m.project, m.role) for m in memberships]})

    @extend_schema(
        summary="Create a project",
        description="The caller becomes its owner; it gets a write key and the default scoring rules. "
        "Signed-in users only: a secret key gets 403 `user_required`.",
        tags=["Projects"],
        request=ProjectSerializer,
        responses={201: ProjectCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request, refusal="Projects are created by signed-in users.")
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = project_create(owner=user, name=data["name"], domain=data.get("domain", ""))
        body = {**_project_payload(project, Membership.Role.OWNER), "apiKey": write_key_for_project(project=project)}
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema(
        summary="Rename, re-domain or (de)activate a project",
        description="An inactive project's write key is refused by ingest at once. Owners and admins only.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        request=ProjectSerializer,
        responses={200: ProjectWithRoleSerializer},
    )
    def patch(self, request: Request, project_id: int) -> Response:
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


@extend_schema_serializer(component_name="ProjectInvitation")
class InvitationSerializer(serializers.ModelSerializer):
    invitedBy = serializers.EmailField(source="invited_by.email", allow_null=True, read_only=True)
    status = serializers.ChoiceField(
        choices=["pending", "expired"], read_only=True, help_text="`expired`: invite again to send a new link."
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    expiresAt = serializers.DateTimeField(source="expires_at", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invitedBy", "status", "createdAt", "expiresAt"]
        read_only_fields = fields  # output only


class InvitationListApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema_serializer(component_name="ProjectInvitationNew")
    class InputSerializer(StrictSerializer):
        email = StrictEmailField(max_length=254)
        role = serializers.ChoiceField(choices=INVITATION_ROLES, required=False, default=Membership.Role.MEMBER)

    @extend_schema(
        summary="List the project's open invitations",
        description="Invitations not yet accepted or revoked, expired ones included. Owners and admins only.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        responses={
            200: results_of(InvitationSerializer, "ProjectInvitationList"),
            403: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[403]),
        },
    )
    def get(self, request: Request, project_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        invitations = invitations_for_project(project=membership.project)
        return Response({"results": InvitationSerializer(invitations, many=True).data})

    @extend_schema(
        summary="Invite someone to the project",
        description="Emails the address a link to accept (valid 7 days); nothing changes for them until they "
        "accept, signed in as that address (`POST /api/invitations/accept`). Inviting an address again renews "
        "its invitation: a new link, and the old one stops working. 409 `already_member` for a member's "
        "address. Signed-in owners and admins only: a secret key gets 403 `user_required`.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        request=InputSerializer,
        responses={
            201: InvitationSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The address is already a member's."),
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        # a leaked key must not be able to turn itself into a person's lasting access
        user = signed_in_user(request, refusal="Invitations are sent by signed-in owners and admins.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = invitation_create(
            project=membership.project,
            invited_by=user,
            base_url=request.build_absolute_uri("/").rstrip("/"),
            **serializer.validated_data,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema(
        summary="Revoke an invitation",
        description="Its link stops working at once; revoking twice, or an accepted invitation, changes nothing. "
        "Owners and admins only.",
        tags=["Projects"],
        parameters=[PROJECT_ID, INVITATION_ID],
        responses={204: None},
    )
    def delete(self, request: Request, project_id: int, invitation_id: int) -> Response:
        membership = self.membership_for(project_id)
        require_admin(membership)
        invitation_revoke(invitation=invitation_for_project(project=membership.project, invitation_id=invitation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptApi(ProjectApiView):
    schema = PathProjectSchema()

    @extend_schema_serializer(component_name="InvitationAccept")
    class InputSerializer(StrictSerializer):
        token = StrictCharField(max_length=128, help_text="The token of the emailed link, `/invitations/<token>/`.")

    @extend_schema(
        summary="Accept an invitation",
        description="Joins its project with the invited role. The caller must be signed in as the invited "
        "address (403 `invitation_for_another_user`); a secret key gets 403 `user_required`. 404 for an unknown "
        "token; 410 `invitation_accepted`, `invitation_revoked` or `invitation_expired`.",
        tags=["Projects"],
        request=InputSerializer,
        responses={
            200: ProjectWithRoleSerializer,
            410: OpenApiResponse(ErrorSerializer, description="The invitation was accepted, revoked or expired."),
        },
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request, refusal="Invitations are accepted by the invited person.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = invitation_accept(token=serializer.validated_data["token"], user=user)
        return Response(_project_payload(membership.project, membership.role))
