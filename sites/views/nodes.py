"""Drain, activate and remove a node, and the sites' recent outages (operators only).

Nodes are every tenant's, so a tenant is told nothing of them: these answer a tenant
with 404 (the Nodes page itself answers 403: it exists, it is not theirs). Each change
is a POST that starts an operation and shows it; the service refuses what the node's
state does not allow, with its words on the Nodes page."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from farm.errors import FarmError
from farm.http import AuthedRequest
from farm.models import Operation
from nodes.models import Node
from sites import services
from sites.models import SiteOutage

RECENT_OUTAGES = 20


def _node_for_operator(request: AuthedRequest, pk: int) -> Node:
    if not request.user.is_staff:
        raise Http404("No such node.")
    return get_object_or_404(Node, pk=pk)


def _start(request: AuthedRequest, start: Callable[[], Operation], done: str) -> HttpResponse:
    try:
        operation = start()
    except FarmError as exc:
        messages.error(request, exc.message)
        return redirect("node_list")
    messages.success(request, done)
    return redirect("operation_detail", pk=operation.pk)


@login_required
@require_POST
def node_drain(request: AuthedRequest, pk: int) -> HttpResponse:
    node = _node_for_operator(request, pk)
    return _start(
        request,
        lambda: services.drain_node(node=node, actor=request.user, request=request),
        f"Draining {node.hostname}: its tasks move to other nodes.",
    )


@login_required
@require_POST
def node_activate(request: AuthedRequest, pk: int) -> HttpResponse:
    node = _node_for_operator(request, pk)
    return _start(
        request,
        lambda: services.activate_node(node=node, actor=request.user, request=request),
        f"Activating {node.hostname}: Swarm may schedule tasks on it again.",
    )


@login_required
@require_POST
def node_remove(request: AuthedRequest, pk: int) -> HttpResponse:
    node = _node_for_operator(request, pk)
    typed = request.POST.get("confirm_hostname", "")
    return _start(
        request,
        lambda: services.remove_node(
            node=node, actor=request.user, typed_hostname=typed, request=request
        ),
        f"Removing {node.hostname} from the Swarm.",
    )


@login_required
@require_GET
def node_outages(request: AuthedRequest) -> HttpResponse:
    """The latest SiteOutage rows (a partial the Nodes page loads; a page of its own too)."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    outages = SiteOutage.objects.select_related("site", "node")[:RECENT_OUTAGES]
    template = "sites/node_outages.html#table" if request.htmx else "sites/node_outages.html"
    return TemplateResponse(request, template, {"outages": outages})
