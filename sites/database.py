"""The one module that talks to the farm's MariaDB (and to ProxySQL's admin interface).

Site databases and users are named from the site's id (``wp_<id>``), never
from its domain, and those names are checked against ``SITE_IDENTIFIER``
before they are spliced into SQL (identifiers cannot be bound parameters).
Passwords always travel as bound parameters. Every operation first looks at
what exists, so running it twice is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import MySQLdb
from django.conf import settings

from farm.errors import FarmError

SITE_IDENTIFIER = re.compile(r"^wp_[0-9]{1,12}$")
# Error numbers after which trying again can help (server gone, lock wait...).
_RETRYABLE = {1040, 1205, 1213, 2002, 2003, 2006, 2013}


class DatabaseError(FarmError):
    """MariaDB or ProxySQL refused or could not be reached."""


def _check_identifier(name: str) -> str:
    if not SITE_IDENTIFIER.match(name):
        raise DatabaseError(f"Refusing unexpected database identifier {name!r}.")
    return name


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: str


def admin_endpoint() -> Endpoint:
    password = settings.FARM_MARIADB_ADMIN_PASSWORD
    if not password:
        path = Path(settings.FARM_SECRETS_DIR) / "mariadb-root-password"
        if path.exists():
            password = path.read_text().strip()
    return Endpoint(
        settings.FARM_MARIADB_HOST,
        settings.FARM_MARIADB_PORT,
        settings.FARM_MARIADB_ADMIN_USER,
        password,
    )


def proxysql_endpoint() -> Endpoint | None:
    url = settings.PROXYSQL_ADMIN_URL
    if not url:
        return None
    parts = urlsplit(url)
    return Endpoint(
        parts.hostname or "127.0.0.1",
        parts.port or 6032,
        unquote(parts.username or "admin"),
        unquote(parts.password or ""),
    )


@contextmanager
def connect(endpoint: Endpoint, *, what: str) -> Iterator[Any]:
    try:
        conn = MySQLdb.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            passwd=endpoint.password,
            connect_timeout=10,
            charset="utf8mb4",
            autocommit=True,
        )
    except MySQLdb.Error as exc:
        raise _translate(exc, f"Connecting to {what} at {endpoint.host}:{endpoint.port}") from exc
    try:
        yield conn
    except MySQLdb.Error as exc:
        raise _translate(exc, what) from exc
    finally:
        conn.close()


def _translate(exc: MySQLdb.Error, context: str) -> DatabaseError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    return DatabaseError(
        f"{context}: {text}" + (f" (error {code})" if code else ""), retryable=code in _RETRYABLE
    )


def _rows(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# -- site databases -----------------------------------------------------------


def database_exists(name: str) -> bool:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        return bool(
            _rows(
                conn,
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                (_check_identifier(name),),
            )
        )


def user_exists(user: str) -> bool:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        return bool(
            _rows(conn, "SELECT 1 FROM mysql.user WHERE User=%s", (_check_identifier(user),))
        )


def ensure_site_database(*, name: str, user: str, password: str) -> list[str]:
    """The database, and a user that may use only it; returns what was done."""
    _check_identifier(name)
    _check_identifier(user)
    done: list[str] = []
    with connect(admin_endpoint(), what="MariaDB") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (name,))
        if not cur.fetchall():
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            done.append(f"created database {name}")
        cur.execute("SELECT 1 FROM mysql.user WHERE User=%s AND Host='%%'", (user,))
        if cur.fetchall():
            # Keep the password in step with the one the site's secret holds.
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
        else:
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            done.append(f"created user {user}")
        cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (user,))
    if (proxysql := proxysql_endpoint()) is not None:
        done.extend(proxysql_add_user(proxysql, user=user, password=password, schema=name))
    return done


def drop_site_database(*, name: str, user: str) -> list[str]:
    _check_identifier(name)
    _check_identifier(user)
    done: list[str] = []
    with connect(admin_endpoint(), what="MariaDB") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (name,))
        if cur.fetchall():
            cur.execute(f"DROP DATABASE `{name}`")
            done.append(f"dropped database {name}")
        cur.execute("SELECT Host FROM mysql.user WHERE User=%s", (user,))
        for (host,) in cur.fetchall():
            cur.execute("DROP USER %s@%s", (user, host))
            done.append(f"dropped user {user}@{host}")
    if (proxysql := proxysql_endpoint()) is not None:
        done.extend(proxysql_remove_user(proxysql, user=user))
    return done


def site_databases() -> list[str]:
    """Every ``wp_<id>`` schema on the server (for reconcile)."""
    with connect(admin_endpoint(), what="MariaDB") as conn:
        names = [r[0] for r in _rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")]
    return sorted(n for n in names if SITE_IDENTIFIER.match(n))


def site_users() -> list[str]:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        users = [r[0] for r in _rows(conn, "SELECT DISTINCT User FROM mysql.user")]
    return sorted(u for u in users if SITE_IDENTIFIER.match(u))


def table_stats(name: str) -> dict[str, dict[str, int]]:
    """Row count and CHECKSUM TABLE of every table of a site's schema."""
    _check_identifier(name)
    stats: dict[str, dict[str, int]] = {}
    with connect(admin_endpoint(), what="MariaDB") as conn:
        tables = [
            r[0]
            for r in _rows(
                conn,
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                "AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
                (name,),
            )
        ]
        for table in tables:
            quoted = "`" + table.replace("`", "``") + "`"
            count = _rows(conn, f"SELECT COUNT(*) FROM `{name}`.{quoted}")[0][0]  # noqa: S608
            checksum = _rows(conn, f"CHECKSUM TABLE `{name}`.{quoted}")[0][1]
            stats[table] = {"rows": int(count), "checksum": int(checksum or 0)}
    return stats


