from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from farm.client_ip import client_ip


class InviteOnlyAccountAdapter(DefaultAccountAdapter):
    """Nobody signs up: operators invite people (farm.services.invite_user)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        """Login throttling counts per client, as the audit log names it (farm.client_ip)."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip
