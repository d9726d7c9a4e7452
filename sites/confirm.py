"""Typing a site's domain to confirm a change that cannot be taken back (delete,
restore): the rule and its words, written once. The forms that ask for the domain
(``sites.forms.ConfirmDomainForm``) and the services that act on it
(``delete_site``, ``start_restore``) both call ``check_typed_domain``."""

from __future__ import annotations

from farm.errors import FarmError
from sites.models import Site

NOT_CONFIRMED = "That is not this site's domain: type it exactly to confirm."


class DomainNotConfirmed(FarmError):
    """What was typed to confirm is not the site's domain."""

    def __init__(self) -> None:
        super().__init__(NOT_CONFIRMED, retryable=False)


def check_typed_domain(site: Site, typed: str) -> str:
    """``typed``, normalised, when it names ``site`` (its ASCII or its international
    form, in any case, spaces around ignored); DomainNotConfirmed otherwise."""
    normalised = typed.strip().lower()
    if normalised not in (site.domain, site.display_domain.lower()):
        raise DomainNotConfirmed()
    return normalised
