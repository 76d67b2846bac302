"""Sign-in pages: register, project switcher, invitations (login/logout/reset are Django's)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.selectors import membership_for_user
from leadpulse.dashboard import SESSION_PROJECT, project_page
from leadpulse.errors import NotFound
from leadpulse.ratelimits import RateLimited, rate_limit

from .forms import InviteForm, RegisterForm
from .services import member_invite, user_register


def register(request: HttpRequest) -> HttpResponse:
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, project = user_register(**form.cleaned_data)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_PROJECT] = project.id
        return redirect("overview")
    return render(request, "registration/register.html", {"form": form})


@login_required
@require_POST
def project_switch(request: HttpRequest) -> HttpResponse:
    try:
        membership = membership_for_user(user=request.user, project_id=request.POST.get("project_id"))
    except NotFound:
        raise PermissionDenied from None
    request.session[SESSION_PROJECT] = membership.project_id
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("overview")


@project_page
@require_POST
def member_invite_view(request: HttpRequest) -> HttpResponse:
    if not request.membership.is_admin:  # type: ignore[attr-defined]
        raise PermissionDenied
    form = InviteForm(request.POST)
    if form.is_valid():
        membership = member_invite(
            project=request.project,  # type: ignore[attr-defined]
            invited_by=request.user,  # type: ignore[arg-type]
            base_url=request.build_absolute_uri("/").rstrip("/"),
            **form.cleaned_data,
        )
        messages.success(request, f"{membership.user.email} is now {membership.role} of {request.project.name}.")  # type: ignore[attr-defined]
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()))
    return redirect("integrations")


class LoginView(auth_views.LoginView):
    """Django's login page, limited like the API's: per client IP and per account."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        email = (request.POST.get("username") or "").strip().lower()
        try:
            rate_limit(request, scope="login-ip", rate=settings.LEADPULSE_RATE_LOGIN_IP)
            if email:
                rate_limit(request, scope="login-account", key=email, rate=settings.LEADPULSE_RATE_LOGIN_ACCOUNT)
        except RateLimited as exc:
            response = render(request, "registration/login.html", {"form": self.get_form(), "rate_limited": True},
                              status=429)  # fmt: skip
            response["Retry-After"] = str(int(getattr(exc, "wait", None) or 1))
            return response
        return super().post(request, *args, **kwargs)
