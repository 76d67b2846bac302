"""Sign-in pages: register, project switcher, invitations (login/logout/reset are Django's)."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.scoping import SESSION_PROJECT, ProjectRequest, project_page
from core.errors import ApplicationError, NotFound
from core.ratelimits import RateLimited, rate_limit

from .forms import InviteForm, RegisterForm
from .models import Invitation
from .selectors import invitation_for_project, invitation_for_token, membership_for_user
from .services import invitation_accept, invitation_create, invitation_revoke, user_register

INVITATION_SESSION = "invitation_token"


def _open_invitation(request: HttpRequest) -> Invitation | None:
    try:
        return invitation_for_token(token=request.session.get(INVITATION_SESSION, ""))
    except ApplicationError:
        return None


def user_register_view(request: HttpRequest) -> HttpResponse:
    # someone who follows an invitation link and has no account registers with the invited address
    invitation = _open_invitation(request)
    form = RegisterForm(request.POST or None, initial={"email": invitation.email} if invitation else None)
    if request.method == "POST" and form.is_valid():
        user, project = user_register(**form.cleaned_data)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_PROJECT] = project.id
        return redirect("accounts:invitation_accept" if invitation else "project_overview")
    return render(request, "registration/register.html", {"form": form, "invitation": invitation})


def invitation_open_view(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: keep its token in the session, out of the address bar (as Django's reset link does)."""
    request.session[INVITATION_SESSION] = token[:128]
    return redirect("accounts:invitation_accept")


def invitation_accept_view(request: HttpRequest) -> HttpResponse:
    """Show the invitation in the session; a POST by the invited address joins the project."""
    token = request.session.get(INVITATION_SESSION, "")
    try:
        invitation = invitation_for_token(token=token)
        if request.method == "POST":
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
            del request.session[INVITATION_SESSION]
            request.session[SESSION_PROJECT] = membership.project_id
            messages.success(request, f"You joined {membership.project.name} as {membership.role}.")
            return redirect("project_overview")
    except ApplicationError as exc:
        return render(request, "accounts/invitation.html", {"error": exc.message}, status=exc.status_code)
    user_email = request.user.email.lower() if request.user.is_authenticated else ""  # type: ignore[union-attr]
    context = {"invitation": invitation, "is_invitee": user_email == invitation.email, "user_email": user_email}
    return render(request, "accounts/invitation.html", context)


@login_required
@require_POST
def project_switch_view(request: HttpRequest) -> HttpResponse:
    try:
        membership = membership_for_user(user=request.user, project_id=request.POST.get("project_id"))
    except NotFound:
        raise PermissionDenied from None
    request.session[SESSION_PROJECT] = membership.project_id
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("project_overview")


@project_page
@require_POST
def member_invite_view(request: ProjectRequest) -> HttpResponse:
    if not request.membership.is_admin:
        raise PermissionDenied
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()))
        return redirect("ingest:integration_list")
    try:
        invitation = invitation_create(
            project=request.project,
            invited_by=request.user,  # type: ignore[arg-type]
            base_url=request.build_absolute_uri("/").rstrip("/"),
            **form.cleaned_data,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Invitation sent to {invitation.email}: they join as {invitation.role} once they accept it."
        )
    return redirect("ingest:integration_list")


@project_page
@require_POST
def invitation_revoke_view(request: ProjectRequest, invitation_id: int) -> HttpResponse:
    if not request.membership.is_admin:
        raise PermissionDenied
    try:
        invitation = invitation_for_project(project=request.project, invitation_id=invitation_id)
    except NotFound:
        raise Http404 from None
    invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("ingest:integration_list")


SIGN_IN_LIMITED = "Too many sign-in attempts. Wait a minute and try again."


def sign_in_rate_limit(request: HttpRequest, *, email: str) -> None:
    """Count a sign-in attempt, whatever its outcome, per client IP and per account; RateLimited past either.

    The dashboard, the admin and the API count in the same windows, so no door adds guesses.
    """
    rate_limit(request, scope="login-ip", rate=settings.LEADPULSE_RATE_LOGIN_IP)
    email = email.strip().lower()
    if email:
        rate_limit(request, scope="login-account", key=email, rate=settings.LEADPULSE_RATE_LOGIN_ACCOUNT)


class RateLimitedFormMixin:
    """Count each POST before its form is looked at; past a limit, 429 with the form blank again.

    The refused form is never bound: rendering a bound one validates it, and a sign-in form's
    errors would tell whether the password was right, past the limit.
    """

    limited_field: str

    def rate_limit_post(self, request: HttpRequest) -> None:
        raise NotImplementedError

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.rate_limit_post(request)
        except RateLimited as exc:
            view: Any = self
            form_kwargs = {key: value for key, value in view.get_form_kwargs().items() if key not in ("data", "files")}
            form_kwargs["initial"] = {
                **form_kwargs.get("initial", {}),
                self.limited_field: request.POST.get(self.limited_field, ""),
            }
            context = view.get_context_data(form=view.get_form_class()(**form_kwargs), rate_limited=True)
            response = view.render_to_response(context, status=429)
            response["Retry-After"] = str(max(int(getattr(exc, "wait", None) or 1), 1))
            return response
        return super().post(request, *args, **kwargs)  # type: ignore[misc]


class LoginView(RateLimitedFormMixin, auth_views.LoginView):
    """Django's login page, limited like the API's and the admin's: per client IP and per account."""

    redirect_authenticated_user = True
    limited_field = "username"

    def rate_limit_post(self, request: HttpRequest) -> None:
        sign_in_rate_limit(request, email=request.POST.get("username", ""))


class PasswordResetView(RateLimitedFormMixin, auth_views.PasswordResetView):
    """Django's reset-mail form, limited per client IP and per address.

    Every address counts, with an account or not, so the answer never tells which have one.
    """

    limited_field = "email"
    success_url = reverse_lazy("accounts:password_reset_done")

    def rate_limit_post(self, request: HttpRequest) -> None:
        rate_limit(request, scope="password-reset-ip", rate=settings.LEADPULSE_RATE_LOGIN_IP)
        email = request.POST.get("email", "").strip().lower()
        if email:
            rate_limit(
                request, scope="password-reset-account", key=email, rate=settings.LEADPULSE_RATE_PASSWORD_RESET_ACCOUNT
            )
