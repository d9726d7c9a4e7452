"""Operators must enrol an authenticator app when FARM_REQUIRE_OPERATOR_MFA is on."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_an_operator_without_totp_is_sent_to_enrol(settings, operator):
    settings.FARM_REQUIRE_OPERATOR_MFA = True
    response = client_for(operator).get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")
    # The enrolment page is reachable (allauth first asks for the password again).
    enrol = client_for(operator).get(reverse("mfa_activate_totp"), follow=True)
    assert enrol.status_code == 200
    assert enrol.request["PATH_INFO"].startswith("/accounts/")


def test_an_operator_with_totp_uses_the_panel(settings, operator):
    settings.FARM_REQUIRE_OPERATOR_MFA = True
    Authenticator.objects.create(
        user=operator, type=Authenticator.Type.TOTP, data={"secret": "encrypted"}
    )
    assert client_for(operator).get(reverse("dashboard")).status_code == 200


def test_tenant_users_are_not_forced(settings, owner):
    settings.FARM_REQUIRE_OPERATOR_MFA = True
    assert client_for(owner).get(reverse("dashboard")).status_code == 200


def test_production_requires_it_by_default():
    import subprocess
    import sys

    from tests.support.processes import ROOT

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.FARM_REQUIRE_OPERATOR_MFA)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "farm.settings",
            "FARM_ENV": "production",
            "ALLOWED_HOSTS": "panel.example",
            "SECRET_KEY": "k3J9x-Qv8ZpL2mN7rT4wY6aB1cD5eF0gH8iJ2kL4mN6oP9qR3sT",
            "FARM_RESTIC_PASSWORD": "x",
        },
    )
    assert out.stdout.strip() == "True", out.stderr
