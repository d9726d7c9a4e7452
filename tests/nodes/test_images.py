"""The offline image builder: content tags, a no-op second build, and images that work.

Needs a Docker Engine (skipped with the reason when none answers) and, for a
cold build, root (debootstrap, chroot). The cache lives in var/cache/images
of the checkout, so a second run of the suite is warm; the images stay in the
engine for the other suites to use.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.models.images
import pytest
from docker.models.containers import Container

from nodes import images
from nodes.images import ROLES, BuildReport, ImageBuildError, build_images, local_image_map
from nodes.images.builder import aptsources
from nodes.images.builder import recipes as recipes_module
from nodes.images.builder.debian import RootfsBuilder

# Exercises an external system through its module; the panel database plays no part.
pytestmark = pytest.mark.external

# -- helpers ---------------------------------------------------------------


def _docker_or_none() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextmanager
def running(
    client: docker.DockerClient,
    image: str,
    *,
    files: dict[str, bytes] | None = None,
    start: bool = True,
    **options: Any,
) -> Iterator[Container]:
    """A container with a unique name, ``files`` (absolute paths) put in before it
    starts, and always removed afterwards."""
    name = f"farm-test-{image.split('/')[-1].split(':')[0]}-{uuid.uuid4().hex[:10]}"
    # The images check themselves every 60 s (what a plain `docker run` gets); here the
    # image's own check runs every second, so wait_healthy proves it in seconds.
    options.setdefault("healthcheck", {"interval": FAST_HEALTH_INTERVAL_NS})
    container = client.containers.create(image, name=name, detach=True, **options)
    try:
        for path, data in (files or {}).items():
            # put_archive needs an existing folder: send the file with its parents from "/".
            container.put_archive("/", _tar_of({path.lstrip("/"): data}))
        if start:
            container.start()
        yield container
    finally:
        with suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


FAST_HEALTH_INTERVAL_NS = 1_000_000_000


def wait_healthy(container: Container, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health") or {}
        if health.get("Status") == "healthy":
            return
        if not state.get("Running") or health.get("Status") == "unhealthy":
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    logs = logs_of(container)
    checks = [entry.get("Output", "") for entry in (health.get("Log") or [])][-3:]
    pytest.fail(
        f"{container.name} is not healthy (state {state.get('Status')}, "
        f"health {health.get('Status')}):\nchecks: {checks}\nlogs:\n{logs}"
    )


def logs_of(container: Container, tail: int = 40) -> str:
    logs = container.logs(tail=tail)
    return logs.decode(errors="replace") if isinstance(logs, bytes) else ""


def exec_ok(container: Container, argv: list[str], **options: Any) -> str:
    code, output = container.exec_run(argv, **options)
    assert isinstance(output, bytes)
    text = output.decode(errors="replace")
    assert code == 0, f"{argv} exited {code}: {text}"
    return text


# -- fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = _docker_or_none()
    if client is None:
        pytest.skip("no Docker Engine answers (DOCKER_HOST or /var/run/docker.sock)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def built(docker_client: docker.DockerClient) -> BuildReport:
    """Every farm image, built once per session (a no-op when already present)."""
    try:
        return build_images(docker_client, cache_dir=images.default_cache_dir())
    except ImageBuildError as exc:
        if os.geteuid() != 0:
            pytest.skip(f"the farm images are not built and building needs root: {exc}")
        raise


# -- content tags ----------------------------------------------------------


def test_local_image_map_is_deterministic_and_needs_no_docker() -> None:
    first = local_image_map()
    assert first == local_image_map()
    assert tuple(first) == ROLES
    for role, tag in first.items():
        assert re.fullmatch(rf"farm/{role}:[0-9a-f]{{12}}", tag), tag


def test_changing_a_recipe_file_changes_that_image_tag_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "imagebuild"
    shutil.copytree(recipes_module.IMAGEBUILD_DIR, copy)
    monkeypatch.setattr(recipes_module, "IMAGEBUILD_DIR", copy)
    before = local_image_map()

    with (copy / "redis" / "redis.conf").open("a") as conf:
        conf.write("maxclients 5000\n")
    after_redis = local_image_map()
    assert {r for r in ROLES if after_redis[r] != before[r]} == {"redis"}

    # nginx carries WordPress core's static files, so it follows wordpress.
    with (copy / "wordpress" / "farm.ini").open("a") as ini:
        ini.write("memory_limit = 512M\n")
    after_wordpress = local_image_map()
    changed = {r for r in ROLES if after_wordpress[r] != after_redis[r]}
    assert changed == {"wordpress", "nginx"}

    # The exec bit is part of a file's identity.
    (copy / "redis" / "redis-healthcheck").chmod(0o644)
    assert local_image_map()["redis"] != after_redis["redis"]


def test_mirror_and_suite_come_from_the_host_apt_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# nothing here\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://other.example/\nSuites: nodistro\n"
        "Components: main\n"
    )
    (tmp_path / "sources.list.d" / "extra.list").write_text(
        "deb [signed-by=/k.gpg] http://third.example/apt nodistro main\n"
    )
    monkeypatch.delenv("FARM_DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("FARM_DEBIAN_SECURITY_MIRROR", raising=False)
    monkeypatch.delenv("FARM_DEBIAN_SUITE", raising=False)
    host = aptsources.read_host_sources(tmp_path)

    assert aptsources.host_suite(host) == "bookworm"
    assert [(s.uri, s.suite) for s in aptsources.build_sources("bookworm", host)] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://security.example/debian-security", "bookworm-security"),
    ]
    monkeypatch.setenv("FARM_DEBIAN_MIRROR", "http://local.example/debian/")
    assert aptsources.build_sources("bookworm", host)[0].uri == "http://local.example/debian"
    with pytest.raises(ImageBuildError) as refused:
        aptsources.build_sources("trixie", host)
    assert not refused.value.retryable


# -- building --------------------------------------------------------------


@pytest.mark.docker
def test_build_produces_every_image_under_its_content_tag(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    assert built.tags() == local_image_map()
    for outcome in built.images:
        image = docker_client.images.get(outcome.tag)
        assert image.labels["farm.image.role"] == outcome.role
        assert image.labels["org.opencontainers.image.title"] == f"farm/{outcome.role}"
        assert outcome.tag.endswith(":" + image.labels["farm.image.recipe"][:12])
        assert outcome.size_bytes > 0


@pytest.mark.docker
def test_second_build_builds_nothing_and_says_so(
    docker_client: docker.DockerClient, built: BuildReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a build step ran although every image is present")

    monkeypatch.setattr(RootfsBuilder, "base", must_not_run)
    monkeypatch.setattr(RootfsBuilder, "prepare", must_not_run)
    monkeypatch.setattr(docker.models.images.ImageCollection, "build", must_not_run)
    messages: list[str] = []

    again = build_images(
        docker_client, cache_dir=images.default_cache_dir(), progress=messages.append
    )

    assert again.built == ()
    assert again.tags() == built.tags()
    assert [o.action for o in again.images] == ["already-present"] * len(ROLES)
    for role in ROLES:
        assert any(m.startswith(f"{role}: ") and "already present" in m for m in messages)


@pytest.mark.docker
@pytest.mark.parametrize("role", [r for r in ROLES if r != "traefik"])
def test_debian_images_are_utc_and_keep_no_apt_state(
    docker_client: docker.DockerClient, built: BuildReport, role: str
) -> None:
    probe = [
        "find",
        "/var/lib/apt/lists",
        "/etc/apt/sources.list.d",
        "/var/cache/apt",
        "-mindepth",
        "1",
        "-not",
        "-name",
        "lock",
        "-not",
        "-name",
        "partial",
    ]
    with running(
        docker_client, built.tags()[role], start=False, entrypoint=["sleep", "60"], user="root"
    ) as container:
        container.start()
        assert exec_ok(container, probe).strip() == ""
        assert exec_ok(container, ["date", "+%Z"]).strip() == "UTC"
        assert exec_ok(container, ["cat", "/etc/timezone"]).strip() == "Etc/UTC"


# -- the images do their jobs -----------------------------------------------


@pytest.mark.docker
def test_wordpress_image_serves_php_over_fastcgi(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    script = (
        b"<?php echo 'farm-php ' . PHP_VERSION . ' ' . getenv('FARM_PROBE') . ' ' . PHP_SAPI;\n"
    )
    with running(
        docker_client,
        built.tags()["wordpress"],
        environment={"FARM_PROBE": "env-reaches-php"},
        files={"/tmp/probe.php": script},
    ) as container:
        wait_healthy(container)
        # env -i: FARM_PROBE can only come from php-fpm's own environment (clear_env = no).
        answer = exec_ok(
            container,
            [
                "env",
                "-i",
                "REQUEST_METHOD=GET",
                "SCRIPT_FILENAME=/tmp/probe.php",
                "SCRIPT_NAME=/probe.php",
                "/usr/bin/cgi-fcgi",
                "-bind",
                "-connect",
                "127.0.0.1:9000",
            ],
        )
        assert "farm-php 8.2." in answer
        assert "env-reaches-php fpm-fcgi" in answer
        assert exec_ok(container, ["id", "-u"]).strip() == "33"
        assert exec_ok(container, ["stat", "-c", "%u", "/var/www/site"]).strip() == "33"
        assert "wp-settings.php" in exec_ok(container, ["ls", "/usr/share/wordpress"])


@pytest.mark.docker
def test_nginx_image_answers_healthz_and_serves_a_mounted_site(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    site = (
        b"server {\n  listen 80;\n  root /usr/share/wordpress;\n"
        b'  location = /site { default_type text/plain; return 200 "site conf\\n"; }\n}\n'
    )
    with running(
        docker_client, built.tags()["nginx"], files={"/etc/nginx/conf.d/site.conf": site}
    ) as container:
        wait_healthy(container)
        get = ["busybox", "wget", "-q", "-O", "-"]
        assert exec_ok(container, [*get, "http://127.0.0.1:8080/healthz"]).strip() == "ok"
        assert exec_ok(container, [*get, "http://127.0.0.1/site"]).strip() == "site conf"
        # A bundled library that Debian's package symlinks elsewhere, served as a file.
        underscore = exec_ok(container, [*get, "http://127.0.0.1/wp-includes/js/underscore.min.js"])
        assert len(underscore) > 1000
        assert exec_ok(container, ["find", "/usr/share/wordpress", "-name", "*.php"]) == ""


@pytest.mark.docker
def test_redis_image_takes_extra_arguments_and_answers_ping(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    with running(
        docker_client, built.tags()["redis"], command=["--maxmemory", "48mb"]
    ) as container:
        deadline = time.monotonic() + 20
        while container.exec_run(["/usr/local/bin/redis-healthcheck"]).exit_code != 0:
            assert time.monotonic() < deadline, logs_of(container)
            time.sleep(0.5)
        config = exec_ok(container, ["redis-cli", "config", "get", "maxmemory"])
        assert "50331648" in config
        bind = exec_ok(container, ["redis-cli", "config", "get", "bind"])
        assert "0.0.0.0" in bind  # noqa: S104 - the contract: reachable on the site network


@pytest.mark.docker
def test_mariadb_image_initialises_from_a_password_file_with_a_remote_root(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    password = "it's a \\ test-" + uuid.uuid4().hex[:8]
    tag = built.tags()["mariadb"]
    with running(
        docker_client,
        tag,
        environment={
            "MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/db_root_password",
            "MARIADB_ROOT_HOST": "%",
        },
        files={"/run/secrets/db_root_password": password.encode() + b"\n"},
    ) as server:
        wait_healthy(server, timeout=120)
        server.reload()
        address = server.attrs["NetworkSettings"]["IPAddress"]
        assert address, "the server container has no address on the default bridge"
        with running(
            docker_client,
            tag,
            entrypoint=["mariadb"],
            command=[
                "-h",
                address,
                "-uroot",
                f"-p{password}",
                "-N",
                "-e",
                "SELECT CURRENT_USER(), @@character_set_server",
            ],
        ) as client:
            status = client.wait(timeout=60)
            output = logs_of(client)
        assert status["StatusCode"] == 0, output
        assert "root@%\tutf8mb4" in output
        assert exec_ok(server, ["test", "-x", "/usr/bin/mariabackup"]) == ""


@pytest.mark.docker
def test_traefik_image_runs_its_binary(
    docker_client: docker.DockerClient, built: BuildReport
) -> None:
    with running(docker_client, built.tags()["traefik"], command=["version"]) as container:
        status = container.wait(timeout=60)
        output = logs_of(container)
    assert status["StatusCode"] == 0, output
    assert re.search(r"Version:\s+3\.7\.", output), output
