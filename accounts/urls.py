"""Sign-in pages: Django's login, logout and password reset (their usual names), registration, invitations."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("register/", views.user_register_view, name="user_register"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("accounts:password_reset_complete")),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("projects/switch/", views.project_switch_view, name="project_switch"),
    path("projects/invite/", views.member_invite_view, name="member_invite"),
    path("projects/invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view, name="invitation_revoke"),
    path("invitations/accept/", views.invitation_accept_view, name="invitation_accept"),
    path("invitations/<str:token>/", views.invitation_open_view, name="invitation_open"),
]
