"""Provisioning on the real single-node farm: Swarm, MariaDB, Traefik, the filesystem."""

from __future__ import annotations

import uuid

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from backups.models import BackupPolicy
from farm.models import Operation, OperationStatus, Tenant, User
from farm.operations import roll_back_operation
from farm.runner import run_operation
from farm.schedules import ensure_schedules
from monitoring import prometheus
from nodes import mariadb
from nodes.bootstrap import farm_down
from nodes.inventory import sync_nodes
from nodes.swarm import STACK_LABEL, client
from sites import files, service_states, services
from sites.models import ReconcileReport, Site, SiteStatus, StackState
from sites.reconcile import find_drift
from sites.stack import network_name, stack_name
from sites.swarm_site import site_db_host
from tests.fakes.cloudflare_api import running_fake_cloudflare
from tests.support.farm import ensure_farm
from tests.support.processes import kill_group, start_manage, wait_for

pytestmark = [pytest.mark.swarm, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def fresh_farm() -> None:
    """Sites get ids from 1 in every test database: start from an empty farm."""
    farm_down(purge_data=True, progress=lambda m: None)
    ensure_farm()


@pytest.fixture
def tenant_ops(db) -> tuple[Tenant, User]:
    sync_nodes()
    tenant = Tenant.objects.create(name="E2E", slug=f"e2e-{uuid.uuid4().hex[:6]}", site_quota=20)
    operator = User.objects.create_user("e2e@farm.test", "pw-e2e-123456", is_staff=True)
    return tenant, operator


def provision(
    tenant: Tenant, actor: User, cleanup: list[int], domain: str
) -> tuple[Site, Operation]:
    created = services.create_site(
        tenant=tenant, domain=domain, image_choice="php8.2", cache_enabled=True, actor=actor
    )
    cleanup.append(created.site.pk)
    run_operation(created.operation.pk)
    created.site.refresh_from_db()
    created.operation.refresh_from_db()
    return created.site, created.operation


def install_screen(domain: str) -> requests.Response:
    # *.localhost does not resolve for Python: ask Traefik with the Host header.
    return requests.get(
        f"{settings.FARM_EDGE_URL}/wp-admin/install.php",
        headers={"Host": domain},
        timeout=10,
        allow_redirects=False,
    )


def front_page(domain: str) -> requests.Response:
    return requests.get(
        f"{settings.FARM_EDGE_URL}/", headers={"Host": domain}, timeout=10, allow_redirects=False
    )


def php_container(site: Site):
    cli = client()
    task = cli.api.tasks(filters={"service": f"{site.stack_name}_php", "desired-state": "running"})[
        0
    ]
    return cli.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])


def stack_objects(site_id: int) -> dict[str, list[str]]:
    cli = client()
    label = {"label": f"{STACK_LABEL}={stack_name(site_id)}"}
    return {
        "services": sorted(s.name for s in cli.services.list(filters=label)),
        "networks": sorted(
            n.name
            for n in cli.networks.list(names=[network_name(site_id)])
            if n.name == network_name(site_id)
        ),
        "secrets": sorted(s.name for s in cli.secrets.list(filters=label)),
        "configs": sorted(c.name for c in cli.configs.list(filters=label)),
    }


