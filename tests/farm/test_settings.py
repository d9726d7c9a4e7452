"""Settings come from the environment and refuse unsafe production values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

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
        check_production_posture(debug=debug, secret_key=key, allowed_hosts=hosts)
    check_production_posture(debug=False, secret_key=STRONG, allowed_hosts=["panel.example"])


def _boot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('booted')"],
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
    ok = _boot({**base, "SECRET_KEY": STRONG})
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
