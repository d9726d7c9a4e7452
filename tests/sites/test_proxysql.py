"""ProxySQL users: the real nodes.proxysql functions against a fake of ProxySQL's admin port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import MySQLdb
import pytest

from nodes.mariadb import DatabaseError, Endpoint
from nodes.proxysql import add_user, admin_endpoint, remove_user, users
from tests.fakes.proxysql import FakeProxySQLAdmin, native_password_hash, running_fake_proxysql

# Exercises an external system through its module; the panel database plays no part.
pytestmark = pytest.mark.external

ADMIN_PASSWORD = "admin-secret"
HOSTGROUP = 20
# Statements that change ProxySQL's configuration; an idempotent call sends none.
CHANGING = {"INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD", "SAVE"}


@pytest.fixture
def proxysql() -> Iterator[FakeProxySQLAdmin]:
    with running_fake_proxysql(password=ADMIN_PASSWORD) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _hostgroup(settings: Any) -> None:
    settings.PROXYSQL_HOSTGROUP = HOSTGROUP


def endpoint_for(fake: FakeProxySQLAdmin, password: str = ADMIN_PASSWORD) -> Endpoint:
    return Endpoint("127.0.0.1", fake.port, "admin", password)


def changes_in(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.split()[0].upper() in CHANGING]


def all_layers(fake: FakeProxySQLAdmin) -> list[list[dict[str, Any]]]:
    return [fake.mysql_users(), fake.runtime_mysql_users(), fake.disk_mysql_users()]


def test_add_user_puts_it_in_config_runtime_and_disk(proxysql: FakeProxySQLAdmin) -> None:
    done = add_user(endpoint_for(proxysql), user="wp_7", password="pw-7", schema="wp_7")

    assert done == ["added ProxySQL user wp_7"]
    config = proxysql.mysql_users()
    assert config == [
        {
            "username": "wp_7",
            "password": "pw-7",
            "active": 1,
            "use_ssl": 0,
            "default_hostgroup": HOSTGROUP,
            "default_schema": "wp_7",
            "schema_locked": 0,
            "transaction_persistent": 1,
            "fast_forward": 0,
            "backend": 1,
            "frontend": 1,
            "max_connections": 10000,
            "attributes": "",
            "comment": "",
        }
    ]
    assert proxysql.disk_mysql_users() == config
    # Runtime holds the user once as a frontend and once as a backend, password hashed.
    runtime = proxysql.runtime_mysql_users()
    assert [(row["frontend"], row["backend"]) for row in runtime] == [(1, 0), (0, 1)]
    assert {
        (row["username"], row["password"], row["default_hostgroup"], row["default_schema"])
        for row in runtime
    } == {("wp_7", native_password_hash("pw-7"), HOSTGROUP, "wp_7")}


def test_adding_the_same_user_again_changes_nothing(proxysql: FakeProxySQLAdmin) -> None:
    endpoint = endpoint_for(proxysql)
    add_user(endpoint, user="wp_7", password="pw-7", schema="wp_7")
    layers = all_layers(proxysql)
    seen = len(proxysql.statements)

    assert add_user(endpoint, user="wp_7", password="pw-7", schema="wp_7") == []

    sent = proxysql.statements[seen:]
    assert changes_in(sent) == []
    assert all_layers(proxysql) == layers


def test_a_new_password_reaches_config_runtime_and_disk(proxysql: FakeProxySQLAdmin) -> None:
    endpoint = endpoint_for(proxysql)
    add_user(endpoint, user="wp_7", password="old-pw", schema="wp_7")

    done = add_user(endpoint, user="wp_7", password="new-pw", schema="wp_7")

    assert done == ["updated ProxySQL user wp_7"]
    assert [row["password"] for row in proxysql.mysql_users()] == ["new-pw"]
    assert [row["password"] for row in proxysql.disk_mysql_users()] == ["new-pw"]
    assert [row["password"] for row in proxysql.runtime_mysql_users()] == [
        native_password_hash("new-pw")
    ] * 2


def test_a_password_with_quotes_backslashes_and_accents_arrives_intact(
    proxysql: FakeProxySQLAdmin,
) -> None:
    # The admin port asks clients to double quotes (SQLite has no backslash escapes).
    awkward = "it's a \\ pässwörd'\\"
    endpoint = endpoint_for(proxysql)

    add_user(endpoint, user="wp_7", password=awkward, schema="wp_7")

    assert [row["password"] for row in proxysql.mysql_users()] == [awkward]
    assert add_user(endpoint, user="wp_7", password=awkward, schema="wp_7") == []


def test_remove_user_clears_every_layer_and_is_idempotent(proxysql: FakeProxySQLAdmin) -> None:
    endpoint = endpoint_for(proxysql)
    add_user(endpoint, user="wp_7", password="pw-7", schema="wp_7")
    add_user(endpoint, user="wp_8", password="pw-8", schema="wp_8")

    assert remove_user(endpoint, user="wp_7") == ["removed ProxySQL user wp_7"]
    for layer in all_layers(proxysql):
        assert {row["username"] for row in layer} == {"wp_8"}

    seen = len(proxysql.statements)
    assert remove_user(endpoint, user="wp_7") == []
    assert changes_in(proxysql.statements[seen:]) == []


def test_proxysql_users_lists_the_configured_users(proxysql: FakeProxySQLAdmin) -> None:
    endpoint = endpoint_for(proxysql)
    assert users(endpoint) == []

    add_user(endpoint, user="wp_9", password="pw-9", schema="wp_9")
    add_user(endpoint, user="wp_10", password="pw-10", schema="wp_10")

    assert users(endpoint) == ["wp_10", "wp_9"]


def test_a_wrong_admin_password_is_a_clear_final_error(proxysql: FakeProxySQLAdmin) -> None:
    with pytest.raises(DatabaseError) as raised:
        users(endpoint_for(proxysql, password="wrong"))

    assert str(raised.value) == (
        f"Connecting to ProxySQL admin at 127.0.0.1:{proxysql.port}: ProxySQL Error: "
        "Access denied for user 'admin'@'127.0.0.1' (using password: YES) (error 1045)"
    )
    assert raised.value.retryable is False
    assert proxysql.statements == []


def test_a_failed_load_to_runtime_is_an_error_and_nothing_is_saved() -> None:
    with running_fake_proxysql(password=ADMIN_PASSWORD, fail_load_to_runtime=True) as fake:
        with pytest.raises(DatabaseError) as raised:
            add_user(endpoint_for(fake), user="wp_7", password="pw-7", schema="wp_7")

        assert str(raised.value).startswith("ProxySQL admin: ProxySQL Admin Error: ")
        assert str(raised.value).endswith("(error 1045)")
        assert [row["username"] for row in fake.mysql_users()] == ["wp_7"]
        assert fake.runtime_mysql_users() == []
        assert fake.disk_mysql_users() == []


def test_retrying_after_a_failed_load_reaches_runtime() -> None:
    with running_fake_proxysql(password=ADMIN_PASSWORD, fail_load_to_runtime=True) as fake:
        endpoint = endpoint_for(fake)
        with pytest.raises(DatabaseError):
            add_user(endpoint, user="wp_7", password="pw-7", schema="wp_7")
        fake.fail_load_to_runtime = False

        add_user(endpoint, user="wp_7", password="pw-7", schema="wp_7")

        assert [row["username"] for row in fake.runtime_mysql_users()] == ["wp_7", "wp_7"]


def test_the_fake_refuses_a_duplicate_insert_like_proxysql(proxysql: FakeProxySQLAdmin) -> None:
    conn = MySQLdb.connect(
        host="127.0.0.1", port=proxysql.port, user="admin", passwd=ADMIN_PASSWORD
    )
    try:
        with conn.cursor() as cur:
            insert = "INSERT INTO mysql_users (username, password) VALUES (%s, %s)"
            cur.execute(insert, ("wp_7", "first"))
            with pytest.raises(MySQLdb.Error) as raised:
                cur.execute(insert, ("wp_7", "second"))
    finally:
        conn.close()

    assert raised.value.args == (
        1045,
        "ProxySQL Admin Error: UNIQUE constraint failed: mysql_users.username, "
        "mysql_users.frontend",
    )
    assert [row["password"] for row in proxysql.mysql_users()] == ["first"]


def test_the_fake_answers_unknown_statements_with_an_admin_error(
    proxysql: FakeProxySQLAdmin,
) -> None:
    conn = MySQLdb.connect(
        host="127.0.0.1", port=proxysql.port, user="admin", passwd=ADMIN_PASSWORD
    )
    try:
        with conn.cursor() as cur:
            with pytest.raises(MySQLdb.Error) as raised:
                cur.execute("FROBNICATE mysql_users")
            cur.execute("SELECT COUNT(*) FROM mysql_users")  # the connection still works
            counted = cur.fetchall()
    finally:
        conn.close()

    assert raised.value.args == (1045, 'ProxySQL Admin Error: near "FROBNICATE": syntax error')
    assert counted == (("0",),)  # every column of the admin port is text


def test_the_fake_url_is_what_proxysql_endpoint_reads(
    proxysql: FakeProxySQLAdmin, settings: Any
) -> None:
    settings.PROXYSQL_ADMIN_URL = proxysql.url

    assert admin_endpoint() == endpoint_for(proxysql)
