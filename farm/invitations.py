"""Operators invite people; nobody signs up. An invitation is a password-set link."""

from __future__ import annotations

from allauth.account.forms import ResetPasswordForm
from django.http import HttpRequest

from farm import audit
from farm.models import User


def invite_users(users: list[User], *, actor: User, request: HttpRequest) -> int:
    sent = 0
    for user in users:
        if not user.is_active:
            continue
        form = ResetPasswordForm(data={"email": user.email})
        if form.is_valid():
            form.save(request)
            audit.record("user.invite", actor=actor, target=user, request=request)
            sent += 1
    return sent
