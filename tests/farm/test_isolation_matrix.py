"""Tenant isolation, every URL by five roles, as one table.

Each named URL of the panel's own apps (farm, sites, nodes, backups, monitoring) has a
row in MATRIX saying what kind of page it is; the kind says what each role gets:

    kind              anonymous  outsider  member  owner   operator
    LIST  (scoped)    login      200       200     200     200
    READ  (object)    login      404       200     200     200
    CHANGE (object)   login      404       403     done    done
    OPERATOR          login      403       403     403     done
    OPERATOR_OBJECT   login      404       403     403     done
    NODE (operators)  login      404       404     404     done
    TOKEN (webhook)   401        401       401     401     401

"done" is 200 or a redirect that is not to the login page. The outsider owns another
tenant; a page the outsider may see (200) must never name the first tenant ("acme").
A URL without a row fails ``test_every_named_url_has_a_row``: a new page is added to
this table when it is written, not after someone finds it open.

Nothing here reaches the Swarm, MariaDB or restic: the few reads that would are
answered empty, and the clients that would open a socket fail the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from backups.models import Backup, Restore, RestoreScope, RestoreStatus, RestoreTarget
from farm.models import Membership, Operation, OperationStatus, Tenant, User
from farm.operations import start_operation
from monitoring.models import Alert
from nodes.models import Node
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

OUR_APPS = ("farm.", "sites.", "nodes.", "backups.", "monitoring.")
MARKER = "acme"  # every name of the first tenant's things contains it


class Role(StrEnum):
    ANONYMOUS = "anonymous"
    OUTSIDER = "outsider"
    MEMBER = "member"
    OWNER = "owner"
    OPERATOR = "operator"


class Kind(StrEnum):
    LIST = "list"
    READ = "read"
    CHANGE = "change"
    OPERATOR = "operator"
    OPERATOR_OBJECT = "operator_object"
    # A change to a Swarm node, or its sites' outages: every tenant's, no tenant's to see.
    NODE = "node"
    TOKEN = "token"


LOGIN, DONE = "login", "done"
READ_OK = (200, 286)  # 286: an htmx partial that also tells the page to stop polling

EXPECTED: dict[Kind, dict[Role, object]] = {
    Kind.LIST: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: READ_OK,
        Role.MEMBER: READ_OK,
        Role.OWNER: READ_OK,
        Role.OPERATOR: READ_OK,
    },
    Kind.READ: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: 404,
        Role.MEMBER: READ_OK,
        Role.OWNER: READ_OK,
        Role.OPERATOR: READ_OK,
    },
    Kind.CHANGE: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: 404,
        Role.MEMBER: 403,
        Role.OWNER: DONE,
        Role.OPERATOR: DONE,
    },
    Kind.OPERATOR: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: 403,
        Role.MEMBER: 403,
        Role.OWNER: 403,
        Role.OPERATOR: DONE,
    },
    Kind.OPERATOR_OBJECT: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: 404,
        Role.MEMBER: 403,
        Role.OWNER: 403,
        Role.OPERATOR: DONE,
    },
    Kind.NODE: {
        Role.ANONYMOUS: LOGIN,
        Role.OUTSIDER: 404,
        Role.MEMBER: 404,
        Role.OWNER: 404,
        Role.OPERATOR: DONE,
    },
    Kind.TOKEN: dict.fromkeys(Role, 401),
}


@dataclass
class World:
    """One of every kind of object with a URL, in tenant Acme; Globex has its own site."""

    tenant: Tenant
    site: Site
    failed_operation: Operation
    running_operation: Operation
    backup: Backup
    restore: Restore
    member_membership: Membership
    node: Node


Value = Callable[[World], Any]


def nothing(world: World) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Case:
    kind: Kind
    method: str = "get"
    args: Callable[[World], tuple[int, ...]] = lambda w: ()
    data: Value = nothing
    headers: Value = nothing


@dataclass(frozen=True)
class Row:
    cases: tuple[Case, ...]
    allowed: frozenset[str] = field(default=frozenset({"GET"}))


def row(*cases: Case, allowed: str = "GET") -> Row:
    return Row(cases, frozenset(allowed.split()))


def site_pk(w: World) -> tuple[int, ...]:
    return (w.site.pk,)


def tenant_pk(w: World) -> tuple[int, ...]:
    return (w.tenant.pk,)


def members_pk(w: World) -> tuple[int, ...]:
    return (w.tenant.pk, w.member_membership.pk)


def htmx(target: Callable[[World], str] | None = None) -> Value:
    def headers(w: World) -> dict[str, str]:
        return {"HX-Request": "true", **({"HX-Target": target(w)} if target else {})}

    return headers


POST = "post"

MATRIX: dict[str, Row] = {
    # farm: the shell, operations, audit, tenants
    "dashboard": row(Case(Kind.LIST)),
    "operation_list": row(Case(Kind.LIST)),
    "operation_detail": row(
        Case(Kind.READ, args=lambda w: (w.failed_operation.pk,)),
        Case(
            Kind.READ,
            args=lambda w: (w.failed_operation.pk,),
            headers=htmx(lambda w: f"operation-{w.failed_operation.pk}"),  # steps+logs
        ),
    ),
    "operation_retry": row(
        Case(Kind.CHANGE, POST, args=lambda w: (w.failed_operation.pk,)), allowed="POST"
    ),
    "operation_roll_back": row(
        Case(Kind.CHANGE, POST, args=lambda w: (w.failed_operation.pk,)), allowed="POST"
    ),
    "operation_cancel": row(
        Case(Kind.CHANGE, POST, args=lambda w: (w.running_operation.pk,)), allowed="POST"
    ),
    "audit_log": row(Case(Kind.OPERATOR)),
    "tenant_list": row(Case(Kind.LIST), Case(Kind.LIST, headers=htmx(lambda w: "tenant-rows"))),
    "tenant_create": row(
        Case(Kind.OPERATOR),
        Case(Kind.OPERATOR, POST, data=lambda w: {"name": "Initech", "site_quota": "2"}),
        allowed="GET POST",
    ),
    "tenant_detail": row(
        Case(Kind.READ, args=tenant_pk),
        Case(Kind.READ, args=tenant_pk, headers=htmx(lambda w: "members")),
    ),
    "tenant_edit": row(
        Case(Kind.OPERATOR_OBJECT, args=tenant_pk),
        Case(
            Kind.OPERATOR_OBJECT,
            POST,
            args=tenant_pk,
            data=lambda w: {"name": "Acme Two", "site_quota": "9"},
        ),
        allowed="GET POST",
    ),
    "tenant_member_add": row(
        Case(
            Kind.CHANGE,
            POST,
            args=tenant_pk,
            data=lambda w: {"email": "new@acme.test", "role": "member"},
        ),
        allowed="POST",
    ),
    "tenant_member_role": row(
        Case(Kind.CHANGE, POST, args=members_pk, data=lambda w: {"role": "owner"}),
        allowed="POST",
    ),
    "tenant_member_remove": row(Case(Kind.CHANGE, POST, args=members_pk), allowed="POST"),
    "tenant_member_invite": row(Case(Kind.CHANGE, POST, args=members_pk), allowed="POST"),
    # sites
    "site_list": row(Case(Kind.LIST), Case(Kind.LIST, headers=htmx(lambda w: "site-rows"))),
    # Everyone may open New site; its tenant list holds only the tenants one owns.
    "site_create": row(Case(Kind.LIST), Case(Kind.LIST, POST), allowed="GET POST"),
    "site_reconcile": row(Case(Kind.OPERATOR)),
    "site_reconcile_run": row(Case(Kind.OPERATOR, POST), allowed="POST"),
    "site_detail": row(
        Case(Kind.READ, args=site_pk),
        Case(Kind.READ, args=site_pk, headers=htmx(lambda w: f"site-{w.site.pk}-live")),
    ),
    "site_services": row(Case(Kind.READ, args=site_pk, headers=htmx())),
    "site_suspend": row(Case(Kind.CHANGE, POST, args=site_pk), allowed="POST"),
    "site_resume": row(Case(Kind.CHANGE, POST, args=site_pk), allowed="POST"),
    "site_repair": row(Case(Kind.OPERATOR_OBJECT, POST, args=site_pk), allowed="POST"),
    # a domain outside the managed zones waits for an operator (item 2)
    "site_approve": row(Case(Kind.OPERATOR_OBJECT, POST, args=site_pk), allowed="POST"),
    "site_decline": row(Case(Kind.CHANGE, POST, args=site_pk), allowed="POST"),
    "site_delete": row(
        Case(Kind.CHANGE, args=site_pk),
        Case(Kind.CHANGE, POST, args=site_pk, data=lambda w: {"confirm_domain": w.site.domain}),
        allowed="GET POST",
    ),
    # nodes
    "node_list": row(Case(Kind.OPERATOR), Case(Kind.OPERATOR, headers=htmx())),
    "node_drain": row(Case(Kind.NODE, POST, args=lambda w: (w.node.pk,)), allowed="POST"),
    "node_activate": row(Case(Kind.NODE, POST, args=lambda w: (w.node.pk,)), allowed="POST"),
    "node_remove": row(
        Case(
            Kind.NODE, POST, args=lambda w: (w.node.pk,), data=lambda w: {"confirm_hostname": "x"}
        ),
        allowed="POST",
    ),
    "node_outages": row(Case(Kind.NODE), Case(Kind.NODE, headers=htmx())),
    # backups and restores
    "backup_list": row(Case(Kind.LIST)),
    "backup_detail": row(Case(Kind.READ, args=lambda w: (w.backup.pk,))),
    "rpo_ledger": row(Case(Kind.LIST)),
    "rpo_check": row(Case(Kind.OPERATOR, POST), allowed="POST"),
    "rpo_badge": row(Case(Kind.READ, args=site_pk, headers=htmx())),
    "back_up_now": row(Case(Kind.CHANGE, POST, args=site_pk), allowed="POST"),
    "restore_start": row(Case(Kind.LIST)),
    "restore_wizard": row(
        Case(Kind.CHANGE, args=site_pk),
        Case(Kind.CHANGE, POST, args=site_pk),
        allowed="GET POST",
    ),
    "restore_detail": row(
        Case(Kind.READ, args=lambda w: (w.restore.pk,)),
        Case(
            Kind.READ,
            args=lambda w: (w.restore.pk,),
            headers=htmx(lambda w: f"restore-{w.restore.pk}"),
        ),
    ),
    "restore_switch": row(Case(Kind.CHANGE, POST, args=lambda w: (w.restore.pk,)), allowed="POST"),
    "restore_drills": row(Case(Kind.LIST)),
    "backup_repository": row(Case(Kind.OPERATOR)),
    # monitoring
    "alert_list": row(Case(Kind.LIST)),
    "alertmanager_webhook": row(Case(Kind.TOKEN, POST), allowed="POST"),
}


def our_named_urls() -> dict[str, str]:
    """Every named URL whose view lives in one of our apps, with its pattern."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace:  # the Django admin: its own permission system
                    continue
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                module = getattr(pattern.callback, "__module__", "")
                yield pattern.name or "", prefix + str(pattern.pattern), module

    return {
        name or pattern: pattern
        for name, pattern, module in walk(get_resolver().url_patterns, "")
        if module.startswith(OUR_APPS)
    }


