"""The one module that writes SQL for the farm's MariaDB.

Site databases and users are named from the site's id (``wp_<id>``), never from
its domain, and those names pass ``check_identifier`` before they are spliced
into SQL (identifiers cannot be bound parameters); table and column names read
from the server pass ``quote_name``. Passwords always travel as bound
parameters. Every change first looks at what exists, so running it twice is
harmless.

A schema's fingerprint (``table_fingerprint``) is what a backup's manifest
records and what a restore is verified against: per table, its row count and an
order-independent checksum of its rows. ProxySQL's admin interface speaks the
same protocol and has its own module, ``nodes.proxysql``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import MySQLdb
from django.conf import settings

from farm.errors import FarmError

SITE_IDENTIFIER = re.compile(r"^wp_[0-9]{1,12}$")
# The panel's own database and user (a panel on the farm): never a site's wp_ name.
PANEL_IDENTIFIER = re.compile(r"^panel(?:_[a-z0-9]{1,16})?$")
_TABLE_NAME = re.compile(r"^[^\x00-\x1f`]{1,64}$")
# Error numbers after which trying again can help (server gone, lock wait...).
_RETRYABLE = {1040, 1205, 1213, 2002, 2003, 2006, 2013}


class DatabaseError(FarmError):
    """MariaDB (or ProxySQL) refused or could not be reached."""


def check_identifier(name: str) -> str:
    """``name`` if it is a site's database or user name (``wp_<id>``); else DatabaseError."""
    if not SITE_IDENTIFIER.match(name):
        raise DatabaseError(f"Refusing unexpected database identifier {name!r}.")
    return name


def quote_name(name: str) -> str:
    """A table or column name read from the server, backquoted; DatabaseError if odd."""
    if not _TABLE_NAME.match(name):
        raise DatabaseError(f"Refusing unexpected table or column name {name!r}.")
    return f"`{name}`"


# -- connections ------------------------------------------------------------------


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


@contextmanager
def connect(endpoint: Endpoint, *, what: str) -> Iterator[Any]:
    """A connection (autocommit, utf8mb4); a MySQLdb error inside becomes DatabaseError."""
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


def rows(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# -- site databases ---------------------------------------------------------------


def database_exists(name: str) -> bool:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        return bool(
            rows(
                conn,
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                (check_identifier(name),),
            )
        )


def user_exists(user: str) -> bool:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        return bool(rows(conn, "SELECT 1 FROM mysql.user WHERE User=%s", (check_identifier(user),)))


def ensure_site_database(*, name: str, user: str, password: str) -> list[str]:
    """The database, and a user that may use only it; returns what was done.

    Where ProxySQL fronts MariaDB, the user must be added there too
    (``nodes.proxysql.ensure_site_user``)."""
    return _ensure_database(check_identifier(name), check_identifier(user), password)


def ensure_panel_database(*, name: str, user: str, password: str) -> list[str]:
    """The panel's own database when it runs on the farm (docs/plans/multi-node.md D7)
    and a user that may use only it, like a site's; returns what was done."""
    for identifier in (name, user):
        if not PANEL_IDENTIFIER.match(identifier):
            raise DatabaseError(f"Refusing unexpected panel database identifier {identifier!r}.")
    return _ensure_database(name, user, password)


def _ensure_database(name: str, user: str, password: str) -> list[str]:
    """Create database and user where missing; the identifiers are checked already."""
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
            # Keep the password in step with the one its secret holds.
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
        else:
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            done.append(f"created user {user}")
        cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (user,))
    return done


def drop_site_database(*, name: str, user: str) -> list[str]:
    """Drop the database and every host of its user; returns what was done."""
    check_identifier(name)
    check_identifier(user)
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
    return done


