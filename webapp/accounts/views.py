"""Sign-up, sign-in, sign-out, and a consumer's API keys. Views parse and call the models."""

from __future__ import annotations

from django import forms
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.accounts.models import User
from webapp.api.models import ApiKey

SELF_SERVICE_ROLES = (User.Role.DRIVER, User.Role.REVIEWER, User.Role.CONSUMER)
MAX_KEYS = 10


class SignupForm(UserCreationForm):
    role = forms.ChoiceField(
        choices=[(r.value, r.label) for r in SELF_SERVICE_ROLES],
        initial=User.Role.DRIVER,
        help_text="Drivers register dashcams, reviewers check detections, consumers use the API.",
    )

    class Meta:
        model = User
        fields = ("username", "email")


def join(user: User, role: str) -> None:
    """Give `user` a role: the field and the group of the same name (plural)."""
    user.role = role
    user.save(update_fields=["role"])
    group, _ = Group.objects.get_or_create(name=f"{role}s")
    user.groups.add(group)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            join(user, form.cleaned_data["role"])
        auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("review" if user.role == User.Role.REVIEWER else "dashboard")
    return render(request, "accounts/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """A consumer's API keys: create (the secret is shown once) and revoke."""
    user: User = request.user  # type: ignore[assignment]
    shown = ""
    error = ""
    if request.method == "POST":
        if "revoke" in request.POST:
            key = ApiKey.objects.filter(owner=user, key_id=request.POST["revoke"]).first()
            if key is not None:
                key.revoke()
            else:
                error = "no such key of yours"
        elif user.api_keys.filter(revoked_at__isnull=True).count() >= MAX_KEYS:
            error = f"at most {MAX_KEYS} active keys"
        else:
            _key, shown = ApiKey.issue(user, request.POST.get("name", "")[:100])
    return render(
        request,
        "accounts/keys.html",
        {"keys": user.api_keys.order_by("-created_at"), "shown": shown, "error": error},
    )