def test_two_sites_answer_through_traefik_and_cannot_reach_each_other(tenant_ops, cleanup):
    tenant, operator = tenant_ops
    a, op_a = provision(tenant, operator, cleanup, "alpha-e2e.localhost")
    b, op_b = provision(tenant, operator, cleanup, "beta-e2e.localhost")
    assert (op_a.status, op_b.status) == ("succeeded", "succeeded"), (op_a.error, op_b.error)
    assert (a.status, b.status) == (SiteStatus.ACTIVE, SiteStatus.ACTIVE)

    for site in (a, b):
        front = front_page(site.domain)
        assert front.status_code == 302
        assert front.headers["Location"] == f"http://{site.domain}/wp-admin/install.php"
        response = install_screen(site.domain)
        assert response.status_code == 200
        assert "<title>WordPress &rsaquo; Installation</title>" in response.text
        assert response.headers.get("X-Frame-Options") == "DENY", "security headers middleware"
        assert (
            requests.get(
                f"{settings.FARM_EDGE_URL}/xmlrpc.php", headers={"Host": site.domain}, timeout=10
            ).status_code
            == 403
        )

    # Each php-fpm reaches its own schema only.
    host, port = site_db_host().split(":")
    container = php_container(a)

    def sql(statement: str) -> tuple[int, str]:
        code, out = container.exec_run(
            [
                "mariadb",
                f"-h{host}",
                f"-P{port}",
                f"-u{a.db_user}",
                f"-p{a.db_password}",
                "-e",
                statement,
            ]
        )
        return code, out.decode(errors="replace")

    assert sql(f"USE {a.db_name}; SELECT 1")[0] == 0
    code, out = sql(f"USE {b.db_name}")
    assert code != 0 and "Access denied" in out

    # Each site's Redis is reachable only on its own network.
    cli = client()
    b_redis = cli.api.tasks(
        filters={"service": f"{b.stack_name}_redis", "desired-state": "running"}
    )[0]
    b_redis_ip = b_redis["NetworksAttachments"][0]["Addresses"][0].split("/")[0]

    def redis_answers(target: str, container=container) -> bool:
        # A Redis PING, not a bare connect: this sandbox's egress proxy accepts any TCP
        # connection to an address outside the host, so only the reply tells.
        script = (
            f"exec 3<>/dev/tcp/{target}/6379 && printf 'PING\\r\\n' >&3 && "
            "read -r -t 2 reply <&3 && [[ $reply == +PONG* ]]"
        )
        return container.exec_run(["timeout", "4", "bash", "-c", script]).exit_code == 0

    assert redis_answers("redis"), "its own redis answers"
    assert not redis_answers(b_redis_ip), "the other site's redis is unreachable"
    assert redis_answers(b_redis_ip, php_container(b)), "while it answers on its own network"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_swarm_step_resumes_to_one_of_everything(
    tenant_ops, cleanup, tmp_path
):
    tenant, operator = tenant_ops
    ensure_schedules()
    Schedule.objects.filter(func="farm.tasks.requeue_stale_operations").update(
        next_run=timezone.now()
    )
    marker = tmp_path / "slow-marker"
    env = {
        "FARM_OPERATION_LEASE_SECONDS": "4",
        "FARM_Q_WORKERS": "1",
        "FARM_TEST_SLOW_MARKER": str(marker),
    }
    log = tmp_path / "qcluster.log"
    created = services.create_site(
        tenant=tenant,
        domain="kill-e2e.localhost",
        image_choice="php8.2",
        cache_enabled=True,
        actor=operator,
    )
    cleanup.append(created.site.pk)
    first = start_manage(
        ["qcluster"],
        log,
        **env,
        FARM_OPERATION_MODULES="tests.support.kinds,tests.support.slow_swarm",
    )
    try:
        wait_for(
            lambda: marker.exists() and marker.read_text().count("\n") >= 1,
            timeout=120,
            what="the swarm step to create its first service",
        )
    finally:
        kill_group(first)
    step = created.operation.steps.get(name="swarm")
    assert step.status == "running", "killed in the middle of the swarm step"

    second = start_manage(["qcluster"], log, **env)
    try:
        wait_for(
            lambda: Operation.objects.get(pk=created.operation.pk).is_finished,
            timeout=240,
            interval=1,
            what="the operation to be resumed and finish",
        )
    finally:
        kill_group(second)
    operation = Operation.objects.get(pk=created.operation.pk)
    assert operation.status == OperationStatus.SUCCEEDED, (operation.error, log.read_text()[-2000:])
    assert operation.attempts == 2
    swarm_step = operation.steps.get(name="swarm")
    assert swarm_step.attempts == 2 and swarm_step.status == "succeeded"
    assert operation.steps.get(name="database").attempts == 1, "finished steps are not redone"

    site = Site.objects.get(pk=created.site.pk)
    objects = stack_objects(site.pk)
    assert objects["networks"] == [network_name(site.pk)]
    assert objects["services"] == [f"{site.stack_name}_{s}" for s in ("nginx", "php", "redis")]
    assert len(objects["secrets"]) == 2 and len(objects["configs"]) == 2
    assert [d for d in mariadb.site_databases() if d == site.db_name] == [site.db_name]
    assert install_screen(site.domain).status_code == 200


