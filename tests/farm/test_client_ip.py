"""Who the client is behind Traefik, and a login throttle every panel process shares.

Issue 9, item 9: with no trusted-proxy setting every client was the proxy's
address (10 failures locked everyone out, the audit log named the proxy), and
the throttle counted in a per-process cache.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from farm.client_ip import client_ip
from farm.models import AuditEvent, User
from tests.conftest import PASSWORD, client_for
from tests.support.processes import ROOT

TRAEFIK = "10.0.9.4"  # the proxy, on the network the panel trusts
BEHIND_TRAEFIK = override_settings(
    FARM_TRUSTED_PROXIES=["10.0.9.0/24"],
    # The production limits (the test settings turn them off).
    ACCOUNT_RATE_LIMITS={"login_failed": "10/m/ip,5/5m/key"},
)


def request(peer: str, forwarded: str | None = None):
    extra: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=peer, **extra)


@override_settings(FARM_TRUSTED_PROXIES=["10.0.9.0/24", "fd00::/8"])
@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Traefik appends the address it got the request from: that is the client.
        (TRAEFIK, "203.0.113.7", "203.0.113.7"),
        # Whatever the client wrote itself stays on the left and is ignored.
        (TRAEFIK, "1.2.3.4, 203.0.113.7", "203.0.113.7"),
        # Two trusted hops (a load balancer in front of Traefik): still the client.
        (TRAEFIK, "198.51.100.9, 10.0.9.7", "198.51.100.9"),
        ("fd00::4", "2001:db8::1", "2001:db8::1"),
        # An untrusted peer's header is its own words: the peer is the client.
        ("198.51.100.20", "127.0.0.1", "198.51.100.20"),
        ("198.51.100.20", "10.0.9.5, 203.0.113.7", "198.51.100.20"),
        # A trusted peer with no header, or garbage in it: the nearest trusted hop.
        (TRAEFIK, None, TRAEFIK),
        (TRAEFIK, "not-an-ip", TRAEFIK),
        ("::ffff:198.51.100.20", None, "198.51.100.20"),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(peer, forwarded, client):
    assert client_ip(request(peer, forwarded)) == client


def test_no_proxy_is_trusted_by_default():
    assert settings.FARM_TRUSTED_PROXIES == []
    assert client_ip(request(TRAEFIK, "203.0.113.7")) == TRAEFIK


def test_a_bad_trusted_proxy_setting_stops_the_process():
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "farm.settings",
            "FARM_ENV": "test",
            "FARM_TRUSTED_PROXIES": "10.0.0.0/8,traefik",
        },
    )
    assert done.returncode != 0 and "FARM_TRUSTED_PROXIES: 'traefik'" in done.stderr


def fail_logins(client: Client, times: int, **meta: Any) -> None:
    for n in range(times):  # a different account each time: the per-address limit
        client.post(
            reverse("account_login"), {"login": f"nobody{n}@x.test", "password": "x"}, **meta
        )


def logs_in(client: Client, user: User, **meta: Any) -> bool:
    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD}, **meta)
    return client.session.get("_auth_user_id") == str(user.pk)


@BEHIND_TRAEFIK
@pytest.mark.django_db
def test_item_9_clients_behind_the_proxy_are_throttled_separately(owner):
    attacker: dict[str, Any] = {"REMOTE_ADDR": TRAEFIK, "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    fail_logins(Client(), 10, **attacker)
    assert not logs_in(Client(), owner, **attacker)  # that address is locked out
    assert logs_in(Client(), owner, REMOTE_ADDR=TRAEFIK, HTTP_X_FORWARDED_FOR="198.51.100.9")


@BEHIND_TRAEFIK
@pytest.mark.django_db
def test_item_9_a_forged_forwarded_header_from_an_untrusted_peer_is_ignored(owner):
    # Every attempt claims another address; the throttle still counts the peer.
    for n in range(10):
        Client().post(
            reverse("account_login"),
            {"login": f"nobody{n}@x.test", "password": "x"},
            REMOTE_ADDR="198.51.100.20",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )
    assert not logs_in(
        Client(), owner, REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR="192.0.2.1"
    )


@BEHIND_TRAEFIK
@pytest.mark.django_db
def test_item_9_the_audit_log_records_the_client_not_the_proxy(operator, owner):
    response = client_for(operator).post(
        reverse("admin:farm_user_changelist"),
        {"action": "send_invitation", "_selected_action": [owner.pk]},
        REMOTE_ADDR=TRAEFIK,
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.invite")
    assert event.ip_address == "203.0.113.7"


@BEHIND_TRAEFIK
@pytest.mark.django_db
def test_item_9_the_throttle_is_kept_in_the_shared_panel_database(owner):
    """Not a per-process memory: the counters are rows in the panel's database, which
    every panel process and replica uses, so a second client (or process) sees them."""
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    attacker: dict[str, Any] = {"REMOTE_ADDR": TRAEFIK, "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    fail_logins(Client(), 10, **attacker)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT cache_key FROM {settings.FARM_CACHE_TABLE} WHERE cache_key LIKE %s",  # noqa: S608
            ["%allauth:rl:%login_failed%:ip:203.0.113.7"],
        )
        assert cursor.fetchall()
    assert not logs_in(Client(), owner, **attacker)


def _in_process(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "farm.settings", **env},
    )


def test_item_9_a_fresh_database_has_the_cache_and_two_processes_share_it(tmp_path):
    env = {
        "FARM_ENV": "test",
        "FARM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
    }
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert migrate.returncode == 0, migrate.stderr
    writer = _in_process("from django.core.cache import cache; cache.set('seen', 41)", env)
    assert writer.returncode == 0, writer.stderr
    reader = _in_process("from django.core.cache import cache; print(cache.get('seen'))", env)
    assert reader.stdout.strip() == "41", reader.stderr


def test_redis_is_the_cache_when_configured():
    done = _in_process(
        "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])",
        {"FARM_ENV": "test", "FARM_CACHE_URL": "redis://127.0.0.1:6379/2"},
    )
    assert done.stdout.strip() == "django.core.cache.backends.redis.RedisCache", done.stderr
