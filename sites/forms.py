from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from farm.models import Tenant, User
from farm.models.tenancy import MembershipRole
from nodes.image_map import site_runtimes
from sites.domains import normalise_domain
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
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), empty_label=None)
    image_choice = forms.ChoiceField(label="PHP / WordPress")
    cache_enabled = forms.BooleanField(
        label="Redis object cache",
        required=False,
        initial=True,
        help_text="Runs a small Redis beside the site (64 MB).",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user.is_staff:
            tenants = Tenant.objects.all()
        else:
            tenants = Tenant.objects.filter(
                memberships__user=user, memberships__role=MembershipRole.OWNER
            )
        self.fields["tenant"].queryset = tenants  # type: ignore[attr-defined]
        if not user.is_staff and tenants.count() == 1:
            self.fields["tenant"].widget = forms.HiddenInput()
            self.fields["tenant"].initial = tenants.first()
        self.fields["image_choice"].choices = [  # type: ignore[attr-defined]
            (key, runtime.label) for key, runtime in site_runtimes().items()
        ]

    def clean_domain(self) -> str:
        domain = normalise_domain(self.cleaned_data["domain"])
        if Site.objects.filter(domain_claim=domain).exists():
            raise ValidationError(f"{domain} is already a site on this farm.", code="taken")
        return domain


class SiteDeleteForm(forms.Form):
    confirm_domain = forms.CharField(label="Type the domain to confirm", max_length=300)
    purge = forms.BooleanField(
        required=False,
        label="Also delete the site's files and backups (cannot be undone)",
    )

    def __init__(self, *args: Any, site: Site, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.site = site
        if not user.is_staff:
            del self.fields["purge"]

    def clean_confirm_domain(self) -> str:
        typed = self.cleaned_data["confirm_domain"].strip().lower()
        if typed not in (self.site.domain, self.site.display_domain.lower()):
            raise ValidationError("That is not this site's domain.", code="mismatch")
        return typed
