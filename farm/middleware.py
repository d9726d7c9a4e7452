"""Operators pass a second factor in every session before they use the panel.

Enrolling a device is not enough: what counts is that *this session* used it.
allauth keeps the authentication methods a session went through
(``get_authentication_records``); an operator with an authenticator app whose
session shows no ``mfa`` record (a password-only login, such as the Django
admin's own login form once allowed) is sent to allauth's MFA step and then
back to the page asked for. An operator without one is sent to enrol; the
session that enrols counts as having passed, since activation checks a code
from the new device.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

# The pk of the authenticator this session enrolled (it proved the device then).
_ENROLLED_IN_SESSION = "farm_operator_mfa_enrolled"


def _totp(user_id: int) -> Authenticator | None:
    return Authenticator.objects.filter(user_id=user_id, type=Authenticator.Type.TOTP).first()


def passed_second_factor(request: HttpRequest, totp: Authenticator) -> bool:
    """Did this session use an authenticator (a TOTP code or a recovery code)?"""
    if request.session.get(_ENROLLED_IN_SESSION) == totp.pk:
        return True
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


class OperatorMfaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            not settings.FARM_REQUIRE_OPERATOR_MFA
            or not user.is_authenticated
            or not user.is_staff
            or request.path.startswith("/" + settings.STATIC_URL.lstrip("/"))
        ):
            return self.get_response(request)
        totp = _totp(user.pk)
        if totp is None:
            return self._enrol(request, user.pk)
        if passed_second_factor(request, totp):
            return self.get_response(request)
        if request.path in (reverse("mfa_reauthenticate"), reverse("account_logout")):
            return self.get_response(request)
        return self._send_to(
            request,
            f"{reverse('mfa_reauthenticate')}?{urlencode({'next': request.get_full_path()})}",
        )

    def _enrol(self, request: HttpRequest, user_id: int) -> HttpResponse:
        if not request.path.startswith("/accounts/"):
            return self._send_to(request, reverse("mfa_activate_totp"))
        # The accounts/ pages themselves (enrolment asks for the password again first).
        response = self.get_response(request)
        enrolled = _totp(user_id)
        if enrolled is not None:  # this very request activated it
            request.session[_ENROLLED_IN_SESSION] = enrolled.pk
        return response

    @staticmethod
    def _send_to(request: HttpRequest, url: str) -> HttpResponse:
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(url)
        return redirect(url)
