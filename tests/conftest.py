"""Shared fixtures: the four people every view test needs, and test operation kinds."""

from __future__ import annotations

import pytest
from django.test import Client

import tests.support.kinds  # noqa: F401  (registers the test operation kinds)
from farm.models import Membership, Tenant, User
from nodes.models import Node

# ``cleanup``: the Docker tests' list of sites to remove afterwards.
pytest_plugins = ["tests.support.sites"]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def tenant(db) -> Tenant:
    return Tenant.objects.create(name="Acme", slug="acme", site_quota=3)


@pytest.fixture
def other_tenant(db) -> Tenant:
    return Tenant.objects.create(name="Globex", slug="globex", site_quota=3)


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_user("ops@farm.test", PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def owner(tenant) -> User:
    user = User.objects.create_user("owner@acme.test", PASSWORD)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def member(tenant) -> User:
    user = User.objects.create_user("member@acme.test", PASSWORD)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def outsider(other_tenant) -> User:
    user = User.objects.create_user("owner@globex.test", PASSWORD)
    Membership.objects.create(user=user, tenant=other_tenant, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def worker_node(db) -> Node:
    """One ready worker with room: creating a site (or a restore's preview) checks capacity."""
    return Node.objects.create(
        swarm_id="node-1",
        hostname="worker-1",
        role="manager",
        status="ready",
        availability="active",
        memory_bytes=16 * 1024**3,
        cpus=8,
        farm_roles=["edge", "worker", "db"],
    )


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
