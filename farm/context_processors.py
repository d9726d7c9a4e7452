from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def farm(request: HttpRequest) -> dict[str, Any]:
    return {"farm_env": settings.FARM_ENV}
