"""The provision step that makes a site's database: the schema and user on MariaDB and,
where ProxySQL fronts MariaDB (PROXYSQL_ADMIN_URL), the user in ProxySQL too; its undo
(also the delete's drop_database step) removes both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from farm.models import Operation
from farm.operations import StepContext, get_kind, start_operation
from nodes import proxysql
from sites.models import Site, SiteStatus
from sites.steps import Database, DropDatabase
from tests.fakes.proxysql import FakeProxySQLAdmin, running_fake_proxysql

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tenant) -> Site:
    return Site.objects.create(
        tenant=tenant,
        domain="shop.acme.test",
        status=SiteStatus.PROVISIONING,
        db_name="wp_7",
        db_user="wp_7",
        db_password="pw-7",
    )


@pytest.fixture
def on_mariadb(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """MariaDB's side, recorded (it is exercised against a real server elsewhere)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def ensure(**kw: Any) -> list[str]:
        calls.append(("ensure", kw))
        return [f"created database {kw['name']}"]

    def drop(**kw: Any) -> list[str]:
        calls.append(("drop", kw))
        return [f"dropped database {kw['name']}"]

    monkeypatch.setattr("nodes.mariadb.ensure_site_database", ensure)
    monkeypatch.setattr("nodes.mariadb.drop_site_database", drop)
    return calls


@pytest.fixture
def fake_proxysql(settings) -> Iterator[FakeProxySQLAdmin]:
    with running_fake_proxysql(password="admin-secret") as fake:
        settings.PROXYSQL_ADMIN_URL = fake.url
        yield fake


def context(site: Site, kind: str, step: str) -> StepContext:
    operation = start_operation(kind, target_type="site", target_id=site.pk)
    operation = Operation.objects.get(pk=operation.pk)
    return StepContext(operation, operation.steps.get(name=step), get_kind(operation.kind))


def logged(ctx: StepContext) -> str:
    ctx.step.refresh_from_db()
    return ctx.step.log


def test_the_database_and_its_user_are_made_on_mariadb_and_in_proxysql(
    site, on_mariadb, fake_proxysql
):
    ctx = context(site, "site.provision", "database")

    Database().run(ctx)

    assert on_mariadb == [("ensure", {"name": "wp_7", "user": "wp_7", "password": "pw-7"})]
    assert [(u["username"], u["default_schema"]) for u in fake_proxysql.mysql_users()] == [
        ("wp_7", "wp_7")
    ]
    assert "created database wp_7; added ProxySQL user wp_7" in logged(ctx)


def test_dropping_the_database_removes_the_user_from_proxysql_too(site, on_mariadb, fake_proxysql):
    proxysql.ensure_site_user(user="wp_7", password="pw-7", schema="wp_7")
    ctx = context(site, "site.delete", "drop_database")

    DropDatabase().run(ctx)

    assert on_mariadb[-1] == ("drop", {"name": "wp_7", "user": "wp_7"})
    assert fake_proxysql.mysql_users() == []
    assert "dropped database wp_7; removed ProxySQL user wp_7" in logged(ctx)


def test_without_proxysql_only_mariadb_is_asked(site, on_mariadb, settings):
    settings.PROXYSQL_ADMIN_URL = ""
    ctx = context(site, "site.provision", "database")

    Database().run(ctx)
    Database().undo(ctx)

    assert [call for call, _ in on_mariadb] == ["ensure", "drop"]
