"""Issue 12, C11: the Drain, Activate and Remove buttons of the Nodes page and the
recent site outages (operators only: a tenant gets 404, a GET of a change 405)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from farm.models import AuditEvent, Operation
from nodes.models import Node
from sites.models import Site, SiteOutage
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

CHANGES = ("node_drain", "node_activate", "node_remove")


@pytest.fixture
def node() -> Node:
    return Node.objects.create(
        swarm_id="n2", hostname="farm-node-2", status="ready", availability="active"
    )


def test_an_operator_drains_a_node_and_follows_the_operation(operator, node):
    client = client_for(operator)
    response = client.post(reverse("node_drain", args=[node.pk]))

    operation = Operation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("operation_detail", args=[operation.pk])
    assert (operation.kind, operation.target_type, operation.target_id) == (
        "node.drain",
        "node",
        str(node.pk),
    )
    assert operation.actor == operator and operation.tenant is None
    assert AuditEvent.objects.filter(action="node.drain", target_id=str(node.pk)).exists()
    page = client.get(response["Location"]).content.decode()
    assert "farm-node-2" in page and "Set the node&#x27;s availability to drain" in page


def test_a_second_change_while_one_is_unfinished_is_refused_with_words(operator, node):
    client = client_for(operator)
    client.post(reverse("node_drain", args=[node.pk]))
    Node.objects.filter(pk=node.pk).update(availability="drain")

    response = client.post(reverse("node_activate", args=[node.pk]), follow=True)

    assert Operation.objects.count() == 1
    assert "already has an unfinished operation" in response.content.decode()


def test_a_drained_node_is_activated(operator, node):
    Node.objects.filter(pk=node.pk).update(availability="drain")

    client_for(operator).post(reverse("node_activate", args=[node.pk]))

    assert Operation.objects.get().kind == "node.activate"


def test_an_active_node_is_not_drained_twice_nor_activated(operator, node):
    Node.objects.filter(pk=node.pk).update(availability="drain")
    page = client_for(operator).post(reverse("node_drain", args=[node.pk]), follow=True)
    assert "farm-node-2 is ready and drain: it cannot be drained." in page.content.decode()
    assert not Operation.objects.exists()


def test_removal_needs_the_hostname_typed_and_a_drained_node(operator, node):
    client = client_for(operator)
    url = reverse("node_remove", args=[node.pk])

    wrong = client.post(url, {"confirm_hostname": "farm-node-3"}, follow=True)
    assert "That is not this node&#x27;s hostname" in wrong.content.decode()
    active = client.post(url, {"confirm_hostname": "farm-node-2"}, follow=True)
    assert "drain it before removing it" in active.content.decode()
    assert not Operation.objects.exists()

    Node.objects.filter(pk=node.pk).update(availability="drain")
    client.post(url, {"confirm_hostname": " farm-node-2 "})
    assert Operation.objects.get().kind == "node.remove"


def test_tenants_get_404_and_a_get_gets_405(owner, member, outsider, operator, node):
    for user in (owner, member, outsider):
        client = client_for(user)
        for name in CHANGES:
            assert client.post(reverse(name, args=[node.pk])).status_code == 404, name
        assert client.get(reverse("node_outages")).status_code == 404
    operator_client = client_for(operator)
    for name in CHANGES:
        assert operator_client.get(reverse(name, args=[node.pk])).status_code == 405, name
    assert operator_client.post(reverse("node_outages")).status_code == 405
    assert not Operation.objects.exists()


def test_the_nodes_page_offers_what_each_node_allows(operator, node):
    drained = Node.objects.create(
        swarm_id="n3", hostname="farm-node-3", status="ready", availability="drain"
    )
    body = client_for(operator).get(reverse("node_list")).content.decode()

    assert reverse("node_drain", args=[node.pk]) in body
    assert reverse("node_activate", args=[node.pk]) not in body
    assert reverse("node_remove", args=[node.pk]) not in body
    assert reverse("node_activate", args=[drained.pk]) in body
    assert reverse("node_remove", args=[drained.pk]) in body
    assert 'data-testid="remove-farm-node-3"' in body and 'name="confirm_hostname"' in body
    assert reverse("node_outages") in body


def test_the_outages_list_says_where_each_site_went_and_for_how_long(operator, tenant, node):
    site = Site.objects.create(tenant=tenant, domain="shop.acme.test", status="active")
    SiteOutage.objects.create(
        site=site,
        node=node,
        cause="node_down",
        moved_to="farm-node-3",
        started_at=timezone.now() - timedelta(minutes=2),
        unreachable_s=2.14,
        rto_s=21.46,
    )
    client = client_for(operator)
    page = client.get(reverse("node_outages")).content.decode()
    partial = client.get(reverse("node_outages"), headers={"HX-Request": "true"})

    assert f'data-outage="wp-{site.pk}"' in page
    assert "Node down" in page and "farm-node-2" in page and "farm-node-3" in page
    assert "2.1 s" in page and "21.5 s" in page
    assert "<h1>" not in partial.content.decode() and "21.5 s" in partial.content.decode()
