"""Operators use a second factor in every session when FARM_REQUIRE_OPERATOR_MFA is on.

Issue 9, item 3: the Django admin's own login took a password alone (no MFA, no
rate limit), and the middleware only asked whether a device was enrolled.
"""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.test import Client, override_settings
from django.urls import reverse

from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

# The production limits (the test settings turn them off), counted in the real cache.
THROTTLED = override_settings(ACCOUNT_RATE_LIMITS={"login_failed": "10/m/ip,5/5m/key"})


def enrol_totp(user) -> str:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def current_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def log_in_with_code(client: Client, email: str, secret: str) -> None:
    """allauth's login: the password, then the code (its MFA stage)."""
    first = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert first["Location"] == reverse("mfa_authenticate")
    second = client.post(reverse("mfa_authenticate"), {"code": current_code(secret)})
    assert second.status_code == 302, second.content


@pytest.fixture
def mfa_required(settings):
    settings.FARM_REQUIRE_OPERATOR_MFA = True


def test_an_operator_without_totp_is_sent_to_enrol(mfa_required, operator):
    response = client_for(operator).get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")
    # The enrolment page is reachable (allauth first asks for the password again).
    enrol = client_for(operator).get(reverse("mfa_activate_totp"), follow=True)
    assert enrol.status_code == 200
    assert enrol.request["PATH_INFO"].startswith("/accounts/")


def test_the_session_that_enrols_uses_the_panel(mfa_required, operator):
    client = Client()
    client.post(reverse("account_login"), {"login": operator.email, "password": PASSWORD})
    # Enrolment wants a fresh password first, then a code from the new device.
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    activated = client.post(reverse("mfa_activate_totp"), {"code": current_code(secret)})
    assert activated.status_code == 302, activated.content
    assert Authenticator.objects.filter(user=operator, type="totp").exists()
    assert client.get(reverse("dashboard")).status_code == 200


def test_an_operator_with_totp_uses_the_panel_after_entering_a_code(mfa_required, operator):
    secret = enrol_totp(operator)
    client = Client()
    log_in_with_code(client, operator.email, secret)
    for page in ("dashboard", "site_list", "node_list", "admin:index"):
        assert client.get(reverse(page)).status_code == 200, page


def test_item_3_admin_login_skips_mfa_no_more(mfa_required, operator):
    """The reproduction: an operator with TOTP gave the password alone at /admin/login/
    and then used /sites/ and /nodes/."""
    enrol_totp(operator)
    client = Client()
    # The admin's login is allauth's login now: the form there is never processed.
    shown = client.get("/admin/login/?next=/admin/")
    assert shown.status_code == 302
    assert shown["Location"].startswith(reverse("account_login") + "?next=")
    posted = client.post(
        "/admin/login/?next=/admin/", {"username": operator.email, "password": PASSWORD}
    )
    assert posted.status_code == 302 and posted["Location"].startswith(reverse("account_login"))
    for page in ("site_list", "node_list"):
        response = client.get(reverse(page))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_item_3_a_session_that_skipped_the_second_factor_is_sent_to_the_mfa_step(
    mfa_required, operator
):
    """Enrolment is not enough: a session signed in without the code (any way other than
    allauth's login) gets the MFA step before any page, then the page it asked for."""
    secret = enrol_totp(operator)
    client = client_for(operator)  # a password-only session
    for path in (reverse("site_list"), reverse("node_list"), "/admin/", "/accounts/email/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert (
            response["Location"]
            == f"{reverse('mfa_reauthenticate')}?next={path.replace('/', '%2F')}"
        )
    step = client.get(f"{reverse('mfa_reauthenticate')}?next=/nodes/")
    assert step.status_code == 200
    passed = client.post(
        f"{reverse('mfa_reauthenticate')}?next=/nodes/", {"code": current_code(secret)}
    )
    assert passed["Location"] == "/nodes/"
    assert client.get(reverse("node_list")).status_code == 200
    assert client.get("/admin/").status_code == 200


def test_item_3_an_htmx_request_without_the_second_factor_is_redirected_whole(
    mfa_required, operator
):
    enrol_totp(operator)
    response = client_for(operator).get(reverse("site_list"), headers={"HX-Request": "true"})
    assert response["HX-Redirect"].startswith(reverse("mfa_reauthenticate"))


@THROTTLED
def test_item_3_admin_login_is_throttled(operator):
    """30 wrong passwords at /admin/login/ were never throttled: the admin login now is
    allauth's, which locks the account after 5 failures (and an address after 10)."""
    client = Client()
    for _ in range(30):
        client.post("/admin/login/", {"username": operator.email, "password": "wrong"})
    # The admin's form never checks a password, not even the right one.
    client.post("/admin/login/", {"username": operator.email, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    login = client.get("/admin/login/")["Location"].split("?")[0]
    for _ in range(5):
        client.post(login, {"login": operator.email, "password": "wrong"})
    refused = client.post(login, {"login": operator.email, "password": PASSWORD})
    assert refused.status_code == 200
    assert "Too many failed login attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_tenant_users_are_not_forced(mfa_required, owner):
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
            "FARM_ENCRYPTION_KEY": "kP1bRX2WAnQ5E3J5x6sVYvKxV6ZJ8cK9m2N4bT7cQ0s=",
            "FARM_RESTIC_PASSWORD": "x",
        },
    )
    assert out.stdout.strip() == "True", out.stderr
