"""The one error the image builder raises."""

from __future__ import annotations

from farm.errors import FarmError


class ImageBuildError(FarmError):
    """Building a farm image failed.

    ``message`` is meant for a person (an operator or a CI log); ``retryable``
    says whether running the build again can help (a mirror or Docker Engine
    hiccup) or not (a broken recipe, a missing tool, not running as root).
    """
