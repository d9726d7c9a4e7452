from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from farm.models import Tenant, User
from farm.models.tenancy import MembershipRole
from farm.tenant_forms import NAME_MAX_LENGTH, check_new_tenant_name
from farm.tenants import DEFAULT_SITE_QUOTA
from nodes.images import site_runtimes
from sites.claims import check_domain_claim
from sites.confirm import DomainNotConfirmed, check_typed_domain
from sites.models import Site


class SiteCreateForm(forms.Form):
    domain = forms.CharField(
        max_length=300,
        help_text="The site's host name, e.g. shop.example.com (or shop.localhost here). "
        "International names are accepted and stored in their ASCII form.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autofocus": True}
        ),
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        empty_label=None,
        error_messages={"required": "Choose the tenant the site belongs to."},
    )
    new_tenant_name = forms.CharField(
        label="Or a new tenant",
        max_length=NAME_MAX_LENGTH,
        required=False,
        help_text=f"Type a name to create the tenant together with the site (quota "
        f"{DEFAULT_SITE_QUOTA}; change it and add its people on the Tenants page).",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    image_choice = forms.ChoiceField(label="PHP / WordPress")
    cache_enabled = forms.BooleanField(
        label="Redis object cache",
        required=False,
        initial=True,
        help_text="Runs a small Redis beside the site (64 MB).",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user  # clean_domain: who claims the domain decides what is allowed
        if user.is_staff:
            tenants = Tenant.objects.all()
        else:
            tenants = Tenant.objects.filter(
                memberships__user=user, memberships__role=MembershipRole.OWNER
            )
        tenant_field: forms.ModelChoiceField[Tenant] = self.fields["tenant"]  # type: ignore[assignment]
        tenant_field.queryset = tenants
        # Operators may type a new tenant instead of choosing one; on a farm with no
        # tenant yet, that is the only way, and the form says so.
        self.no_tenant_yet = user.is_staff and not tenants.exists()
        if not user.is_staff:
            del self.fields["new_tenant_name"]
            if not tenants.exists():
                tenant_field.error_messages["required"] = (
                    "You own no tenant, so you cannot create a site: "
                    "ask an operator to make you a tenant's owner."
                )
        elif self.no_tenant_yet:
            del self.fields["tenant"]
            name_field = self.fields["new_tenant_name"]
            name_field.required = True
            name_field.label = "New tenant"
            name_field.error_messages["required"] = (
                "Create a tenant first: type its name here (a customer, or your own team)."
            )
            name_field.help_text = (
                "There is no tenant yet. It is created together with the site "
                f"(quota {DEFAULT_SITE_QUOTA}); add its people on the Tenants page."
            )
        else:
            tenant_field.required = False
            tenant_field.empty_label = "— a new tenant, named below —"
        if not user.is_staff and tenants.count() == 1:
            tenant_field.widget = forms.HiddenInput()
            tenant_field.initial = tenants.first()
        self.fields["image_choice"].choices = [  # type: ignore[attr-defined]
            (key, runtime.label) for key, runtime in site_runtimes().items()
        ]

    def clean_new_tenant_name(self) -> str:
        name = str(self.cleaned_data.get("new_tenant_name") or "").strip()
        if name:
            name, _slug = check_new_tenant_name(name)
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "new_tenant_name" not in self.fields or "tenant" not in self.fields:
            return cleaned
        chosen, typed = cleaned.get("tenant"), cleaned.get("new_tenant_name")
        if chosen is not None and typed:
            self.add_error(
                "new_tenant_name",
                f"You chose {chosen.name} and typed a new tenant: choose "
                "“a new tenant” in the list, or clear this name.",
            )
        elif chosen is None and not typed and "new_tenant_name" not in self.errors:
            self.add_error("tenant", "Choose a tenant, or type a new tenant's name below.")
        return cleaned

    def clean_domain(self) -> str:
        # The same rules as services.create_site, written once in sites/claims.py.
        claim = check_domain_claim(self.cleaned_data["domain"], actor=self.user)
        if claim.refused:
            raise ValidationError(claim.reason, code=claim.code)
        return claim.domain


class ConfirmDomainForm(forms.Form):
    """Asks for the site's domain before a change that cannot be taken back; the page's
    service checks the same thing again (``sites.confirm.check_typed_domain``)."""

    confirm_domain = forms.CharField(
        label="Type the domain to confirm",
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, site: Site, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.site = site

    def clean_confirm_domain(self) -> str:
        try:
            return check_typed_domain(self.site, str(self.cleaned_data["confirm_domain"]))
        except DomainNotConfirmed as exc:
            raise ValidationError(exc.message, code="mismatch") from None


class SiteDeleteForm(ConfirmDomainForm):
    purge = forms.BooleanField(
        required=False,
        label="Also delete the site's files and backups (cannot be undone)",
    )

    def __init__(self, *args: Any, site: Site, user: User, **kwargs: Any) -> None:
        super().__init__(*args, site=site, **kwargs)
        if not user.is_staff:
            del self.fields["purge"]