def test_every_named_url_has_a_row():
    urls = our_named_urls()
    missing = sorted(f"{name} ({pattern})" for name, pattern in urls.items() if name not in MATRIX)
    assert not missing, f"add a row to MATRIX for each new URL: {missing}"
    stale = sorted(set(MATRIX) - set(urls))
    assert not stale, f"MATRIX rows for URLs that no longer exist: {stale}"


# --- The world, the clients, the requests ---------------------------------------------


@pytest.fixture
def world(tenant, other_tenant, owner, member, outsider, tmp_path) -> World:
    site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status=SiteStatus.ACTIVE)
    Site.objects.create(tenant=other_tenant, domain="shop.globex.test", status=SiteStatus.ACTIVE)
    preview = Site.objects.create(
        tenant=tenant, domain="restore-shop.acme.test", status=SiteStatus.ACTIVE
    )
    failed = start_operation(
        "test.recorded",
        target_type="test",
        target_id="acme-failed",
        target_repr=site.domain,
        tenant=tenant,
        params={"journal": str(tmp_path / "failed")},
    )
    Operation.objects.filter(pk=failed.pk).update(
        status=OperationStatus.FAILED, lock_key=None, error="step beta failed"
    )
    failed.steps.filter(position=1).update(log="alpha did its work\n")
    running = start_operation(
        "test.gated",
        target_type="test",
        target_id="acme-running",
        target_repr=site.domain,
        tenant=tenant,
        params={"gates": str(tmp_path / "gates"), "journal": str(tmp_path / "running")},
    )
    backup = Backup.objects.create(site=site, kind="db", status="succeeded", snapshot_id="ab" * 32)
    restore = Restore.objects.create(
        site=site,
        preview_site=preview,
        scope=RestoreScope.BOTH,
        target=RestoreTarget.BESIDE,
        status=RestoreStatus.SUCCEEDED,
        verified=True,
        point_in_time=timezone.now() - timedelta(hours=1),
    )
    restore.operation = Operation.objects.create(
        kind="restore.site",
        target_type="restore",
        target_id=str(restore.pk),
        target_repr=site.domain,
        tenant=tenant,
        status=OperationStatus.SUCCEEDED,
    )
    restore.save(update_fields=["operation"])
    Alert.objects.create(
        fingerprint="acme-down",
        name="SiteDown",
        summary=f"{site.domain} is down",
        site=site,
        tenant=tenant,
        started_at=timezone.now(),
        last_seen_at=timezone.now(),
    )
    return World(
        tenant=tenant,
        site=site,
        failed_operation=failed,
        running_operation=running,
        backup=backup,
        restore=restore,
        member_membership=Membership.objects.get(user=member, tenant=tenant),
        node=Node.objects.create(swarm_id="n2", hostname="farm-node-2", status="ready"),
    )


