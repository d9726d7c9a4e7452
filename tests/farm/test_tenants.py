"""The Tenants pages (item 17): operators create tenants and change their quota without
the Django admin; owners manage their tenant's people; members look; outsiders get 404.

Every change goes through one function in farm/tenants.py and leaves an audit entry.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.urls import reverse

from farm import tenants
from farm.models import AuditEvent, Membership, Tenant, User
from sites.models import Site
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def membership_of(user: User, tenant: Tenant) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


# --- The list --------------------------------------------------------------------------


def test_item_17_operators_list_every_tenant_with_sites_quota_and_people(
    operator, tenant, other_tenant, owner, member
):
    Site.objects.create(tenant=tenant, domain="one.acme.test", status="active")
    Site.objects.create(tenant=tenant, domain="two.acme.test", status="suspended")
    Site.objects.create(tenant=tenant, domain="gone.acme.test", status="deleted")
    response = client_for(operator).get(reverse("tenant_list"))
    assert response.status_code == 200
    rows = {t.slug: t for t in response.context["page"].object_list}
    assert set(rows) == {"acme", "globex"}
    assert (rows["acme"].live_sites, rows["acme"].site_quota, rows["acme"].members) == (2, 3, 2)
    assert (rows["globex"].live_sites, rows["globex"].members) == (0, 0)
    body = response.content.decode()
    assert reverse("tenant_create") in body
    assert f'href="{reverse("tenant_list")}"' in body, "the navigation links the page"


def test_the_list_is_paginated_and_searchable(operator):
    Tenant.objects.bulk_create(
        Tenant(name=f"Tenant {n:03}", slug=f"tenant-{n:03}") for n in range(60)
    )
    client = client_for(operator)
    first = client.get(reverse("tenant_list"))
    assert len(first.context["page"].object_list) == 50
    second = client.get(reverse("tenant_list"), {"page": 2})
    assert len(second.context["page"].object_list) == 10
    found = client.get(reverse("tenant_list"), {"q": "tenant-042"})
    assert [t.slug for t in found.context["page"].object_list] == ["tenant-042"]
    partial = client.get(
        reverse("tenant_list"),
        {"q": "042"},
        headers={"HX-Request": "true", "HX-Target": "tenant-rows"},
    )
    assert "<html" not in partial.content.decode()


def test_tenant_users_list_only_their_own_tenants(owner, member, outsider, tenant):
    for user in (owner, member):
        response = client_for(user).get(reverse("tenant_list"))
        assert [t.slug for t in response.context["page"].object_list] == ["acme"]
        assert reverse("tenant_create") not in response.content.decode()
    outsider_view = client_for(outsider).get(reverse("tenant_list"))
    assert [t.slug for t in outsider_view.context["page"].object_list] == ["globex"]


def test_anonymous_is_sent_to_login_and_wrong_methods_are_405(client, operator, tenant):
    for url in (reverse("tenant_list"), reverse("tenant_detail", args=[tenant.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
    ops = client_for(operator)
    assert ops.post(reverse("tenant_list")).status_code == 405
    assert ops.post(reverse("tenant_detail", args=[tenant.pk])).status_code == 405
    assert ops.put(reverse("tenant_create")).status_code == 405
    assert ops.put(reverse("tenant_edit", args=[tenant.pk])).status_code == 405
    assert ops.get(reverse("tenant_member_add", args=[tenant.pk])).status_code == 405


# --- Create and edit -------------------------------------------------------------------


def test_item_17_an_operator_creates_a_tenant_and_it_is_audited(operator):
    response = client_for(operator).post(
        reverse("tenant_create"), {"name": "Shop Co Ltd.", "slug": "", "site_quota": "8"}
    )
    tenant = Tenant.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("tenant_detail", args=[tenant.pk])
    assert (tenant.name, tenant.slug, tenant.site_quota) == ("Shop Co Ltd.", "shop-co-ltd", 8)
    event = AuditEvent.objects.get(action="tenant.create")
    assert (event.actor, event.tenant, event.data["slug"]) == (operator, tenant, "shop-co-ltd")


def test_a_taken_name_or_short_name_is_a_field_error(operator, tenant):
    client = client_for(operator)
    same_name = client.post(reverse("tenant_create"), {"name": " acme ", "site_quota": "1"})
    assert same_name.status_code == 200
    assert same_name.context["form"].errors["name"] == [
        "The tenant Acme already exists: choose it instead."
    ]
    same_slug = client.post(reverse("tenant_create"), {"name": "ACME!", "site_quota": "1"})
    assert same_slug.context["form"].errors["name"] == [
        "The tenant Acme already has the short name “acme”: choose it instead."
    ]
    typed_slug = client.post(
        reverse("tenant_create"), {"name": "Acme Two", "slug": "acme", "site_quota": "1"}
    )
    assert "already has the short name “acme”" in typed_slug.context["form"].errors["slug"][0]
    no_letters = client.post(reverse("tenant_create"), {"name": "!!!", "site_quota": "1"})
    assert "at least one letter or digit" in no_letters.context["form"].errors["name"][0]
    negative = client.post(reverse("tenant_create"), {"name": "Neg", "site_quota": "-1"})
    assert negative.context["form"].errors["site_quota"]
    assert Tenant.objects.count() == 1


def test_two_creations_of_one_short_name_give_one_clear_error(operator, tenant):
    """The unique column decides when the form's check raced another request."""
    with (
        mock.patch.object(Tenant.objects, "create", side_effect=IntegrityError("slug")),
        pytest.raises(tenants.TenantSlugTaken, match="already has the short name"),
    ):
        tenants.create_tenant(name="Acme", actor=operator)


