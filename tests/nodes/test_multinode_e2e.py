"""The local multi-node farm end to end (issue 12, docs/plans/multi-node.md §3): three
engine containers, three managers, site files on GlusterFS.

Marked ``multinode``: CI runs it once, in the SQLite pass. The farm is brought up by
the module fixture (``manage.py farm_up --nodes 3``'s code) and driven through the
settings it writes, the way a panel started with its farm.env would; the engines
and their volumes stay for the next run (their image caches make it warm). Each
phase's time is printed.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from farm.models import Tenant, User
from farm.runner import run_operation
from nodes import local_farm
from nodes.inventory import sync_nodes
from nodes.local_nodes import engines
from nodes.local_nodes.plan import plan_roles
from nodes.quorum import quorum
from nodes.swarm import client
from sites import files, services
from sites.models import Site, SiteStatus

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("FARM_TEST_SKIP_MULTINODE") == "1", reason="FARM_TEST_SKIP_MULTINODE=1"
    ),
]

PHASES: dict[str, float] = {}


def phase(name: str, started: float) -> None:
    PHASES[name] = time.monotonic() - started
    print(f"[multinode] {name}: {PHASES[name]:.1f}s")


@pytest.fixture(scope="module")
def local_nodes() -> Iterator[local_farm.NodesReport]:
    if os.geteuid() != 0:
        pytest.skip("node engines need root (their sockets live under /run/wpfarm-nodes)")
    started = time.monotonic()
    report = local_farm.up(3, progress=lambda m: None)
    phase("farm up", started)
    print("[multinode] timings", {k: round(v, 1) for k, v in report.timings.items()})
    with local_farm.driving(report.settings):
        yield report
    # The engines stop; their volumes (images, bricks) stay for the next run.
    local_farm.down(progress=lambda m: None)


@pytest.fixture
def farm(local_nodes, db) -> local_farm.NodesReport:
    sync_nodes()
    return local_nodes


@pytest.fixture
def people(db) -> tuple[Tenant, User]:
    tenant = Tenant.objects.create(name="MN", slug=f"mn-{uuid.uuid4().hex[:6]}", site_quota=20)
    operator = User.objects.create_user("mn@farm.test", "pw-mn-123456", is_staff=True)
    return tenant, operator


def provision(tenant: Tenant, actor: User, cleanup: list[int], domain: str) -> Site:
    created = services.create_site(
        tenant=tenant, domain=domain, image_choice="php8.2", cache_enabled=True, actor=actor
    )
    cleanup.append(created.site.pk)
    run_operation(created.operation.pk)
    created.operation.refresh_from_db()
    assert created.operation.status == "succeeded", (
        f"{created.operation.error}\n{stack_report(created.site)}"
    )
    created.site.refresh_from_db()
    assert created.site.status == SiteStatus.ACTIVE
    return created.site


def stack_report(site: Site) -> str:
    """Where each of the site's tasks is and what Swarm says of it (for a failure)."""
    cli = client()
    names = {n["ID"]: n["Description"]["Hostname"] for n in cli.api.nodes()}
    tasks = cli.api.tasks(filters={"label": f"com.docker.stack.namespace={site.stack_name}"})
    return "\n".join(
        f"  {t['Spec']['ContainerSpec']['Image'].split('@')[0]} on "
        f"{names.get(t.get('NodeID', ''), '?')}: {t['Status'].get('State')} "
        f"{t['Status'].get('Err') or t['Status'].get('Message', '')}"
        for t in tasks
    )


def get(domain: str, path: str, timeout: float = 5) -> requests.Response:
    return requests.get(
        f"{settings.FARM_EDGE_URL}{path}",
        headers={"Host": domain},
        timeout=timeout,
        allow_redirects=False,
    )


def nodes_of(site: Site) -> set[str]:
    """The hostnames of the nodes running the site's tasks."""
    cli = client()
    names = {n["ID"]: n["Description"]["Hostname"] for n in cli.api.nodes()}
    tasks = cli.api.tasks(filters={"label": f"com.docker.stack.namespace={site.stack_name}"})
    return {names[t["NodeID"]] for t in tasks if t["DesiredState"] == "running" and t.get("NodeID")}


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 0.5
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if check():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s")


