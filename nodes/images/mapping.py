"""Which image each part of the farm runs: our offline builds or the upstream images.

``FARM_IMAGES=local`` (the default outside production) uses the images
``manage.py build_images`` makes from Debian packages, tagged by content;
``upstream`` uses the public images; ``registry`` (the multi-node farm) uses our
builds by digest from the private registry, reading only FARM_IMAGE_MANIFEST_FILE
(no apt sources, no Docker: it works inside the panel's own containers).
``FARM_IMAGE_OVERRIDES`` (JSON, role -> image) pins any single one, e.g. a registry
mirror in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from nodes.images.build import ROLES, local_image_map
from nodes.images.distribute import ImageDistributionError, read_manifest

UPSTREAM_IMAGES: dict[str, str] = {
    "wordpress": "wordpress:6.8-php8.2-fpm",
    "nginx": "nginx:1.27-alpine",
    "redis": "redis:7.4-alpine",
    "mariadb": "mariadb:11.4",
    "traefik": "traefik:v3.5",
    "restic": "restic/restic:0.18.0",
    "prometheus": "prom/prometheus:v3.5.0",
    "blackbox": "prom/blackbox-exporter:v0.27.0",
    "alertmanager": "prom/alertmanager:v0.28.1",
}


def image_map() -> dict[str, str]:
    if settings.FARM_IMAGES == "registry":
        images = registry_image_map()
    elif settings.FARM_IMAGES == "local":
        images = local_image_map()
    else:
        images = dict(UPSTREAM_IMAGES)
    images.update(settings.FARM_IMAGE_OVERRIDES)
    return images


def registry_image_map() -> dict[str, str]:
    """FARM_IMAGES=registry: role -> ``<registry>/farm/<role>@sha256:…`` from the manifest
    file alone; every role of ROLES must be in it."""
    path = settings.FARM_IMAGE_MANIFEST_FILE
    images = read_manifest(path)
    missing = [role for role in ROLES if role not in images]
    if missing:
        raise ImageDistributionError(
            f"The image manifest {path} has no image for {', '.join(missing)}: push every "
            "role's image again (farm_up --nodes pushes and rewrites it)."
        )
    return images


def image_for(role: str) -> str:
    try:
        return image_map()[role]
    except KeyError:
        raise KeyError(f"No image for role {role!r} in the image map.") from None


@dataclass(frozen=True)
class SiteRuntime:
    """A PHP/WordPress runtime a site can choose, and where that image keeps things."""

    key: str
    label: str
    role: str  # the image-map role of the php-fpm image
    wp_root: str  # WordPress core inside the php and nginx containers
    config_path: str  # where the generated wp-config is mounted
    content_dir: str  # where the site's own directory is mounted (WP_CONTENT_DIR)
    # php-fpm's health check (a FastCGI ping), or None when the image has no tool for it.
    php_health: tuple[str, ...] | None = None


# Debian's WordPress reads /etc/wordpress/config-default.php; the upstream
# image reads /var/www/html/wp-config.php. Both get the same generated file.
_RUNTIMES = {
    "local": [
        SiteRuntime(
            "php8.2",
            "PHP 8.2 · WordPress from Debian",
            "wordpress",
            "/usr/share/wordpress",
            "/etc/wordpress/config-default.php",
            "/var/www/site",
            php_health=("CMD", "/usr/local/bin/php-fpm-healthcheck"),
        ),
    ],
    "upstream": [
        SiteRuntime(
            "php8.2",
            "PHP 8.2 · WordPress 6.8",
            "wordpress",
            "/var/www/html",
            "/var/www/html/wp-config.php",
            "/var/www/site",
        ),
    ],
}


def site_runtimes() -> dict[str, SiteRuntime]:
    # The registry's images are the local builds, pushed: the same runtimes.
    family = "local" if settings.FARM_IMAGES == "registry" else settings.FARM_IMAGES
    return {r.key: r for r in _RUNTIMES[family]}


def site_runtime(key: str) -> SiteRuntime:
    runtimes = site_runtimes()
    if key not in runtimes:
        raise KeyError(f"Unknown runtime {key!r}; choose one of {', '.join(runtimes)}.")
    return runtimes[key]
