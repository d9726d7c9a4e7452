"""How a page with a live region answers: the whole page, or, when htmx polls the
region, only its ``live`` partial; once the work is finished the partial comes with
HTTP 286, which tells htmx to swap this last state in and stop polling."""

from __future__ import annotations

from typing import Any

from django.template.response import TemplateResponse
from django_htmx.http import HttpResponseStopPolling

from farm.http import HtmxHttpRequest

LIVE_PARTIAL = "live"


def render_live(
    request: HtmxHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    finished: bool,
    region: str,
) -> TemplateResponse:
    """``template`` for a page whose ``{% partialdef live %}`` is the element with the id
    ``region`` (what htmx sends as HX-Target when that element polls)."""
    if not (request.htmx and request.htmx.target == region):
        return TemplateResponse(request, template, context)
    response = TemplateResponse(request, f"{template}#{LIVE_PARTIAL}", context)
    if finished:
        response.status_code = HttpResponseStopPolling.status_code
    return response
