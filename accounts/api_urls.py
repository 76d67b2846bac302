from django.urls import path

from . import api

app_name = "accounts_api"
urlpatterns = [
    path("api/auth/register", api.RegisterApi.as_view(), name="auth-register"),
    path("api/auth/login", api.LoginApi.as_view(), name="auth-login"),
    path("api/auth/refresh", api.RefreshApi.as_view(), name="auth-refresh"),
    path("api/auth/logout", api.LogoutApi.as_view(), name="auth-logout"),
    path("api/auth/me", api.MeApi.as_view(), name="auth-me"),
    path("api/auth/project", api.CurrentProjectApi.as_view(), name="auth-project"),
    path("api/projects/<int:project_id>/rotate-key", api.WriteKeyRotateApi.as_view(), name="project-rotate-key"),
    path("api/projects", api.ProjectListApi.as_view(), name="project-list"),
    path("api/projects/<int:project_id>", api.ProjectDetailApi.as_view(), name="project-detail"),
    path("api/projects/<int:project_id>/secret-keys", api.SecretKeyListApi.as_view(), name="secret-key-list"),
    path("api/projects/<int:project_id>/invitations", api.InvitationListApi.as_view(), name="invitation-list"),
    path(
        "api/projects/<int:project_id>/invitations/<int:invitation_id>",
        api.InvitationDetailApi.as_view(),
        name="invitation-detail",
    ),
    path("api/invitations/accept", api.InvitationAcceptApi.as_view(), name="invitation-accept-api"),
    path(
        "api/projects/<int:project_id>/secret-keys/<int:key_id>",
        api.SecretKeyDetailApi.as_view(),
        name="secret-key-detail",
    ),
]
