"""The node inventory (operators only: nodes are shared by every tenant)."""

from __future__ import annotations

from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from farm.decorators import operator_required
from farm.http import HtmxHttpRequest
from nodes.models import Node
from nodes.quorum import quorum


@operator_required
@require_GET
def node_list(request: HtmxHttpRequest) -> HttpResponse:
    nodes = list(Node.objects.all())
    template = "nodes/node_list.html#rows" if request.htmx else "nodes/node_list.html"
    return TemplateResponse(request, template, {"nodes": nodes, "quorum": quorum(nodes)})
