"""Forms of the Tenants pages, and the check the New site form's inline tenant shares."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from farm.models import Membership, Tenant
from farm.models.tenancy import MembershipRole
from farm.tenants import DEFAULT_SITE_QUOTA, SLUG_MAX_LENGTH, slug_for, slug_taken_message

NAME_MAX_LENGTH = Tenant._meta.get_field("name").max_length or 120


def check_new_tenant_name(name: str) -> tuple[str, str]:
    """The cleaned name of a tenant to create and its derived short name, or a field error."""
    name = name.strip()
    slug = slug_for(name)
    if not slug:
        raise ValidationError(
            "Give the tenant a name with at least one letter or digit (a-z, 0-9): "
            "its short name is made from it.",
            code="no_slug",
        )
    same_name = Tenant.objects.filter(name__iexact=name).first()
    if same_name is not None:
        raise ValidationError(
            f"The tenant {same_name.name} already exists: choose it instead.", code="taken"
        )
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(slug_taken_message(slug), code="taken")
    return name, slug


class TenantCreateForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="The customer's name as people should see it.",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )
    slug = forms.SlugField(
        label="Short name",
        max_length=SLUG_MAX_LENGTH,
        required=False,
        help_text="Lowercase letters, digits and hyphens; it never changes. "
        "Leave it empty to make it from the name.",
    )
    site_quota = forms.IntegerField(
        min_value=0,
        initial=DEFAULT_SITE_QUOTA,
        help_text="How many live sites the tenant may have.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("name")
        if name is None:
            return cleaned
        slug = cleaned.get("slug") or ""
        if slug:
            if Tenant.objects.filter(slug=slug).exists():
                self.add_error("slug", slug_taken_message(slug))
            return cleaned
        try:
            cleaned["name"], cleaned["slug"] = check_new_tenant_name(name)
        except ValidationError as exc:
            self.add_error("name", exc)
        return cleaned


class TenantEditForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH)
    site_quota = forms.IntegerField(
        min_value=0,
        help_text="A quota below the live sites refuses new ones and removes none.",
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"name": tenant.name, "site_quota": tenant.site_quota})
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        other = Tenant.objects.filter(name__iexact=name).exclude(pk=self.tenant.pk).first()
        if other is not None:
            raise ValidationError(f"Another tenant is called {other.name}.", code="taken")
        return name


class MemberAddForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        help_text="Someone new gets an email with a link to set their password.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    role = forms.ChoiceField(
        choices=MembershipRole.choices,
        initial=MembershipRole.MEMBER,
        help_text="Owners change the tenant's sites and people; members look.",
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip().lower()
        if Membership.objects.filter(tenant=self.tenant, user__email__iexact=email).exists():
            raise ValidationError(f"{email} is already in {self.tenant.name}.", code="exists")
        return email


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=MembershipRole.choices)
