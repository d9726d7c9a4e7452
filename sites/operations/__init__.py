"""The operation kinds of a site's life, one module per kind of work. Importing this
package registers them all (SitesConfig.ready); it is also their public API."""

from sites.operations.backups import BackUpSite, backup_alert_fingerprint
from sites.operations.base import SiteKind
from sites.operations.delete import DeleteSite
from sites.operations.lifecycle import ResumeSite, SuspendSite
from sites.operations.nodes import DrainNode, FailOverNode
from sites.operations.provision import PROVISION_STEPS, ProvisionSite, RepairSite
from sites.operations.reconcile import (
    RECONCILE_TARGET_ID,
    RECONCILE_TARGET_REPR,
    RECONCILE_TARGET_TYPE,
    ReconcileSites,
)
from sites.operations.restores import (
    PREVIEW_STEPS,
    RestoreDrill,
    RestoreKind,
    RestoreSite,
    SwitchToPreview,
)

__all__ = [
    "PREVIEW_STEPS",
    "PROVISION_STEPS",
    "RECONCILE_TARGET_ID",
    "RECONCILE_TARGET_REPR",
    "RECONCILE_TARGET_TYPE",
    "BackUpSite",
    "DeleteSite",
    "DrainNode",
    "FailOverNode",
    "ProvisionSite",
    "ReconcileSites",
    "RepairSite",
    "RestoreDrill",
    "RestoreKind",
    "RestoreSite",
    "ResumeSite",
    "SiteKind",
    "SuspendSite",
    "SwitchToPreview",
    "backup_alert_fingerprint",
]