def site_databases() -> list[str]:
    """Every ``wp_<id>`` schema on the server (for reconcile)."""
    with connect(admin_endpoint(), what="MariaDB") as conn:
        names = [r[0] for r in rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")]
    return sorted(n for n in names if SITE_IDENTIFIER.match(n))


def site_users() -> list[str]:
    with connect(admin_endpoint(), what="MariaDB") as conn:
        users = [r[0] for r in rows(conn, "SELECT DISTINCT User FROM mysql.user")]
    return sorted(u for u in users if SITE_IDENTIFIER.match(u))


def recreate_schema(endpoint: Endpoint, schema: str, *, what: str) -> None:
    """Drop ``schema`` if it exists and create it again, empty (utf8mb4)."""
    check_identifier(schema)
    with connect(endpoint, what=what) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        cur.execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


# -- fingerprints -----------------------------------------------------------------


def _prepare_session(cur: Any) -> None:
    # The checksums render TIMESTAMPs as text: the same zone at backup and at verification.
    cur.execute("SET SESSION time_zone='+00:00'")
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _schema_exists(cur: Any, schema: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (schema,))
    return bool(cur.fetchall())


def table_fingerprint(cur: Any, schema: str) -> dict[str, dict[str, int]]:
    """Per base table: row count and BIT_XOR of a CRC32 per row (order does not matter).

    Each column contributes ISNULL, its length and its CRC32 as binary, so NULL
    differs from '' and no value can run into the next; per-column CRCs keep the
    row string short whatever the size of a BLOB. Runs on ``cur`` as it is: inside
    a consistent snapshot, it describes that snapshot.
    """
    cur.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
        "AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
        (schema,),
    )
    tables = [row[0] for row in cur.fetchall()]
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (schema,),
    )
    columns: dict[str, list[str]] = {}
    for table, column in cur.fetchall():
        columns.setdefault(table, []).append(column)
    fingerprint: dict[str, dict[str, int]] = {}
    for table in tables:
        parts = []
        for column in columns.get(table, []):
            value = f"CAST({quote_name(column)} AS BINARY)"
            parts += [f"ISNULL({value})", f"LENGTH({value})", f"CRC32({value})"]
        cur.execute(
            f"SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS(',', {', '.join(parts)}))), 0) "  # noqa: S608
            f"FROM {quote_name(schema)}.{quote_name(table)}"
        )
        count, crc = cur.fetchone()
        fingerprint[table] = {"rows": int(count), "crc": int(crc)}
    return fingerprint


def schema_fingerprint(endpoint: Endpoint, schema: str) -> dict[str, dict[str, int]]:
    """The fingerprint of a schema as it is now (to verify a restore against a backup's)."""
    check_identifier(schema)
    with connect(endpoint, what=f"MariaDB ({schema})") as conn, conn.cursor() as cur:
        _prepare_session(cur)
        if not _schema_exists(cur, schema):
            raise DatabaseError(f"There is no database {schema}.")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            return table_fingerprint(cur, schema)
        finally:
            conn.rollback()


class BackupSession:
    """One connection that holds a consistent snapshot of a schema for a backup: the
    dump is started under a brief global read lock, then the fingerprint is taken in
    the snapshot opened under the same lock (see backups.mariadb.consistent_db_backup)."""

    def __init__(self, conn: Any, cur: Any, schema: str) -> None:
        self._conn = conn
        self._cur = cur
        self.schema = schema

    def lock_all_tables(self, *, lock_wait_timeout: int) -> None:
        """FLUSH TABLES WITH READ LOCK, waiting at most that many seconds for statements."""
        self._cur.execute("SET SESSION lock_wait_timeout=%s", (lock_wait_timeout,))
        self._cur.execute("FLUSH TABLES WITH READ LOCK")

    def start_snapshot(self) -> None:
        self._cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")

    def unlock_tables(self) -> None:
        self._cur.execute("UNLOCK TABLES")  # does not end the transaction

    def fingerprint(self) -> dict[str, dict[str, int]]:
        return table_fingerprint(self._cur, self.schema)

    def end_snapshot(self) -> None:
        self._conn.rollback()


@contextmanager
def backup_session(endpoint: Endpoint, schema: str) -> Iterator[BackupSession]:
    check_identifier(schema)
    with (
        connect(endpoint, what=f"MariaDB (backup of {schema})") as conn,
        conn.cursor() as cur,
    ):
        _prepare_session(cur)
        if not _schema_exists(cur, schema):
            raise DatabaseError(f"There is no database {schema} to back up.")
        yield BackupSession(conn, cur, schema)
