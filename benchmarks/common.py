"""What both benchmarks need: Django set up on their own var dir, a farm that is up,
a tenant and an operator to act as, and a way to remove a site they made."""

from __future__ import annotations

from django.core.management import call_command

from benchmarks import ROOT
from farm.models import Tenant, User
from nodes import edge, mariadb
from nodes.bootstrap import farm_up
from nodes.inventory import sync_nodes
from sites import files
from sites.swarm_site import remove_stack

__all__ = ["ROOT", "bench_people", "edge_status", "prepare_farm", "remove_site"]


def prepare_farm() -> tuple[Tenant, User]:
    call_command("migrate", verbosity=0)
    farm_up(progress=lambda m: None)
    sync_nodes()
    return bench_people("bench")


def bench_people(name: str) -> tuple[Tenant, User]:
    """The tenant ``name`` (room for 1000 sites) and the operator ``name@farm.localhost``
    a benchmark acts as, made once."""
    tenant, _ = Tenant.objects.get_or_create(
        slug=name, defaults={"name": name.title(), "site_quota": 1000}
    )
    actor = User.objects.filter(email=f"{name}@farm.localhost").first()
    if actor is None:
        actor = User.objects.create_user(f"{name}@farm.localhost", None, is_staff=True)
    return tenant, actor


def remove_site(site_id: int) -> None:
    remove_stack(site_id, lambda m: None)
    mariadb.drop_site_database(name=f"wp_{site_id}", user=f"wp_{site_id}")
    files.remove_site_files(site_id)


def edge_status(domain: str, path: str = "/") -> int:
    """The status Traefik answers for ``domain`` (no redirect followed); 0: no answer."""
    try:
        return edge.get(domain, path, timeout=5).status
    except edge.EdgeError:
        return 0