@pytest.fixture(autouse=True)
def _nothing_leaves_the_panel() -> Iterator[None]:
    forbidden = mock.Mock(side_effect=AssertionError("a page reached an external system"))
    with (
        mock.patch("nodes.swarm.client", forbidden),
        mock.patch("nodes.mariadb.connect", forbidden),
        mock.patch("backups.restic.snapshots", forbidden),
        # The site pages read what the workers recorded; reconcile runs in a worker;
        # the RPO pages and the wizard read the recorded listing; a refresh is queued.
        mock.patch("sites.swarm_site.client", forbidden),
        mock.patch("sites.reconcile.client", forbidden),
        mock.patch("sites.reconcile.find_drift", forbidden),
        mock.patch("sites.reconcile.restore_routes", forbidden),
        mock.patch("backups.policy.rpo.list_repository", forbidden),
        mock.patch("backups.policy.site_snapshots", return_value=[]),
        mock.patch("django_q.tasks.async_task"),
    ):
        yield


def client_as(role: Role, users: dict[Role, User]) -> Client:
    return Client() if role is Role.ANONYMOUS else client_for(users[role])


def send(client: Client, case: Case, name: str, world: World):
    url = reverse(name, args=case.args(world))
    return getattr(client, case.method)(url, case.data(world), headers=case.headers(world))


