from django.contrib.auth import views as auth_views
from django.urls import path

from . import api, views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("register/", views.user_register_view, name="register"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("projects/switch/", views.project_switch_view, name="project-switch"),
    path("projects/invite/", views.member_invite_view, name="member-invite"),
    path("projects/invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view, name="invitation-revoke"),
    path("invitations/accept/", views.invitation_accept_view, name="invitation-accept"),
    path("invitations/<str:token>/", views.invitation_open_view, name="invitation-open"),
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