def answers(domain: str, sha: str | None = None) -> bool:
    if sha is None:
        return get(domain, "/wp-admin/install.php").status_code == 200
    response = get(domain, "/wp-content/uploads/e2e.bin")
    return response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == sha


def test_three_managers_one_leader_and_the_planned_roles(farm) -> None:
    cli = client()
    nodes = {n["Description"]["Hostname"]: n for n in cli.api.nodes()}
    assert sorted(nodes) == ["farm-node-1", "farm-node-2", "farm-node-3"]
    assert all(n["Spec"]["Role"] == "manager" for n in nodes.values())
    assert sum(bool(n["ManagerStatus"].get("Leader")) for n in nodes.values()) == 1
    labels = {name: n["Spec"].get("Labels") or {} for name, n in nodes.items()}
    assert labels["farm-node-1"].get("farm.role.db") == "true"
    assert "farm.role.worker" not in labels["farm-node-1"]
    assert labels["farm-node-2"].get("farm.role.worker") == "true"
    assert quorum(list(farm_nodes())).writable
    # Every service names its image by digest in the private registry (the registry's
    # own image is side-loaded: it cannot come from itself).
    pinned = re.compile(r"^127\.0\.0\.1:5000/farm/[a-z]+@sha256:[0-9a-f]{64}$")
    for service in cli.api.services():
        name = service["Spec"]["Name"]
        image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        if name != "farm_registry":
            assert pinned.match(image), (name, image)
    # The overlays are as encrypted as the probe said this kernel allows.
    net = cli.api.inspect_network("farm-db")
    assert ("encrypted" in (net.get("Options") or {})) == farm.encrypted, farm.encryption_reason


def farm_nodes():
    from nodes.models import Node

    return Node.objects.exclude(status="gone")


def farm_nodes_synced():
    sync_nodes()
    return farm_nodes()


def node_row(hostname: str):
    from nodes.models import Node

    sync_nodes()
    return Node.objects.get(hostname=hostname)


