"""Which image each part of the farm runs: our offline builds or the upstream images.

``FARM_IMAGES=local`` (the default outside production) uses the images
``manage.py build_images`` makes from Debian packages, tagged by content;
``upstream`` uses the public images. ``FARM_IMAGE_OVERRIDES`` (JSON, role ->
image) pins any single one, e.g. a registry mirror in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from nodes.images.build import local_image_map

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
    images = dict(local_image_map() if settings.FARM_IMAGES == "local" else UPSTREAM_IMAGES)
    images.update(settings.FARM_IMAGE_OVERRIDES)
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
    return {r.key: r for r in _RUNTIMES[settings.FARM_IMAGES]}


def site_runtime(key: str) -> SiteRuntime:
    runtimes = site_runtimes()
    if key not in runtimes:
        raise KeyError(f"Unknown runtime {key!r}; choose one of {', '.join(runtimes)}.")
    return runtimes[key]
