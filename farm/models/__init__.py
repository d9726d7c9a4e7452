from farm.models.audit import AuditEvent
from farm.models.operations import Operation, OperationStatus, OperationStep, StepStatus
from farm.models.tenancy import Membership, Tenant, TenantScopedQuerySet, User

__all__ = [
    "AuditEvent",
    "Membership",
    "Operation",
    "OperationStatus",
    "OperationStep",
    "StepStatus",
    "Tenant",
    "TenantScopedQuerySet",
    "User",
]
