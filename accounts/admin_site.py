"""The admin site: Django's, with its sign-in limited per client IP and per account like every other."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from core.ratelimits import RateLimited

from .views import SIGN_IN_LIMITED, sign_in_rate_limit


class AdminSite(admin.AdminSite):
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            try:
                sign_in_rate_limit(request, email=request.POST.get("username", ""))
            except RateLimited as exc:
                return self._login_refused(request, wait=getattr(exc, "wait", None))
        return super().login(request, extra_context)

    def _login_refused(self, request: HttpRequest, *, wait: float | None) -> HttpResponse:
        # The form is never bound: validating it would check the password and tell the answer.
        form = AdminAuthenticationForm(request, initial={"username": request.POST.get("username", "")})
        context = {
            **self.each_context(request),
            "title": _("Log in"),
            "app_path": request.get_full_path(),
            "form": form,
            REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name),
        }
        messages.error(request, SIGN_IN_LIMITED)
        request.current_app = self.name
        response = TemplateResponse(request, self.login_template or "admin/login.html", context, status=429)
        response["Retry-After"] = str(max(int(wait or 1), 1))
        return response