CASES = [
    pytest.param(name, index, role, id=f"{name}-{case.method}{index}-{role}")
    for name, spec in MATRIX.items()
    for index, case in enumerate(spec.cases)
    for role in Role
]


@pytest.mark.parametrize(("name", "index", "role"), CASES)
def test_every_url_gives_each_role_what_its_row_says(
    name, index, role, world, operator, owner, member, outsider
):
    case = MATRIX[name].cases[index]
    users = {
        Role.OPERATOR: operator,
        Role.OWNER: owner,
        Role.MEMBER: member,
        Role.OUTSIDER: outsider,
    }
    response = send(client_as(role, users), case, name, world)
    expected = EXPECTED[case.kind][role]
    status = response.status_code
    location = response.get("Location", "")
    to_login = status == 302 and location.startswith(reverse("account_login"))
    what = f"{case.method.upper()} {name} as {role}: {status} {location}".strip()
    if expected == LOGIN:
        assert to_login, f"{what}, expected a redirect to the login page"
    elif expected == DONE:
        assert status in (200, 302) and not to_login, f"{what}, expected 200 or a redirect"
    elif isinstance(expected, tuple):
        assert status in expected, f"{what}, expected {expected}"
    else:
        assert status == expected, f"{what}, expected {expected}"
    if role is Role.OUTSIDER and status in READ_OK:
        body = response.content.decode().lower()
        assert MARKER not in body, f"{what} shows the other tenant's {MARKER!r}"


@pytest.mark.parametrize("name", list(MATRIX))
def test_every_url_refuses_the_methods_it_does_not_take(name, world, operator):
    spec = MATRIX[name]
    case = spec.cases[0]
    url = reverse(name, args=case.args(world))
    client = client_for(operator)
    for method in ("GET", "POST", "PUT", "DELETE"):
        if method in spec.allowed:
            continue
        response = getattr(client, method.lower())(url)
        assert response.status_code == 405, f"{method} {name}: {response.status_code}"