# -- ProxySQL (production: sites reach Galera through it) ---------------------


def proxysql_add_user(endpoint: Endpoint, *, user: str, password: str, schema: str) -> list[str]:
    """Add or refresh the user in mysql_users, load it to runtime, save it to disk.

    Unchanged only when the config row is right *and* the user is in runtime: a
    LOAD that failed last time is done again.
    """
    _check_identifier(user)
    hostgroup = settings.PROXYSQL_HOSTGROUP
    with connect(endpoint, what="ProxySQL admin") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT password, default_schema, default_hostgroup FROM mysql_users WHERE username=%s",
            (user,),
        )
        rows = cur.fetchall()
        cur.execute("SELECT 1 FROM runtime_mysql_users WHERE username=%s", (user,))
        in_runtime = bool(cur.fetchall())
        wanted = (password, schema, str(hostgroup))
        if rows and tuple(str(v) for v in rows[0]) == wanted and in_runtime:
            return []
        if not (rows and tuple(str(v) for v in rows[0]) == wanted):
            cur.execute("DELETE FROM mysql_users WHERE username=%s", (user,))
            cur.execute(
                "INSERT INTO mysql_users (username, password, default_hostgroup, "
                "default_schema, active) VALUES (%s, %s, %s, %s, 1)",
                (user, password, hostgroup, schema),
            )
        cur.execute("LOAD MYSQL USERS TO RUNTIME")
        cur.execute("SAVE MYSQL USERS TO DISK")
    return [f"{'updated' if rows else 'added'} ProxySQL user {user}"]


def proxysql_remove_user(endpoint: Endpoint, *, user: str) -> list[str]:
    _check_identifier(user)
    with connect(endpoint, what="ProxySQL admin") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM mysql_users WHERE username=%s", (user,))
        if not cur.fetchall():
            return []
        cur.execute("DELETE FROM mysql_users WHERE username=%s", (user,))
        cur.execute("LOAD MYSQL USERS TO RUNTIME")
        cur.execute("SAVE MYSQL USERS TO DISK")
    return [f"removed ProxySQL user {user}"]


def proxysql_users(endpoint: Endpoint) -> list[str]:
    with connect(endpoint, what="ProxySQL admin") as conn:
        return sorted(r[0] for r in _rows(conn, "SELECT username FROM mysql_users"))