def test_roll_back_after_failing_at_reachable_leaves_nothing_anywhere(
    tenant_ops, cleanup, settings, tmp_path
):
    tenant, operator = tenant_ops
    domain = f"rb-{uuid.uuid4().hex[:6]}.farm-test.example"
    with running_fake_cloudflare(token="cf-token", zones=["farm-test.example"]) as cloudflare:
        settings.CLOUDFLARE_API_TOKEN = "cf-token"
        settings.CLOUDFLARE_ZONES = ["farm-test.example"]
        settings.CLOUDFLARE_RECORD_TARGET = "203.0.113.10"
        settings.CLOUDFLARE_BASE_URL = cloudflare.base_url
        settings.FARM_EDGE_URL = "http://127.0.0.1:9"  # nothing answers: reachable fails
        settings.FARM_REACHABLE_TIMEOUT = 5

        site, operation = provision(tenant, operator, cleanup, domain)
        assert operation.status == OperationStatus.FAILED
        assert operation.steps.get(name="reachable").status == "failed"
        assert site.status == SiteStatus.FAILED and "install screen" in site.last_error
        assert operation.steps.get(name="dns").status == "succeeded"
        assert [r["name"] for r in cloudflare.records_named(domain)] == [domain]
        assert stack_objects(site.pk)["services"], "the stack was deployed before the failure"

        roll_back_operation(operation)
        assert run_operation(operation.pk) == "rolled_back"
        site.refresh_from_db()
        assert site.status == SiteStatus.DELETED
        assert stack_objects(site.pk) == {
            "services": [],
            "networks": [],
            "secrets": [],
            "configs": [],
        }
        assert not mariadb.database_exists(site.db_name)
        assert not mariadb.user_exists(site.db_user)
        assert cloudflare.records_named(domain) == []
        assert not files.site_path(site.pk).exists()
        assert not prometheus.target_file(site.pk).exists()
        assert not BackupPolicy.objects.filter(site=site).exists()
        assert not Site.objects.filter(domain_claim=domain).exists(), "the domain is free again"


def test_item_18_a_suspended_site_is_not_probed_and_resume_brings_site_and_probe_back(
    tenant_ops, cleanup
):
    tenant, operator = tenant_ops
    site, _ = provision(tenant, operator, cleanup, "pause-e2e.localhost")
    suspend = services.suspend_site(site=site, actor=operator)
    assert run_operation(suspend.pk) == "succeeded", Operation.objects.get(pk=suspend.pk).error
    site.refresh_from_db()
    assert site.status == SiteStatus.SUSPENDED and site.maintenance
    replicas = client().services.get(f"{site.stack_name}_php").attrs["Spec"]["Mode"]
    assert replicas["Replicated"]["Replicas"] == 0
    # Asleep on purpose is not down: no probe, so no SiteDown alert (issue 9, item 18).
    assert not prometheus.target_file(site.pk).exists()

    def status_is(code: int) -> bool:
        return front_page(site.domain).status_code == code

    wait_for(lambda: status_is(503), timeout=30, what="the maintenance page")
    assert "Down for maintenance" in front_page(site.domain).text

    resume = services.resume_site(site=site, actor=operator)
    assert run_operation(resume.pk) == "succeeded", Operation.objects.get(pk=resume.pk).error
    site.refresh_from_db()
    assert site.status == SiteStatus.ACTIVE and not site.maintenance
    wait_for(lambda: status_is(302), timeout=30, what="the site to answer again")
    assert install_screen(site.domain).status_code == 200
    assert prometheus.target_file(site.pk).exists(), "the probe is back"


