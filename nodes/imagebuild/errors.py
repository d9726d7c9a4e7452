"""The one error the image builder raises."""

from __future__ import annotations


class ImageBuildError(Exception):
    """Building a farm image failed.

    ``message`` is meant for a person (an operator or a CI log); ``retryable``
    says whether running the build again can help (a mirror or Docker Engine
    hiccup) or not (a broken recipe, a missing tool, not running as root).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message
