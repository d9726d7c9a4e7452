"""The basic-auth credentials the panel sends to Prometheus and Alertmanager.

Both answer nothing without them (their ``--web.config.file``): site containers
reach the host's published ports, so an open Prometheus or Alertmanager would let
tenant code silence or inject alerts. The password is FARM_MONITORING_PASSWORD, or
the one farm_up generated into FARM_SECRETS_DIR.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

PASSWORD_FILE = "monitoring-password"


def monitoring_auth() -> tuple[str, str]:
    password = str(settings.FARM_MONITORING_PASSWORD or "")
    if not password:
        path = Path(settings.FARM_SECRETS_DIR) / PASSWORD_FILE
        password = path.read_text().strip() if path.exists() else ""
    return str(settings.FARM_MONITORING_USER), password
