"""Settings come from the environment and refuse unsafe production values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from farm import crypto
from farm.env import (
    database_settings,
    env_bool,
    env_int,
    env_path,
    env_str,
    parse_database_url,
)
from farm.settings import check_production_posture
from tests.support.processes import ROOT

STRONG = "k3J9x-Qv8ZpL2mN7rT4wY6aB1cD5eF0gH8iJ2kL4mN6oP9qR3sT"
FERNET_KEY = "kP1bRX2WAnQ5E3J5x6sVYvKxV6ZJ8cK9m2N4bT7cQ0s="


def test_database_url_forms(tmp_path):
    sqlite = database_settings("sqlite:///var/x.sqlite3", base_dir=tmp_path, conn_max_age=0)
    assert sqlite["NAME"] == str(tmp_path / "var/x.sqlite3")
    absolute = parse_database_url("sqlite:////srv/farm.sqlite3")
    assert absolute.name == "/srv/farm.sqlite3"
    mysql = database_settings(
        "mysql://farm:p%40ss@db.internal:3307/panel", base_dir=tmp_path, conn_max_age=60
    )
    assert (mysql["USER"], mysql["PASSWORD"], mysql["HOST"], mysql["PORT"], mysql["NAME"]) == (
        "farm",
        "p@ss",
        "db.internal",
        "3307",
        "panel",
    )
    assert mysql["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in mysql["OPTIONS"]["init_command"]


@pytest.mark.parametrize("url", ["oracle://x/y", "mysql://host", "sqlite://"])
def test_bad_database_urls_are_refused(url):
    with pytest.raises(ImproperlyConfigured):
        parse_database_url(url)


def test_env_readers_fail_loudly(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_str("X_SECRET") == "from-a-file"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="X_SECRET_FILE"):
        env_str("X_SECRET")


@pytest.mark.parametrize(
    ("debug", "key", "hosts", "message"),
    [
        (True, STRONG, ["panel.example"], "DEBUG"),
        (False, "short", ["panel.example"], "too weak"),
        (False, "django-insecure-" + "a" * 60, ["panel.example"], "too weak"),
        (False, "ab" * 40, ["panel.example"], "too weak"),
        (False, STRONG, [], "ALLOWED_HOSTS"),
    ],
)
def test_production_posture_is_enforced(debug, key, hosts, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        check_production_posture(
            debug=debug, secret_key=key, allowed_hosts=hosts, encryption_key=FERNET_KEY
        )
    check_production_posture(
        debug=False, secret_key=STRONG, allowed_hosts=["panel.example"], encryption_key=FERNET_KEY
    )


def test_item_12_production_refuses_an_encryption_key_derived_from_secret_key(tmp_path):
    """Issue 9, item 12: production must name FARM_ENCRYPTION_KEY; development and tests
    keep the key derived from SECRET_KEY."""
    good: dict[str, Any] = {"debug": False, "secret_key": STRONG}
    good["allowed_hosts"] = ["panel.example"]
    with pytest.raises(
        ImproperlyConfigured, match=r"FARM_ENCRYPTION_KEY \(or FARM_ENCRYPTION_KEY_FILE\)"
    ):
        check_production_posture(**good, encryption_key="")
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        check_production_posture(**good, encryption_key=STRONG)

    base = {"FARM_ENV": "production", "ALLOWED_HOSTS": "panel.example", "SECRET_KEY": STRONG}
    refused = _boot(base)
    assert refused.returncode != 0
    assert "FARM_ENCRYPTION_KEY (or FARM_ENCRYPTION_KEY_FILE) must be set" in refused.stderr
    key_file = tmp_path / "encryption-key"
    key_file.write_text(FERNET_KEY + "\n")
    booted = _boot({**base, "FARM_ENCRYPTION_KEY_FILE": str(key_file)})
    assert booted.returncode == 0, booted.stderr
    # Development still runs without one: the derived key, stable for one SECRET_KEY.
    derived = _boot({"FARM_ENV": "development", "SECRET_KEY": STRONG}, code=ROUND_TRIP)
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[-2:] == ["secret", crypto.derived_key(STRONG)]


ROUND_TRIP = (
    "from farm import crypto; from django.conf import settings; "
    "print(crypto.decrypt(crypto.encrypt('secret')), crypto.derived_key(settings.SECRET_KEY))"
)


def test_item_12_a_production_override_without_a_key_cannot_encrypt(settings):
    settings.PRODUCTION = True
    settings.FARM_ENCRYPTION_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="FARM_ENCRYPTION_KEY must be set"):
        crypto.encrypt("secret")
    settings.FARM_ENCRYPTION_KEY = FERNET_KEY
    assert crypto.decrypt(crypto.encrypt("secret")) == "secret"


def _boot(env: dict[str, str], code: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); print('booted'); {code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "farm.settings", **env},
    )


def test_production_process_refuses_to_start_with_debug_or_a_weak_key():
    base = {"FARM_ENV": "production", "ALLOWED_HOSTS": "panel.example"}
    debug_on = _boot({**base, "SECRET_KEY": STRONG, "DJANGO_DEBUG": "true"})
    assert debug_on.returncode != 0 and "DJANGO_DEBUG must be off" in debug_on.stderr
    weak = _boot({**base, "SECRET_KEY": "secret"})
    assert weak.returncode != 0 and "SECRET_KEY is too weak" in weak.stderr
    missing = _boot(base)
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    ok = _boot({**base, "SECRET_KEY": STRONG, "FARM_ENCRYPTION_KEY": FERNET_KEY})
    assert ok.returncode == 0, ok.stderr
    assert "booted" in ok.stdout


def test_queue_retry_must_exceed_timeout():
    bad = _boot({"FARM_Q_TIMEOUT": "60", "FARM_Q_RETRY": "60"})
    assert bad.returncode != 0 and "FARM_Q_RETRY (60) must be larger" in bad.stderr


def test_default_queue_is_the_orm_broker_and_redis_is_opt_in(settings):
    assert settings.Q_CLUSTER["orm"] == "default"
    assert settings.Q_CLUSTER["retry"] > settings.Q_CLUSTER["timeout"]
    redis = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.Q_CLUSTER.get('redis'), settings.Q_CLUSTER.get('orm'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "farm.settings",
            "FARM_QUEUE": "redis",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
    )
    assert redis.stdout.split() == ["redis://127.0.0.1:6379/3", "None"], redis.stderr


def test_relative_paths_are_taken_from_the_project_root(monkeypatch, tmp_path):
    base = tmp_path / "project"
    monkeypatch.setenv("FARM_X_DIR", "var/bench")
    assert env_path("FARM_X_DIR", Path("/default"), base=base) == base / "var" / "bench"
    monkeypatch.setenv("FARM_X_DIR", "/srv/farm")
    assert env_path("FARM_X_DIR", Path("/default"), base=base) == Path("/srv/farm")
    monkeypatch.delenv("FARM_X_DIR")
    assert env_path("FARM_X_DIR", Path("var"), base=base) == base / "var"


def test_a_relative_var_dir_gives_absolute_bind_mount_sources():
    """Docker refuses a relative bind mount source: FARM_VAR_DIR=var/test must still
    give absolute paths for everything the farm mounts."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'farm.settings'; "
        "django.setup(); from django.conf import settings as s; "
        "print(s.VAR_DIR, s.FARM_MARIADB_DATA, s.FARM_PROMETHEUS_TARGETS_DIR, "
        "s.FARM_SITES_ROOT, s.FARM_SECRETS_DIR, s.FARM_IMAGE_CACHE_DIR)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {"FARM_ENV": "test", "FARM_VAR_DIR": "var/test", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",  # not the project root: relative must mean the project, not the cwd
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == str(Path(ROOT) / "var" / "test")  # the test run's own var dir
    assert all(Path(p).is_absolute() and p.startswith(out[0]) for p in out), out


