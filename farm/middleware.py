"""Operators must enrol an authenticator app before they can use the panel."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

_SESSION_FLAG = "farm_operator_mfa_ok"


class OperatorMfaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.FARM_REQUIRE_OPERATOR_MFA and self._must_enrol(request):
            return redirect("mfa_activate_totp")
        return self.get_response(request)

    def _must_enrol(self, request: HttpRequest) -> bool:
        user = request.user
        if not user.is_authenticated or not user.is_staff:
            return False
        if request.session.get(_SESSION_FLAG):
            return False
        if request.path.startswith(("/accounts/", "/" + settings.STATIC_URL.lstrip("/"))):
            return False  # the accounts/ and mfa pages themselves, and assets
        if Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            request.session[_SESSION_FLAG] = True
            return False
        return True
