"""The multi-node farm's settings: part of farm/settings.py (imported there), read
from the environment like the rest.

Which engines the panel talks to and fails over between, whether the overlay networks
are encrypted, what this process may do (a web process has no Docker socket), the
local multi-node farm of engine containers (`manage.py farm_up --nodes N`), and the panel
as a stack of that farm (its static files, its host name).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from farm.env import env_bool, env_choice, env_docker_hosts, env_str

__all__ = [
    "FARM_DOCKER_HOSTS",
    "FARM_OVERLAY_ENCRYPTION",
    "FARM_PANEL_HOST",
    "FARM_PROCESS_ROLE",
    "FARM_STATIC_WHITENOISE",
    "WHITENOISE_STORAGES",
]

_PRODUCTION = env_choice("FARM_ENV", "development", ("development", "test", "production")) == (
    "production"
)

# Several engines (unix:// or tcp://, comma separated): the panel uses the first that answers
# and is a Swarm manager, and fails over (nodes/swarm_client.py). Empty: DOCKER_HOST alone.
FARM_DOCKER_HOSTS = env_docker_hosts("FARM_DOCKER_HOSTS")
# IPsec on the farm's overlay networks: auto (on unless nodes/overlay.py finds it cannot be),
# on, off. Production refuses off: the private networks would cross hosts in clear.
FARM_OVERLAY_ENCRYPTION = env_choice("FARM_OVERLAY_ENCRYPTION", "auto", ("auto", "on", "off"))
if _PRODUCTION and FARM_OVERLAY_ENCRYPTION == "off":
    raise ImproperlyConfigured(
        "FARM_OVERLAY_ENCRYPTION=off is refused in production: the database and PHP traffic "
        "of the overlay networks would cross hosts unencrypted (use auto or on)."
    )
# web: serves pages, has no Docker socket (asking Docker is an error); worker; all.
FARM_PROCESS_ROLE = env_choice("FARM_PROCESS_ROLE", "all", ("web", "worker", "all"))

# The panel as a stack of the farm it manages (nodes/platform_panel.py, the "panel" image).
# On: the panel serves its own static files (WhiteNoise, compressed, with hashed names that
# `collectstatic` wrote at image build time). Off: `runserver` serves them in development.
FARM_STATIC_WHITENOISE = env_bool("FARM_STATIC_WHITENOISE", False)
WHITENOISE_STORAGES = {  # settings.py's STORAGES when it is on
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# The host name Traefik routes to the panel's web replicas.
FARM_PANEL_HOST = env_str("FARM_PANEL_HOST", "panel.localhost").strip().lower()
