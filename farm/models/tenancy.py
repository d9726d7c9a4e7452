"""Who may see what: users, tenants and their memberships.

Operators are staff users and see every tenant. Everyone else sees only the
tenants they are a member of; each model that belongs to a tenant gets its
queryset through ``TenantScopedQuerySet.for_user`` so out-of-scope rows are
simply absent (a 404), never filtered in a template.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who logs in with an email address. Staff users are operators."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_operator(self) -> bool:
        return self.is_active and self.is_staff


class Tenant(models.Model):
    """A customer of the farm: owns sites, sees only its own."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    site_quota = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(0)],
        help_text="How many sites this tenant may have (not counting deleted ones).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipRole(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


class Membership(models.Model):
    """A user's role in one tenant: owners change things, members look."""

    Role = MembershipRole

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=MembershipRole.choices, default="member")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_tenant")
        ]
        ordering = ["tenant__name", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.tenant}"


def tenants_for_user(user: User | AnonymousUser) -> models.QuerySet[Tenant]:
    if not user.is_authenticated or not user.is_active:
        return Tenant.objects.none()
    if user.is_staff:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user)


def can_change_tenant(user: User | AnonymousUser, tenant_id: int | None) -> bool:
    """Owners and operators may change a tenant's things; members only look."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    if tenant_id is None:
        return False
    return Membership.objects.filter(
        user=user, tenant_id=tenant_id, role=MembershipRole.OWNER
    ).exists()


class TenantScopedQuerySet(models.QuerySet[Any]):
    """Rows that belong to a tenant through ``tenant_path`` (e.g. ``site__tenant``)."""

    tenant_path: ClassVar[str] = "tenant"

    def for_user(self, user: User | AnonymousUser) -> Self:
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_staff:
            return self
        tenant_ids = Membership.objects.filter(user=user).values("tenant_id")
        return self.filter(**{f"{self.tenant_path}__in": tenant_ids})