def test_only_operators_create_or_edit_tenants(owner, member, tenant):
    for user in (owner, member):
        client = client_for(user)
        assert client.get(reverse("tenant_create")).status_code == 403
        assert (
            client.post(reverse("tenant_create"), {"name": "X", "site_quota": 9}).status_code == 403
        )
        edit = reverse("tenant_edit", args=[tenant.pk])
        assert client.get(edit).status_code == 403
        assert client.post(edit, {"name": "Mine", "site_quota": "99"}).status_code == 403
        with pytest.raises(PermissionDenied):
            tenants.create_tenant(name="Y", actor=user)
    tenant.refresh_from_db()
    assert (tenant.name, tenant.site_quota) == ("Acme", 3)
    assert Tenant.objects.count() == 1


def test_item_17_an_operator_renames_a_tenant_and_changes_its_quota(operator, tenant):
    client = client_for(operator)
    url = reverse("tenant_edit", args=[tenant.pk])
    assert client.get(url).context["form"].initial == {"name": "Acme", "site_quota": 3}
    response = client.post(url, {"name": "Acme Corp", "site_quota": "10"})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.slug, tenant.site_quota) == ("Acme Corp", "acme", 10)
    event = AuditEvent.objects.get(action="tenant.update")
    assert event.data == {"name": ["Acme", "Acme Corp"], "site_quota": [3, 10]}


