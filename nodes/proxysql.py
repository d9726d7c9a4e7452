"""The one module that talks to ProxySQL's admin interface (production: sites reach
Galera through ProxySQL, so every site's database user must be known to it).

The admin interface speaks MariaDB's protocol: connections, errors and the
identifier check are ``nodes.mariadb``'s. Without PROXYSQL_ADMIN_URL there is no
ProxySQL, and the ``*_site_user`` calls do nothing.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.conf import settings

from nodes import mariadb
from nodes.mariadb import Endpoint


def admin_endpoint() -> Endpoint | None:
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


def ensure_site_user(*, user: str, password: str, schema: str) -> list[str]:
    """The site's database user in ProxySQL, when there is one; returns what was done."""
    if (endpoint := admin_endpoint()) is None:
        return []
    return add_user(endpoint, user=user, password=password, schema=schema)


def remove_site_user(*, user: str) -> list[str]:
    if (endpoint := admin_endpoint()) is None:
        return []
    return remove_user(endpoint, user=user)


def add_user(endpoint: Endpoint, *, user: str, password: str, schema: str) -> list[str]:
    """Add or refresh the user in mysql_users, load it to runtime, save it to disk.

    Unchanged only when the config row is right *and* the user is in runtime: a
    LOAD that failed last time is done again.
    """
    mariadb.check_identifier(user)
    hostgroup = settings.PROXYSQL_HOSTGROUP
    with mariadb.connect(endpoint, what="ProxySQL admin") as conn, conn.cursor() as cur:
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


def remove_user(endpoint: Endpoint, *, user: str) -> list[str]:
    mariadb.check_identifier(user)
    with mariadb.connect(endpoint, what="ProxySQL admin") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM mysql_users WHERE username=%s", (user,))
        if not cur.fetchall():
            return []
        cur.execute("DELETE FROM mysql_users WHERE username=%s", (user,))
        cur.execute("LOAD MYSQL USERS TO RUNTIME")
        cur.execute("SAVE MYSQL USERS TO DISK")
    return [f"removed ProxySQL user {user}"]


def users(endpoint: Endpoint) -> list[str]:
    with mariadb.connect(endpoint, what="ProxySQL admin") as conn:
        return sorted(r[0] for r in mariadb.rows(conn, "SELECT username FROM mysql_users"))
