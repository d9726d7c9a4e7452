"""``/healthz`` (the probe of the panel's web replicas) and the static files the panel
image serves itself (FARM_STATIC_WHITENOISE, docs/plans/multi-node.md D6)."""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from nodes import swarm_client
from tests.conftest import client_for
from tests.support.processes import ROOT


@pytest.fixture
def no_docker(monkeypatch):
    """Any attempt at a Docker client fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("/healthz asked for a Docker client")

    monkeypatch.setattr(docker.DockerClient, "__init__", refuse)
    monkeypatch.setattr(docker, "from_env", refuse)
    monkeypatch.setattr(swarm_client, "client", refuse)


@pytest.mark.django_db
def test_healthz_answers_ok_without_the_database_or_docker(
    client: Client, no_docker, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200


@pytest.mark.django_db
def test_healthz_of_a_signed_in_operator_reads_no_session(
    operator, no_docker, django_assert_num_queries
):
    signed_in = client_for(operator)  # a session cookie: the session and MFA checks would query
    with django_assert_num_queries(0):
        assert signed_in.get("/healthz").status_code == 200


@override_settings(
    ALLOWED_HOSTS=["panel.example"], SECURE_SSL_REDIRECT=True, FARM_REQUIRE_OPERATOR_MFA=True
)
def test_healthz_is_neither_refused_for_its_host_nor_redirected(no_docker):
    """Docker's health check asks ``http://127.0.0.1:8000/healthz``: no allowed host, no HTTPS."""
    response = Client().get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    # Any other path on that host is still refused.
    assert Client().get("/", HTTP_HOST="127.0.0.1:8000").status_code == 400


def test_healthz_takes_only_get_and_head(no_docker):
    assert Client().post("/healthz").status_code == 405


def test_the_web_replicas_image_settings_put_whitenoise_right_after_security(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps([settings.MIDDLEWARE, settings.STORAGES['staticfiles']['BACKEND']]))"
    )
    env = {"PATH": "/usr/bin:/bin", "FARM_VAR_DIR": str(tmp_path)}

    def boot(**extra: str) -> tuple[list[str], str]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "farm.settings", **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        middleware, storage = json.loads(done.stdout.strip().splitlines()[-1])
        return middleware, storage

    middleware, storage = boot(FARM_STATIC_WHITENOISE="1")
    assert middleware[:3] == [
        "farm.health.HealthzMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
    ]
    assert storage == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    middleware, storage = boot()
    assert not any("whitenoise" in m for m in middleware)
    assert storage == "django.contrib.staticfiles.storage.StaticFilesStorage"


def test_collected_static_files_are_served_under_their_hashed_names(tmp_path, settings):
    """What the panel image does: collectstatic at build time, WhiteNoise at run time."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.MIDDLEWARE = [
        "farm.health.HealthzMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        *settings.MIDDLEWARE[2:],
    ]
    call_command("collectstatic", "--noinput", verbosity=0)
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["farm/farm.css"]
    assert hashed != "farm/farm.css" and hashed.startswith("farm/farm.")
    assert (tmp_path / "static" / (hashed + ".gz")).exists()  # compressed beside it

    response = Client().get(f"/static/{hashed}", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]  # a hashed name never changes content
    assert Client().get("/static/farm/no-such-file.css").status_code == 404
