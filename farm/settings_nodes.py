"""The multi-node farm's settings: part of farm/settings.py (imported there), read
from the environment like the rest.

Which engines the panel talks to and fails over between, whether the overlay networks
are encrypted, what this process may do (a web process has no Docker socket), the
local multi-node farm of engine containers (`manage.py farm_up --nodes N`), and the panel
as a stack of that farm (its static files, its host name).
"""

from __future__ import annotations

import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from farm.env import env_bool, env_choice, env_docker_hosts, env_float, env_int, env_path, env_str

__all__ = [
    "FARM_DOCKER_HOSTS",
    "FARM_IMAGE_MANIFEST_FILE",
    "FARM_NODE_MOVE_TIMEOUT",
    "FARM_NODE_WATCH_INTERVAL",
    "FARM_OUTAGE_PROBE_EVERY",
    "FARM_OUTAGE_TIMEOUT",
    "FARM_OVERLAY_ENCRYPTION",
    "FARM_PANEL_HOST",
    "FARM_PROCESS_ROLE",
    "FARM_REGISTRY",
    "FARM_STATIC_WHITENOISE",
    "FARM_SWARM_HEARTBEAT_S",
    "WHITENOISE_STORAGES",
]

_BASE_DIR = Path(__file__).resolve().parent.parent
_VAR_DIR = env_path("FARM_VAR_DIR", _BASE_DIR / "var", base=_BASE_DIR)

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

# The private registry the images are pushed to and pulled from, as image names carry it
# (host:port, no scheme). 127.0.0.1:5000 is farm_registry's host port on every node, and
# Docker trusts a loopback registry over plain HTTP (docs/plans/multi-node.md, D3).
FARM_REGISTRY = env_str("FARM_REGISTRY", "127.0.0.1:5000").strip()
if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?", FARM_REGISTRY):
    raise ImproperlyConfigured(
        f"FARM_REGISTRY={FARM_REGISTRY!r} is not a registry address (host or host:port, "
        "no scheme, e.g. 127.0.0.1:5000)."
    )
# With FARM_IMAGES=registry, the only source of the image map: role -> image by digest,
# written by nodes.images.write_manifest after the push (a Swarm config in the panel's
# containers).
FARM_IMAGE_MANIFEST_FILE = env_path(
    "FARM_IMAGE_MANIFEST_FILE", _VAR_DIR / "farm-nodes" / "images.json", base=_BASE_DIR
)
# The node watcher (`manage.py watch_nodes`, C12) asks the Swarm for its nodes this often.
FARM_NODE_WATCH_INTERVAL = env_float("FARM_NODE_WATCH_INTERVAL", 5.0, minimum=0.5)
# A drain waits this long for the node's tasks to run elsewhere, and a drain or a failover
# this long for its sites to answer again through the edge, asked every
# FARM_OUTAGE_PROBE_EVERY seconds.
FARM_NODE_MOVE_TIMEOUT = env_int("FARM_NODE_MOVE_TIMEOUT", 180, minimum=1)
FARM_OUTAGE_TIMEOUT = env_int("FARM_OUTAGE_TIMEOUT", 180, minimum=1)
FARM_OUTAGE_PROBE_EVERY = env_float("FARM_OUTAGE_PROBE_EVERY", 0.5, minimum=0.05)
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
# The local multi-node farm's Swarm dispatcher heartbeat (`farm_up --nodes`; Swarm's own
# default is 5 s). 2 s finds a dead node in ~5 s instead of ~15 s, with no false downs
# measured here (benchmarks/failover.py; README "A local multi-node farm").
FARM_SWARM_HEARTBEAT_S = env_float("FARM_SWARM_HEARTBEAT_S", 2.0, minimum=0.5)