def test_delete_removes_everything_but_files_and_reconcile_finds_drift_and_repairs(
    tenant_ops, cleanup
):
    tenant, operator = tenant_ops
    keep, _ = provision(tenant, operator, cleanup, "keep-e2e.localhost")
    gone, _ = provision(tenant, operator, cleanup, "gone-e2e.localhost")

    # Drift: a service disappears behind the panel's back.
    client().services.get(f"{keep.stack_name}_redis").remove()
    drift = [f for f in find_drift() if f.kind == "drift"]
    assert [(f.what, f.site_id) for f in drift] == [(f"service {keep.stack_name}_redis", keep.pk)]
    repair = services.repair_site(site=keep, actor=operator)
    assert run_operation(repair.pk) == "succeeded", Operation.objects.get(pk=repair.pk).error
    assert not [f for f in find_drift() if f.kind == "drift"]

    delete = services.delete_site(
        site=gone, actor=operator, confirm_domain=gone.domain, purge=False
    )
    assert run_operation(delete.pk) == "succeeded", Operation.objects.get(pk=delete.pk).error
    gone.refresh_from_db()
    assert gone.status == SiteStatus.DELETED
    assert stack_objects(gone.pk)["services"] == []
    assert not mariadb.database_exists(gone.db_name)
    assert files.site_path(gone.pk).exists(), "files are kept unless purged"
    assert find_drift() == [], "kept files of a deleted site are not orphans"

    # An orphan: a database nobody owns.
    mariadb.ensure_site_database(name="wp_99999", user="wp_99999", password="x" * 20)
    try:
        orphans = [f.what for f in find_drift() if f.kind == "orphan"]
        assert "database wp_99999" in orphans and "database user wp_99999" in orphans
    finally:
        mariadb.drop_site_database(name="wp_99999", user="wp_99999")


def test_the_workers_record_a_sites_services_for_its_page(tenant_ops, cleanup):
    """Issue 11, site services partial: the provision's converge step records the stack's
    services (the page reads that row); the minute task records every site from two
    Docker calls; suspend records replicas 0."""
    tenant, operator = tenant_ops
    site, operation = provision(tenant, operator, cleanup, "states-e2e.localhost")
    assert operation.status == OperationStatus.SUCCEEDED, operation.error

    state = StackState.objects.get(site=site)
    assert not state.error and state.seen_at is not None
    names = {s["name"]: s for s in state.services}
    assert set(names) == {f"{site.stack_name}_{n}" for n in ("nginx", "php", "redis")}
    assert all(any(t["state"] == "running" for t in s["tasks"]) for s in names.values())

    StackState.objects.all().delete()
    live = Site.objects.exclude(status=SiteStatus.DELETED).count()
    assert service_states.record_all() == f"{live} sites recorded"
    assert {s["name"] for s in StackState.objects.get(site=site).services} == set(names)

    suspend = services.suspend_site(site=site, actor=operator)
    assert run_operation(suspend.pk) == "succeeded", Operation.objects.get(pk=suspend.pk).error
    assert {s["replicas"] for s in StackState.objects.get(site=site).services} == {0}


def test_the_reconcile_operation_reports_drift_on_the_real_farm(tenant_ops, cleanup):
    tenant, operator = tenant_ops
    site, _ = provision(tenant, operator, cleanup, "drift-op-e2e.localhost")
    client().services.get(f"{site.stack_name}_redis").remove()

    operation = services.start_reconcile(actor=operator)
    assert run_operation(operation.pk) == "succeeded", Operation.objects.get(pk=operation.pk).error

    report = ReconcileReport.objects.first()
    assert report is not None and not report.error
    assert (f"service {site.stack_name}_redis", site.pk) in [
        (f["what"], f["site_id"]) for f in report.findings if f["kind"] == "drift"
    ]