def test_item_16_check_deploy_in_production_warns_about_nothing(tmp_path):
    """Issue 9, item 16: `check --deploy` warned W005 (HSTS without subdomains), W008 (no
    HTTPS redirect) and W021 (no HSTS preload). The first two are on in production; preload
    is opt-in (SECURE_HSTS_PRELOAD) and W021 is silenced only while it is off."""
    production = {
        "PATH": "/usr/bin:/bin",
        "FARM_ENV": "production",
        "SECRET_KEY": "h7Gq2-Lw9ZxK4mP1rT8vY3aB6cD0eF5gH2iJ7kL9mN1oP4qR6sTu",
        "ALLOWED_HOSTS": "panel.example",
        "FARM_ENCRYPTION_KEY": FERNET_KEY,
        "FARM_RESTIC_PASSWORD": "x",
        "EMAIL_HOST": "smtp.example",  # Django's own mail check refuses the console backend
        "FARM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'panel.sqlite3'}",
    }

    def check(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**production, **extra},
        )

    clean = check()
    assert clean.returncode == 0, clean.stderr
    for warning in ("W005", "W008", "W021"):
        assert warning not in clean.stdout + clean.stderr
    # Each can still be turned off, and the check then says so again.
    relaxed = check(SECURE_SSL_REDIRECT="false", SECURE_HSTS_INCLUDE_SUBDOMAINS="false")
    assert relaxed.returncode != 0
    assert "W005" in relaxed.stderr and "W008" in relaxed.stderr
    preload = check(SECURE_HSTS_PRELOAD="true")
    assert preload.returncode == 0, preload.stderr


def test_item_16_production_sends_browsers_to_https_but_not_the_alertmanager_webhook(tmp_path):
    code = (
        "from django.conf import settings as s; from django.test import Client; "
        "c = Client(SERVER_NAME='panel.example'); "
        "print(c.get('/accounts/login/').status_code, c.get('/accounts/login/').get('Location'), "
        "c.get('/accounts/login/', headers={'X-Forwarded-Proto': 'https'}).status_code, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
        "any(__import__('re').match(p, 'alerts/webhook/alertmanager/') "
        "for p in s.SECURE_REDIRECT_EXEMPT))"
    )
    done = _boot(
        {
            "FARM_ENV": "production",
            "ALLOWED_HOSTS": "panel.example",
            "SECRET_KEY": STRONG,
            "FARM_ENCRYPTION_KEY": FERNET_KEY,
            "FARM_VAR_DIR": str(tmp_path),
        },
        code=code,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-6:] == [
        "301",
        "https://panel.example/accounts/login/",
        "200",
        "True",
        "False",
        "True",
    ]
