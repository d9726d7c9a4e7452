"""Every model is in the Django admin and its pages load for an operator."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.conftest import client_for

pytestmark = pytest.mark.django_db

OUR_APPS = ("farm", "sites", "nodes", "backups", "monitoring")


def test_every_model_is_registered():
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert ours, "no models found"
    missing = [m.__name__ for m in ours if not admin.site.is_registered(m)]
    assert missing == []


def test_every_changelist_and_add_page_loads(operator):
    client = client_for(operator)
    for model in admin.site._registry:
        if model._meta.app_label not in OUR_APPS:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        add = client.get(reverse("admin:{}_{}_add".format(*info)))
        assert add.status_code in (200, 403), info


def test_tenant_users_cannot_use_the_admin(owner):
    response = client_for(owner).get(reverse("admin:index"))
    assert response.status_code == 302


def test_operators_invite_people_from_the_admin(operator, owner, mailoutbox):
    from farm.models import AuditEvent

    response = client_for(operator).post(
        reverse("admin:farm_user_changelist"),
        {"action": "send_invitation", "_selected_action": [owner.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [owner.email]
    assert "/accounts/password/reset/key/" in mailoutbox[0].body
    assert AuditEvent.objects.filter(action="user.invite", target_id=str(owner.pk)).exists()


def test_bulk_edits_and_deletes_in_the_admin_are_audited(operator, tenant, other_tenant):
    from farm.models import AuditEvent, Tenant

    client = client_for(operator)
    response = client.post(
        reverse("admin:farm_tenant_changelist"),
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": tenant.pk,
            "form-0-site_quota": "9",
            "form-1-id": other_tenant.pk,
            "form-1-site_quota": str(other_tenant.site_quota),
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).site_quota == 9
    event = AuditEvent.objects.get(action="admin.change.tenant")
    assert event.actor == operator and event.target_id == str(tenant.pk)

    client.post(
        reverse("admin:farm_tenant_changelist"),
        {"action": "delete_selected", "_selected_action": [other_tenant.pk], "post": "yes"},
    )
    assert not Tenant.objects.filter(pk=other_tenant.pk).exists()
    assert AuditEvent.objects.filter(
        action="admin.delete.tenant", target_id=str(other_tenant.pk)
    ).exists()
