"""What both benchmarks need: Django set up on their own var dir, a farm that is up,
a tenant and an operator to act as, and a way to remove a site they made."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "farm.settings")
os.environ.setdefault("FARM_VAR_DIR", str(ROOT / "var" / "bench"))
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from farm.models import Tenant, User  # noqa: E402
from nodes.bootstrap import farm_up  # noqa: E402
from nodes.inventory import sync_nodes  # noqa: E402
from sites import database, files  # noqa: E402
from sites.swarm_site import remove_stack  # noqa: E402


def prepare_farm() -> tuple[Tenant, User]:
    call_command("migrate", verbosity=0)
    farm_up(progress=lambda m: None)
    sync_nodes()
    tenant, _ = Tenant.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "site_quota": 1000}
    )
    actor = User.objects.filter(email="bench@farm.localhost").first()
    if actor is None:
        actor = User.objects.create_user("bench@farm.localhost", None, is_staff=True)
    return tenant, actor


def remove_site(site_id: int) -> None:
    remove_stack(site_id, lambda m: None)
    database.drop_site_database(name=f"wp_{site_id}", user=f"wp_{site_id}")
    files.remove_site_files(site_id)
