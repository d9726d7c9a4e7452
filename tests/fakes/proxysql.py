"""A local stand-in for ProxySQL's admin interface, so tests can drive the real mysqlclient.

ProxySQL's admin port (6032) speaks the MySQL protocol, but behind it is SQLite:
statements it does not intercept run on an SQLite database of config tables
(``main``, with the saved copy attached as ``disk``). The fake does the same with
sqlite3 and ProxySQL's ``mysql_users`` schema, so defaults, CHECK constraints,
the (username, backend) key and error texts are SQLite's, as on the real thing.
mysql-mimic supplies the wire protocol. Modelled on ProxySQL 2.x:

* only ``admin-admin_credentials`` log in; anyone else gets 1045 "ProxySQL Error:
  Access denied ..."; every later error is 1045/28000 "ProxySQL Admin Error: ...";
* result columns are all text (VAR_STRING): numbers arrive as strings;
* the status flags say autocommit and NO_BACKSLASH_ESCAPES (proxysql#1446), so
  clients double quotes in strings, the only escape SQLite knows;
* SELECT/INSERT/REPLACE/UPDATE/DELETE on ``mysql_users``, and SELECT from
  ``runtime_mysql_users`` and ``disk.mysql_users``, run on SQLite as sent;
* ``LOAD MYSQL USERS TO RUNTIME`` and its aliases copy the active users to runtime,
  one row per side (frontend, backend), clear passwords hashed as with the default
  ``admin-hash_passwords=true``; ``SAVE MYSQL USERS TO DISK`` and aliases copy
  the config table to disk;
* clients' set-up statements (``SET NAMES``, ``SET autocommit``, ``SELECT
  @@version_comment LIMIT 1``, ``BEGIN``/``COMMIT``...) are accepted.

Anything else gets the same error shape: SQLite's message if SQLite cannot compile
it (as ProxySQL would say), else one saying the fake does not model it (other
tables, LOAD ... TO MEMORY, SAVE ... FROM RUNTIME, SHOW ...). Tests read the
layers with ``mysql_users()``, ``runtime_mysql_users()``, ``disk_mysql_users()``
and what clients sent with ``statements``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mysql_mimic import (  # type: ignore[import-untyped]
    ColumnType,
    IdentityProvider,
    MysqlServer,
    NativePasswordAuthPlugin,
    ResultColumn,
    ResultSet,
    User,
)
from mysql_mimic.auth import Forbidden, Success  # type: ignore[import-untyped]
from mysql_mimic.charset import CharacterSet  # type: ignore[import-untyped]
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES  # type: ignore[import-untyped]
from mysql_mimic.control import LocalControl  # type: ignore[import-untyped]
from mysql_mimic.errors import ErrorCode, MysqlError  # type: ignore[import-untyped]
from mysql_mimic.session import BaseSession  # type: ignore[import-untyped]
from mysql_mimic.types import Capabilities, ServerStatus  # type: ignore[import-untyped]
from mysql_mimic.variables import (  # type: ignore[import-untyped]
    SYSTEM_VARIABLES,
    GlobalVariables,
    SessionVariables,
)

HOST = "127.0.0.1"
SERVER_VERSION = "5.5.30"  # mysql-server_version's default
VERSION_COMMENT = "(ProxySQL Admin Module)"

# ProxySQL's mysql_users table (2.1 and later); runtime_mysql_users and
# disk.mysql_users have the same columns.
USER_COLUMNS = (
    "username", "password", "active", "use_ssl", "default_hostgroup", "default_schema",
    "schema_locked", "transaction_persistent", "fast_forward", "backend", "frontend",
    "max_connections", "attributes", "comment",
)  # fmt: skip
_COLUMN_LIST = ", ".join(USER_COLUMNS)
_USERS_TABLE_BODY = """(
    username VARCHAR NOT NULL ,
    password VARCHAR ,
    active INT CHECK (active IN (0,1)) NOT NULL DEFAULT 1 ,
    use_ssl INT CHECK (use_ssl IN (0,1)) NOT NULL DEFAULT 0 ,
    default_hostgroup INT NOT NULL DEFAULT 0 ,
    default_schema VARCHAR ,
    schema_locked INT CHECK (schema_locked IN (0,1)) NOT NULL DEFAULT 0 ,
    transaction_persistent INT CHECK (transaction_persistent IN (0,1)) NOT NULL DEFAULT 1 ,
    fast_forward INT CHECK (fast_forward IN (0,1)) NOT NULL DEFAULT 0 ,
    backend INT CHECK (backend IN (0,1)) NOT NULL DEFAULT 1 ,
    frontend INT CHECK (frontend IN (0,1)) NOT NULL DEFAULT 1 ,
    max_connections INT CHECK (max_connections >=0) NOT NULL DEFAULT 10000 ,
    attributes VARCHAR CHECK (JSON_VALID(attributes) OR attributes = '') NOT NULL DEFAULT '' ,
    comment VARCHAR NOT NULL DEFAULT '' ,
    PRIMARY KEY (username, backend) ,
    UNIQUE (username, frontend))"""
_LAYERS = ("main.mysql_users", "main.runtime_mysql_users", "disk.mysql_users")

# Commands are matched like ProxySQL matches them: on the statement with runs of
# whitespace collapsed and trailing semicolons and spaces removed, ignoring case.
_LOAD_USERS_TO_RUNTIME = {
    "LOAD MYSQL USERS TO RUNTIME", "LOAD MYSQL USERS TO RUN",
    "LOAD MYSQL USERS FROM MEMORY", "LOAD MYSQL USERS FROM MEM",
}  # fmt: skip
_SAVE_USERS_TO_DISK = {
    "SAVE MYSQL USERS TO DISK", "SAVE MYSQL USERS FROM MEMORY", "SAVE MYSQL USERS FROM MEM",
}  # fmt: skip
_SESSION_SETUP = re.compile(
    r"SET (?:AUTOCOMMIT|@@SESSION\.AUTOCOMMIT|NAMES |CHARACTER|COLLATION|SQL_AUTO_IS_NULL"
    r"|SQL_SAFE_UPDATES|LOCK_WAIT_TIMEOUT|SESSION TRANSACTION).*"
    r"|BEGIN|START TRANSACTION|COMMIT|ROLLBACK",
    re.IGNORECASE,
)
_SET_NAMES = re.compile(r"SET NAMES '?(\w+)'?", re.IGNORECASE)
_SELECT_VERSION_COMMENT = "SELECT @@VERSION_COMMENT LIMIT 1"
# Statements that go to SQLite as they are: the mysql_users family only.
_ON_SQLITE = re.compile(
    r"SELECT \S.* FROM (?:(?:main\.)?(?:runtime_)?mysql_users|disk\.mysql_users)"
    r"(?: (?:WHERE|ORDER BY|LIMIT) .*)?"
    r"|(?:INSERT|REPLACE|INSERT OR REPLACE) INTO (?:main\.)?mysql_users[ (].*"
    r"|UPDATE (?:main\.)?mysql_users SET .*"
    r"|DELETE FROM (?:main\.)?mysql_users(?: WHERE .*)?",
    re.IGNORECASE | re.DOTALL,
)
# Admin commands ProxySQL handles itself; SQLite's "syntax error" would mislead.
_OTHER_ADMIN_COMMAND = re.compile(r"(?:LOAD|SAVE|SHOW|SET|SELECT @@|PROXYSQL)\b", re.IGNORECASE)


class AdminError(Exception):
    """What the admin interface answers with error 1045 (its code for every error)."""


@dataclass(frozen=True)
class AdminAnswer:
    """A result set (``columns`` not empty) or an OK packet with a count of changed rows."""

    columns: tuple[str, ...] = ()
    rows: list[tuple[str | None, ...]] = field(default_factory=list)
    affected_rows: int = 0


def native_password_hash(password: str) -> str:
    """The ``*``-prefixed mysql_native_password hash that ProxySQL loads to runtime."""
    stage1 = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(stage1, usedforsecurity=False).hexdigest().upper()


class FakeProxySQLAdmin:
    """The admin interface's state and its answer to each statement (no networking here)."""

    def __init__(self, *, user: str, password: str, fail_load_to_runtime: bool = False) -> None:
        self.user = user
        self.password = password
        self.fail_load_to_runtime = fail_load_to_runtime
        self.port = 0  # set by running_fake_proxysql once the server listens
        self._statements: list[str] = []
        self._lock = threading.Lock()
        # The server thread answers, the test thread inspects: the lock orders them.
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("ATTACH DATABASE ':memory:' AS disk")
        for table in _LAYERS:
            self._db.execute(f"CREATE TABLE {table} {_USERS_TABLE_BODY}")

    @property
    def url(self) -> str:
        """What PROXYSQL_ADMIN_URL would hold for this server."""
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"mysql://{credentials}@{HOST}:{self.port}"

    @property
    def statements(self) -> list[str]:
        """Every statement received, as sent, oldest first (refused ones included)."""
        with self._lock:
            return list(self._statements)

    def mysql_users(self) -> list[dict[str, Any]]:
        return self._layer("main.mysql_users")

    def runtime_mysql_users(self) -> list[dict[str, Any]]:
        return self._layer("main.runtime_mysql_users")

    def disk_mysql_users(self) -> list[dict[str, Any]]:
        return self._layer("disk.mysql_users")

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str) -> AdminAnswer:
        """Answer one statement the way the admin interface does, or raise AdminError."""
        with self._lock:
            self._statements.append(sql)
            command = " ".join(sql.split()).rstrip("; ")
            upper = command.upper()
            if upper in _LOAD_USERS_TO_RUNTIME:
                self._load_users_to_runtime()
                return AdminAnswer()
            if upper in _SAVE_USERS_TO_DISK:
                self._save_users_to_disk()
                return AdminAnswer()
            if _SESSION_SETUP.fullmatch(command):
                return AdminAnswer()
            if upper == _SELECT_VERSION_COMMENT:
                return self._on_sqlite(f"SELECT '{VERSION_COMMENT}'")  # ProxySQL's own rewrite
            if _ON_SQLITE.fullmatch(command):
                return self._on_sqlite(sql)
            raise self._refusal(sql, command)

    # ---- internals ----------------------------------------------------------

    def _layer(self, table: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMN_LIST} FROM {table} ORDER BY username, backend"  # noqa: S608
            ).fetchall()
        return [dict(zip(USER_COLUMNS, row, strict=True)) for row in rows]

    def _on_sqlite(self, sql: str) -> AdminAnswer:
        try:
            with self._db:  # commits a change, rolls back a failed one
                cursor = self._db.execute(sql)
                rows = cursor.fetchall()
        except sqlite3.Error as exc:
            raise AdminError(f"ProxySQL Admin Error: {exc}") from exc
        if cursor.description is None:
            return AdminAnswer(affected_rows=max(cursor.rowcount, 0))
        return AdminAnswer(
            columns=tuple(column[0] for column in cursor.description),
            rows=[tuple(None if v is None else str(v) for v in row) for row in rows],
        )

    def _load_users_to_runtime(self) -> None:
        if self.fail_load_to_runtime:
            raise AdminError("ProxySQL Admin Error: LOAD MYSQL USERS TO RUNTIME failed (injected)")
        with self._db:
            users = self._db.execute(
                f"SELECT {_COLUMN_LIST} FROM main.mysql_users WHERE active=1"  # noqa: S608
            ).fetchall()
            self._db.execute("DELETE FROM main.runtime_mysql_users")
            for row in users:
                user = dict(zip(USER_COLUMNS, row, strict=True))
                # The runtime keeps empty strings for NULLs, and a hash for a clear password.
                password = user["password"] or ""
                if password and not password.startswith("*"):
                    password = native_password_hash(password)
                user.update(password=password, default_schema=user["default_schema"] or "")
                # Runtime lists a user once per side it authenticates on.
                sides = [(0, 1)] if user["frontend"] else []
                sides += [(1, 0)] if user["backend"] else []
                for backend, frontend in sides:
                    user.update(backend=backend, frontend=frontend)
                    self._db.execute(
                        f"INSERT INTO main.runtime_mysql_users ({_COLUMN_LIST}) "  # noqa: S608
                        f"VALUES ({', '.join('?' * len(USER_COLUMNS))})",
                        [user[column] for column in USER_COLUMNS],
                    )

    def _save_users_to_disk(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM disk.mysql_users")
            self._db.execute("INSERT INTO disk.mysql_users SELECT * FROM main.mysql_users")

    def _refusal(self, sql: str, command: str) -> AdminError:
        if not _OTHER_ADMIN_COMMAND.match(command):
            try:
                self._db.execute(f"EXPLAIN {sql}")  # compiles the statement, runs nothing
            except sqlite3.Error as exc:
                return AdminError(f"ProxySQL Admin Error: {exc}")
        return AdminError(f"ProxySQL Admin Error: the fake admin interface does not model {sql!r}")


# ---- the MySQL protocol side (mysql-mimic) ----------------------------------


class _AdminPassword(NativePasswordAuthPlugin):
    """mysql_native_password for the admin user only, refusing in ProxySQL's words."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self._user = user

    async def auth(self, auth_info: Any = None) -> Any:
        steps = super().auth(auth_info)
        decision = await steps.__anext__()
        while isinstance(decision, bytes):  # a challenge for the client
            auth_info = yield decision
            decision = await steps.asend(auth_info)
        if isinstance(decision, Success) and decision.authenticated_as == self._user:
            yield decision
        else:
            using = "YES" if auth_info is not None and auth_info.data else "NO"
            name = auth_info.username if auth_info is not None else ""
            yield Forbidden(
                f"ProxySQL Error: Access denied for user '{name}'@'{HOST}' "
                f"(using password: {using})"
            )


class _AdminIdentities(IdentityProvider):
    def __init__(self, user: str, password: str) -> None:
        self._plugin = _AdminPassword(user)
        self._user = user
        self._auth_string = (
            NativePasswordAuthPlugin.create_auth_string(password) if password else None
        )

    def get_plugins(self) -> list[Any]:
        return [self._plugin]

    async def get_user(self, username: str) -> Any:
        # Every name gets a record, so that an unknown user is refused like a wrong
        # password (1045) rather than with MySQL's "user does not exist".
        known = username == self._user
        return User(
            name=username,
            auth_string=self._auth_string if known else None,
            auth_plugin=self._plugin.name,
        )


class _AdminConnections(LocalControl):
    """The open connections; each is given ProxySQL's status flags before its handshake."""

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[int, Any] = {}

    async def add(self, connection: Any) -> int:
        connection.status_flags = (
            ServerStatus.SERVER_STATUS_AUTOCOMMIT | ServerStatus.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        )
        connection_id = int(await super().add(connection))
        self.open[connection_id] = connection
        return connection_id

    async def remove(self, connection_id: int) -> None:
        self.open.pop(connection_id, None)
        await super().remove(connection_id)

    def hang_up(self) -> None:
        # The session then sees end-of-stream, as when a client quits, and ends normally.
        for connection in list(self.open.values()):
            connection.stream.writer.close()


class _AdminSession(BaseSession):
    """One client connection: statements go to the shared FakeProxySQLAdmin."""

    def __init__(self, admin: FakeProxySQLAdmin, variables: Any) -> None:
        self.variables = SessionVariables(variables)
        self.username = None
        self.database = None
        self._admin = admin
        self._affected_rows = 0

    async def init(self, connection: Any) -> None:
        # mysql-mimic answers a statement without a result set with a bare OK packet;
        # ProxySQL reports SQLite's count of changed rows in it, so hand that over.
        bare_ok = connection.ok

        def ok_with_count(**kwargs: Any) -> bytes:
            kwargs.setdefault("affected_rows", self._affected_rows)
            self._affected_rows = 0
            return bytes(bare_ok(**kwargs))

        connection.ok = ok_with_count

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        if self.username is None:  # mysql-mimic reads commands even after refusing a login
            raise MysqlError("Not logged in", code=ErrorCode.ACCESS_DENIED_ERROR)
        try:
            answer = self._admin.execute(sql)
        except AdminError as exc:
            raise MysqlError(str(exc), code=ErrorCode.ACCESS_DENIED_ERROR) from exc
        if names := _SET_NAMES.fullmatch(" ".join(sql.split()).rstrip("; ")):
            self._use_charset(names.group(1).lower())
        if not answer.columns:
            self._affected_rows = answer.affected_rows
            return None
        columns = [
            ResultColumn(name, ColumnType.VAR_STRING, character_set=CharacterSet.utf8)
            for name in answer.columns
        ]
        return ResultSet(rows=answer.rows, columns=columns)

    def _use_charset(self, name: str) -> None:
        # ProxySQL passes bytes through; keep mysql-mimic decoding what the client encodes.
        if name in CharacterSet.__members__:
            for side in ("client", "connection", "results"):
                self.variables.set(f"character_set_{side}", name)


@contextmanager
def running_fake_proxysql(
    user: str = "admin",
    password: str = "admin",  # noqa: S107  (ProxySQL's default admin-admin_credentials)
    *,
    fail_load_to_runtime: bool = False,
) -> Iterator[FakeProxySQLAdmin]:
    """Serve a fake admin interface on a free local port; ``admin.url`` is how to reach it."""
    admin = FakeProxySQLAdmin(
        user=user, password=password, fail_load_to_runtime=fail_load_to_runtime
    )
    variables = GlobalVariables(
        {
            **SYSTEM_VARIABLES,
            "version": (str, SERVER_VERSION, False),
            "version_comment": (str, VERSION_COMMENT, False),
        }
    )
    connections = _AdminConnections()
    server = MysqlServer(
        session_factory=lambda: _AdminSession(admin, variables),
        identity_provider=_AdminIdentities(user, password),
        control=connections,
        capabilities=DEFAULT_SERVER_CAPABILITIES | Capabilities.CLIENT_TRANSACTIONS,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-proxysql-admin", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start_server(host=HOST, port=0), loop).result(10)
        admin.port = server.sockets()[0].getsockname()[1]
        yield admin
    finally:
        asyncio.run_coroutine_threadsafe(_shut_down(server, connections), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        admin.close()


async def _shut_down(server: Any, connections: _AdminConnections) -> None:
    server.close()
    # wait_closed() also waits for the connections, so close any a test left open.
    connections.hang_up()
    await server.wait_closed()