def test_drain_node_failure_and_a_lost_manager(farm, people, cleanup, settings, tmp_path) -> None:
    """The issue's scenario: sites spread over both workers and share one file; a drain
    moves a site with its file; a worker's engine killed without warning raises NodeDown
    and every site answers again with an RTO; with that manager down (listed first in
    FARM_DOCKER_HOSTS) a new site is provisioned; the engine comes back and rejoins."""
    from backups.models import Backup
    from farm.models import Operation
    from monitoring.models import Alert
    from nodes.watch import NodeWatcher
    from sites import services as site_services
    from sites.models import SiteOutage
    from sites.services.nodes import activate_node, drain_node

    tenant, operator = people
    host = engines.host_engine()

    started = time.monotonic()
    sites = [provision(tenant, operator, cleanup, f"mn{i}-e2e.localhost") for i in range(3)]
    phase("3 sites provisioned", started)
    placed = {site.domain: nodes_of(site) for site in sites}
    print("[multinode] placement", placed)
    used = set().union(*placed.values())
    assert used == {"farm-node-2", "farm-node-3"}, "sites run on the two workers, never node-1"

    # A file written through the host's Gluster mount is served by every site's nginx.
    payload = os.urandom(256 * 1024)
    sha = hashlib.sha256(payload).hexdigest()
    for site in sites:
        uploads = files.site_path(site.pk) / "wp-content" / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        (uploads / "e2e.bin").write_bytes(payload)
    for site in sites:
        wait_until(f"{site.domain} serves the shared file", partial(answers, site.domain, sha), 20)

    # Backups read the site's files from Gluster and restores write them back: back up
    # site A, lose the file, restore in place, and nginx serves it again.
    site_a = sites[0]
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = "multinode-repo-password"
    started = time.monotonic()
    backup = site_services.back_up_now(site=site_a, actor=operator)
    assert run_operation(backup.pk) == "succeeded", Operation.objects.get(pk=backup.pk).error
    (files.site_path(site_a.pk) / "wp-content" / "uploads" / "e2e.bin").unlink()
    assert not answers(site_a.domain, sha)
    at = Backup.objects.filter(site=site_a, reason="manual").latest("finished_at").finished_at
    restore = site_services.start_restore(
        site=site_a,
        point_in_time=at,
        scope="both",
        target="in_place",
        actor=operator,
        confirm_domain=site_a.domain,
    )
    assert restore.operation is not None
    run_operation(restore.operation.pk)
    restore.refresh_from_db()
    assert restore.operation.status == "succeeded", restore.operation.error
    wait_until(
        f"{site_a.domain} serves the restored file", partial(answers, site_a.domain, sha), 30
    )
    phase("back up and restore in place over Gluster", started)

    # Drain the worker that holds site A: its tasks move, it answers from the other node
    # with the same file, and the outage rows say how long each site was unreachable.
    drained = sorted(placed[site_a.domain])[0]
    other = ({"farm-node-2", "farm-node-3"} - {drained}).pop()
    started = time.monotonic()
    operation = drain_node(node=node_row(drained), actor=operator)
    run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.status == "succeeded", operation.error
    phase(f"drain of {drained}", started)
    assert nodes_of(site_a) == {other}
    assert answers(site_a.domain, sha)
    outages = list(SiteOutage.objects.filter(operation=operation))
    assert site_a.pk in {o.site_id for o in outages}
    for outage in outages:
        print(
            f"[multinode] drain: {outage.site.domain} → {outage.moved_to}, "
            f"unreachable {outage.unreachable_s:.1f}s"
        )
        assert outage.answered_at is not None
    operation = activate_node(node=node_row(drained), actor=operator)
    run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.status == "succeeded", operation.error

    # Kill the worker that now holds every site (a manager too) without warning.
    victim = other
    watcher = NodeWatcher()
    watcher.poll()
    started = time.monotonic()
    killed_at = timezone.now()
    engines.kill_engine(host, victim)
    failover = None
    while failover is None and time.monotonic() - started < 60:
        for change in watcher.poll():
            if change.hostname == victim and change.went_down:
                failover = watcher.last_operation
        time.sleep(1)
    assert failover is not None, f"the watcher did not see {victim} go down within 60 s"
    phase(f"{victim} seen down by the watcher", started)
    try:
        run_operation(failover.pk)
        failover.refresh_from_db()
        assert failover.status == "succeeded", failover.error
        phase("every site on it answers again", started)
        alert = Alert.objects.get(fingerprint__startswith="node-down:")
        assert alert.status == "firing"
        raised_after = (alert.started_at - killed_at).total_seconds()
        print(f"[multinode] NodeDown raised {raised_after:.1f}s after the kill")
        assert raised_after < 60
        for outage in SiteOutage.objects.filter(operation=failover):
            print(f"[multinode] node down: {outage.site.domain} RTO {outage.rto_s:.1f}s")
            assert outage.rto_s is not None and outage.rto_s < 120
        for site in sites:
            assert answers(site.domain, sha), site.domain

        # The dead manager first in the list: the client fails over, and a site is made.
        dead = next(s for s in plan_roles(3) if s.name == victim)
        hosts = [
            dead.docker_host,
            *[h for h in farm.settings["FARM_DOCKER_HOSTS"] if h != dead.docker_host],
        ]
        started = time.monotonic()
        with local_farm.driving({**farm.settings, "FARM_DOCKER_HOSTS": hosts}):
            fourth = provision(tenant, operator, cleanup, "mn3-e2e.localhost")
            assert answers(fourth.domain)
            state = quorum(list(farm_nodes_synced()))
        phase("a site provisioned with a manager down", started)
        assert state.writable and state.reachable == 2, state
    finally:
        started = time.monotonic()
        engines.start_engine(host, next(s for s in plan_roles(3) if s.name == victim), image="-")
        engines.wait_until_ready(victim, host=host, timeout_s=60)
        wait_until(f"{victim} is ready again", lambda: node_row(victim).status == "ready", 60)
        phase("the stopped engine rejoined", started)
    watcher.poll()
