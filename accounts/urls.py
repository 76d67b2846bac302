from django.urls import path
from rest_framework_simplejwt.views import TokenRefreshView

from . import api

urlpatterns = [
    path("api/auth/register", api.RegisterApi.as_view(), name="auth-register"),
    path("api/auth/login", api.LoginApi.as_view(), name="auth-login"),
    path("api/auth/refresh", TokenRefreshView.as_view(), name="auth-refresh"),
    path("api/auth/me", api.MeApi.as_view(), name="auth-me"),
    path("api/auth/project", api.CurrentProjectApi.as_view(), name="auth-project"),
    path("api/projects/<int:project_id>/rotate-key", api.WriteKeyRotateApi.as_view(), name="project-rotate-key"),
]