def test_editing_shows_field_errors(operator, tenant, other_tenant):
    url = reverse("tenant_edit", args=[tenant.pk])
    response = client_for(operator).post(url, {"name": "globex", "site_quota": "-2"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["name"] == ["Another tenant is called Globex."]
    assert errors["site_quota"]
    assert not AuditEvent.objects.filter(action="tenant.update").exists()


def test_another_tenants_pages_are_404(outsider, owner, tenant):
    client = client_for(outsider)
    owners_membership = membership_of(owner, tenant)
    assert client.get(reverse("tenant_detail", args=[tenant.pk])).status_code == 404
    assert client.get(reverse("tenant_edit", args=[tenant.pk])).status_code == 404
    posts = [
        reverse("tenant_member_add", args=[tenant.pk]),
        reverse("tenant_member_role", args=[tenant.pk, owners_membership.pk]),
        reverse("tenant_member_remove", args=[tenant.pk, owners_membership.pk]),
        reverse("tenant_member_invite", args=[tenant.pk, owners_membership.pk]),
    ]
    for url in posts:
        assert client.post(url, {"email": "x@y.test", "role": "member"}).status_code == 404
    assert Membership.objects.filter(tenant=tenant).count() == 1


def test_a_membership_is_found_only_through_its_own_tenant(owner, outsider, tenant, other_tenant):
    """An owner of Acme cannot reach Globex's people by putting their id under Acme's URL."""
    theirs = membership_of(outsider, other_tenant)
    client = client_for(owner)
    for name in ("tenant_member_role", "tenant_member_remove", "tenant_member_invite"):
        response = client.post(reverse(name, args=[tenant.pk, theirs.pk]), {"role": "member"})
        assert response.status_code == 404
    assert membership_of(outsider, other_tenant).role == "owner"


# --- The detail page and its people ----------------------------------------------------


def test_item_17_a_tenant_page_lists_its_people(owner, member, tenant):
    for user, can_manage in ((owner, True), (member, False)):
        response = client_for(user).get(reverse("tenant_detail", args=[tenant.pk]))
        assert response.status_code == 200
        assert [m.user.email for m in response.context["memberships"]] == [
            "member@acme.test",
            "owner@acme.test",
        ]
        assert response.context["can_manage"] is can_manage
        body = response.content.decode()
        assert (reverse("tenant_member_add", args=[tenant.pk]) in body) is can_manage
        assert reverse("tenant_edit", args=[tenant.pk]) not in body, "quota is for operators"


def test_item_17_adding_an_unknown_email_creates_the_user_and_sends_the_invitation(
    operator, tenant
):
    response = client_for(operator).post(
        reverse("tenant_member_add", args=[tenant.pk]),
        {"email": "New.Person@Example.COM", "role": "owner"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.com")
    assert not user.has_usable_password()
    assert membership_of(user, tenant).role == "owner"
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]]
    assert "password" in mail.outbox[0].body.lower()
    assert AuditEvent.objects.get(action="tenant.member.add").data == {
        "email": "new.person@example.com",
        "role": "owner",
        "new_user": True,
    }
    assert AuditEvent.objects.filter(action="user.invite", target_id=str(user.pk)).exists()


def test_an_owner_adds_a_known_person_without_an_email_and_without_learning_more(
    owner, outsider, tenant
):
    response = client_for(owner).post(
        reverse("tenant_member_add", args=[tenant.pk]),
        {"email": outsider.email, "role": "member"},
    )
    assert response.status_code == 302
    assert membership_of(outsider, tenant).role == "member"
    assert mail.outbox == [], "a person with a login is not re-invited"
    assert messages_of(response) == [
        f"Added {outsider.email} as member. "
        "Someone without a login yet gets an email to set a password."
    ]


def test_adding_shows_field_errors(owner, member, tenant):
    client = client_for(owner)
    url = reverse("tenant_member_add", args=[tenant.pk])
    again = client.post(url, {"email": member.email, "role": "owner"})
    assert again.status_code == 200
    assert again.context["add_form"].errors["email"] == ["member@acme.test is already in Acme."]
    bad = client.post(url, {"email": "not-an-email", "role": "boss"})
    assert set(bad.context["add_form"].errors) == {"email", "role"}
    assert Membership.objects.filter(tenant=tenant).count() == 2
    assert mail.outbox == []


def test_members_look_but_do_not_change_people(member, owner, tenant):
    client = client_for(member)
    owners_membership = membership_of(owner, tenant)
    assert (
        client.post(
            reverse("tenant_member_add", args=[tenant.pk]), {"email": "x@y.test", "role": "owner"}
        ).status_code
        == 403
    )
    for name in ("tenant_member_role", "tenant_member_remove", "tenant_member_invite"):
        url = reverse(name, args=[tenant.pk, owners_membership.pk])
        assert client.post(url, {"role": "member"}).status_code == 403
    assert membership_of(owner, tenant).role == "owner"
    assert not User.objects.filter(email="x@y.test").exists()
    assert mail.outbox == []


def test_an_owner_changes_a_role_and_it_is_audited(owner, member, tenant):
    url = reverse("tenant_member_role", args=[tenant.pk, membership_of(member, tenant).pk])
    response = client_for(owner).post(url, {"role": "owner"})
    assert response.status_code == 302
    assert membership_of(member, tenant).role == "owner"
    event = AuditEvent.objects.get(action="tenant.member.role")
    assert (event.actor, event.tenant, event.data["role"]) == (owner, tenant, ["member", "owner"])


def test_the_last_owner_cannot_leave_the_tenant_without_owners(owner, member, tenant):
    client = client_for(owner)
    mine = membership_of(owner, tenant)
    demoted = client.post(
        reverse("tenant_member_role", args=[tenant.pk, mine.pk]), {"role": "member"}
    )
    assert demoted.status_code == 302
    assert messages_of(demoted) == [
        "owner@acme.test is the only owner of Acme: make someone else an owner first."
    ]
    removed = client.post(reverse("tenant_member_remove", args=[tenant.pk, mine.pk]))
    assert "the only owner" in messages_of(removed)[0]
    assert membership_of(owner, tenant).role == "owner"


def test_an_operator_may_remove_the_last_owner(operator, owner, tenant):
    url = reverse("tenant_member_remove", args=[tenant.pk, membership_of(owner, tenant).pk])
    assert client_for(operator).post(url).status_code == 302
    assert not Membership.objects.filter(tenant=tenant).exists()
    assert User.objects.filter(pk=owner.pk).exists(), "the person stays; only the role goes"
    assert AuditEvent.objects.get(action="tenant.member.remove").data == {
        "email": owner.email,
        "role": "owner",
    }


def test_an_owner_removes_a_member_and_an_owner_who_leaves_goes_to_the_list(owner, member, tenant):
    client = client_for(owner)
    url = reverse("tenant_member_remove", args=[tenant.pk, membership_of(member, tenant).pk])
    assert client.post(url)["Location"] == reverse("tenant_detail", args=[tenant.pk])
    assert not Membership.objects.filter(user=member).exists()

    second = User.objects.create_user("second@acme.test")
    Membership.objects.create(user=second, tenant=tenant, role="owner")
    leave = client.post(
        reverse("tenant_member_remove", args=[tenant.pk, membership_of(owner, tenant).pk])
    )
    assert leave["Location"] == reverse("tenant_list")
    assert client.get(reverse("tenant_detail", args=[tenant.pk])).status_code == 404


def test_item_17_resending_an_invitation_emails_a_new_link(owner, member, tenant):
    url = reverse("tenant_member_invite", args=[tenant.pk, membership_of(member, tenant).pk])
    response = client_for(owner).post(url)
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[member.email]]
    assert messages_of(response) == [f"Sent {member.email} a new invitation."]
    event = AuditEvent.objects.get(action="user.invite")
    assert (event.actor, event.target_id) == (owner, str(member.pk))


def test_a_disabled_account_gets_no_invitation(owner, member, tenant):
    member.is_active = False
    member.save()
    url = reverse("tenant_member_invite", args=[tenant.pk, membership_of(member, tenant).pk])
    response = client_for(owner).post(url)
    assert messages_of(response) == [f"{member.email}'s account is disabled: nothing was sent."]
    assert mail.outbox == []


def test_the_services_refuse_people_without_the_right_role(member, outsider, tenant):
    with pytest.raises(PermissionDenied):
        tenants.add_member(
            tenant=tenant, email="x@y.test", role="owner", actor=member, request=mock.Mock()
        )
    with pytest.raises(PermissionDenied):
        tenants.update_tenant(tenant=tenant, name="X", site_quota=50, actor=outsider)
    with pytest.raises(PermissionDenied):
        tenants.change_role(membership=membership_of(member, tenant), role="owner", actor=member)
