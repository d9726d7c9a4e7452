"""What every site step shares: the site it acts on (the operation's target by default)."""

from __future__ import annotations

from collections.abc import Callable

from farm.operations import Step, StepContext
from sites.models import Site


def site_of(ctx: StepContext) -> Site:
    site: Site = ctx.refresh_target()
    return site


SiteGetter = Callable[[StepContext], Site]


class SiteStep(Step):
    """A step acting on a site: by default the operation's target. Other operations
    (a restore into a preview site) reuse the same steps on another site by passing
    ``site=`` and, to keep step names unique in their kind, ``name=``/``label=``."""

    def __init__(self, *, site: SiteGetter = site_of, name: str = "", label: str = "") -> None:
        self._site = site
        if name:
            self.name = name  # type: ignore[misc]
        if label:
            self.label = label  # type: ignore[misc]

    def site(self, ctx: StepContext) -> Site:
        return self._site(ctx)
