"""Settings come from the environment only; this module reads and checks them.

Every reader fails loudly (ImproperlyConfigured naming the variable) on a value
it cannot parse, because a typo in production must stop the process rather
than fall back to a default silently. Secrets may also be given as
``<NAME>_FILE`` pointing at a file (a Swarm secret under /run/secrets).

An app's own settings live in the app (``backups/restic/settings.py``,
``sites/dns_settings.py``), not in farm/settings.py: its code reads them with
``app_setting``, and its ``AppConfig.ready()`` imports its settings module so a
bad value still stops the process at start-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def app_setting(name: str, defaults: ModuleType) -> Any:
    """An app's setting: django.conf.settings' value when it has one (a test's
    override, a deployment's own settings module), else the one ``defaults`` (the
    app's settings module) read from the environment."""
    return getattr(settings, name, getattr(defaults, name))


def env_str(name: str, default: str = "") -> str:
    """A plain value, or the content of ``<name>_FILE`` when that is set."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_path(name: str, default: Path, *, base: Path) -> Path:
    """A filesystem path; a relative one is taken from ``base`` (the project root), so
    that ``FARM_VAR_DIR=var/bench`` means the same wherever a process starts and is
    absolute where it must be (a Docker bind mount source, say)."""
    raw = env_str(name)
    path = Path(raw) if raw else default
    return path if path.is_absolute() else base / path


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_docker_hosts(name: str) -> list[str]:
    """Docker Engine addresses, comma separated, each ``unix:///path`` or
    ``tcp://host:port``; empty when unset."""
    hosts = env_list(name, [])
    for host in hosts:
        if not _is_docker_address(host):
            raise ImproperlyConfigured(
                f"{name}: {host!r} is not a Docker Engine address "
                "(use unix:///path/docker.sock or tcp://host:port)."
            )
    return hosts


def _is_docker_address(host: str) -> bool:
    parts = urlsplit(host)
    if parts.scheme == "unix":
        return bool(parts.path) and not parts.netloc
    try:
        return parts.scheme == "tcp" and bool(parts.hostname) and parts.port is not None
    except ValueError:  # a port that is not a number
        return False


def env_json_dict(name: str) -> dict[str, str]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ImproperlyConfigured(f"{name} must be a JSON object of strings.")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


@dataclass(frozen=True)
class DatabaseUrl:
    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: dict[str, str] | None = None


_ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
}


def parse_database_url(url: str) -> DatabaseUrl:
    """``sqlite:////abs/path.sqlite3``, ``mysql://user:pass@host:3306/name?charset=utf8mb4``."""
    parts = urlsplit(url)
    engine = _ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported "
            f"(use one of: {', '.join(sorted(_ENGINES))})."
        )
    if parts.scheme == "sqlite":
        # sqlite:///relative.sqlite3 and sqlite:////absolute/path.sqlite3
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ImproperlyConfigured("DATABASE_URL for sqlite needs a file path.")
        return DatabaseUrl(engine=engine, name=path)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL needs a database name after the host.")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return DatabaseUrl(
        engine=engine,
        name=name,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=str(parts.port or ""),
        options=query,
    )


def database_settings(url: str, *, base_dir: Path, conn_max_age: int) -> dict[str, Any]:
    parsed = parse_database_url(url)
    if parsed.engine == "django.db.backends.sqlite3":
        path = Path(parsed.name)
        if not path.is_absolute():
            path = base_dir / path
        return {
            "ENGINE": parsed.engine,
            "NAME": str(path),
            # The workers and the web process share one file: wait for locks
            # instead of failing at once, and take the write lock at BEGIN so
            # two writers never deadlock on an upgrade from a read lock.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(path.with_name(f"test_{path.stem}.sqlite3"))},
        }
    settings: dict[str, Any] = {
        "ENGINE": parsed.engine,
        "NAME": parsed.name,
        "USER": parsed.user,
        "PASSWORD": parsed.password,
        "HOST": parsed.host,
        "PORT": parsed.port,
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
    }
    if parsed.engine == "django.db.backends.mysql":
        options: dict[str, Any] = {
            "charset": "utf8mb4",
            # Strict mode: MariaDB must refuse a value it would otherwise truncate.
            "init_command": (
                "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'"
            ),
            "isolation_level": "read committed",
        }
        options.update(parsed.options or {})
        settings["OPTIONS"] = options
        settings["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return settings
