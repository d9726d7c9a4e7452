"""Every change to a site, one function each; views, commands and tasks call these.
One module per kind of change: the site's life (``lifecycle``), its backups
(``backups``), its restores (``restores``) and reconcile (``reconcile``). This
module is their public API."""

from sites.services.backups import (
    ALL_KINDS,
    CLAIMABLE,
    back_up_now,
    check_rpo,
    claim_due_backups,
    live_sites,
    start_claimed_backups,
    start_site_backup,
    watched_sites,
)
from sites.services.lifecycle import (
    Created,
    DomainTaken,
    approve_site_domain,
    create_site,
    decline_site_domain,
    delete_site,
    repair_site,
    resume_site,
    suspend_site,
)
from sites.services.nodes import NodeRefused, activate_node, drain_node, remove_node
from sites.services.reconcile import running_reconcile, start_reconcile
from sites.services.restores import run_drills, start_restore, switch_to_preview

__all__ = [
    "ALL_KINDS",
    "CLAIMABLE",
    "Created",
    "DomainTaken",
    "NodeRefused",
    "activate_node",
    "approve_site_domain",
    "back_up_now",
    "check_rpo",
    "claim_due_backups",
    "create_site",
    "decline_site_domain",
    "delete_site",
    "drain_node",
    "live_sites",
    "remove_node",
    "repair_site",
    "resume_site",
    "run_drills",
    "running_reconcile",
    "start_claimed_backups",
    "start_reconcile",
    "start_restore",
    "start_site_backup",
    "suspend_site",
    "switch_to_preview",
    "watched_sites",
]
