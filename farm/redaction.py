"""What a tenant sees of step logs and errors: the farm's insides taken out.

Step logs and error messages are written for operators: they name host paths
(the site directory, the secrets, the restic repository), the people who acted
(an operator's e-mail address in "retry by ..."), and the Docker Engine's or
Swarm's own words. ``redact_for`` is the one function that turns such text into
what a viewer who is not an operator may see; operators get it unchanged.
Templates apply it through the ``for_viewer`` filter (farm/templatetags).

``mask_swarm_secrets`` is for everyone, operators too: a Swarm join token or
unlock key in a log would let its reader join or unlock the swarm. Step logs
are masked when written and again when shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from farm.models import User
from farm.models.tenancy import tenants_for_user

AN_OPERATOR = "an operator"
ENGINE_ERROR = "The container platform reported an error here; an operator can see its details."

# Words only the Docker Engine, containerd or Swarm write (or the farm when it
# quotes them): a line that carries one is replaced as a whole.
_ENGINE_WORDS = re.compile(
    r"""
    http\+docker:// | docker\.sock | \bdocker\.errors\b | \bAPIError\b
    | \b(?:client|server)\ error\ for\b | \brpc\ error\b | error\ response\ from\ daemon
    | \bdocker\ engine\b | \bdockerd\b | \bDOCKER_HOST\b | \bcontainerd\b | \boci\ runtime\b
    | \bnon-zero\ exit\b | \bsandbox\ join\b | \bvxlan\b | \bstarting\ container\ failed\b
    | \bno\ such\ (?:service|network|container|image|secret|config|node|task|volume)\b
    | \bno\ suitable\ node\b | \binsufficient\ resources\b | \bupdate\ did\ not\ take\b
    | \bswarm\ (?:rolled|paused|refused|rollback)
    """,
    re.IGNORECASE | re.VERBOSE,
)
# Join tokens (SWMTKN-1-<digest>-<secret>) and unlock keys (SWMKEY-1-<key>), any version.
_SWARM_SECRET = re.compile(r"SWM(?:TKN|KEY)-[0-9A-Za-z+/=_-]*")
SWARM_SECRET_MASK = "[swarm secret]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_STAMP = re.compile(r"^\d\d:\d\d:\d\d ")
_PATH_CHAR = r"[^\s'\"`,;:()\[\]<>]"
_PATH_TAIL = _PATH_CHAR + "*"
_FIRST_COMPONENT = "(?:/" + _PATH_CHAR.replace("[^", "[^/", 1) + "+)?"


def mask_swarm_secrets(text: str) -> str:
    """``text`` with every Swarm join token and unlock key replaced by a neutral word."""
    return _SWARM_SECRET.sub(SWARM_SECRET_MASK, text) if "SWM" in text else text


def is_operator(viewer: User | AnonymousUser | None) -> bool:
    return viewer is not None and viewer.is_authenticated and viewer.is_staff


@lru_cache(maxsize=8)
def _path_rules(roots: tuple[tuple[str, str, bool], ...]) -> list[tuple[re.Pattern[str], str]]:
    rules = []
    # Longest first: the sites root lives inside the var dir, which lives inside the checkout.
    for root, label, keep_tail in sorted(roots, key=lambda r: -len(r[0])):
        if keep_tail:
            # <sites root>/<stack>/wp-content/x -> [site files]/wp-content/x
            pattern = re.compile(re.escape(root) + _FIRST_COMPONENT + f"(?P<tail>{_PATH_TAIL})")
            rules.append((pattern, label + r"\g<tail>"))
        else:
            rules.append((re.compile(re.escape(root) + _PATH_TAIL), label))
    return rules


def _roots() -> tuple[tuple[str, str, bool], ...]:
    named = [
        (settings.FARM_SITES_ROOT, "[site files]", True),
        (settings.FARM_SECRETS_DIR, "[farm secret]", False),
        (settings.VAR_DIR, "[farm data]", False),
        (settings.BASE_DIR, "[farm]", False),
    ]
    roots: dict[str, tuple[str, bool]] = {}
    for path, label, keep_tail in named:
        for form in {str(path).rstrip("/"), os.path.realpath(path).rstrip("/")}:
            if len(form) > 1:  # never "/" itself
                roots.setdefault(form, (label, keep_tail))
    return tuple((root, label, keep) for root, (label, keep) in roots.items())


def visible_emails(viewer: User) -> frozenset[str]:
    """The addresses a tenant may read: their own and their tenants' other members'
    (operators, who act on every tenant, stay "an operator")."""
    cached: frozenset[str] | None = getattr(viewer, "_farm_visible_emails", None)
    if cached is None:
        emails: Iterable[str] = User.objects.filter(
            memberships__tenant__in=tenants_for_user(viewer), is_staff=False
        ).values_list("email", flat=True)
        cached = frozenset(e.lower() for e in [*emails, viewer.email] if e)
        viewer._farm_visible_emails = cached  # type: ignore[attr-defined]
    return cached


def _redact_line(line: str, emails: frozenset[str]) -> str:
    if _ENGINE_WORDS.search(line):
        stamp = _STAMP.match(line)
        ending = "\n" if line.endswith("\n") else ""
        return (stamp.group(0) if stamp else "") + ENGINE_ERROR + ending
    for pattern, replacement in _path_rules(_roots()):
        line = pattern.sub(replacement, line)
    return _EMAIL.sub(lambda m: m.group(0) if m.group(0).lower() in emails else AN_OPERATOR, line)


def _emails_to_check(viewer: User | AnonymousUser | None, text: str) -> frozenset[str]:
    """The addresses ``viewer`` may read in ``text``. Most logs and errors name nobody
    or only the viewer: then no query for their fellow members is needed."""
    if not isinstance(viewer, User):
        return frozenset()
    own = viewer.email.lower()
    named = {m.group(0).lower() for m in _EMAIL.finditer(text)}
    if named <= {own}:
        return frozenset({own} if own else ())
    return visible_emails(viewer)


def redact_for(viewer: User | AnonymousUser | None, text: str) -> str:
    """``text`` (a step log, an error) as ``viewer`` may see it.

    Operators see everything. Anyone else sees host paths under the checkout,
    the var dir, the sites root and the secrets dir as a neutral name, e-mail
    addresses other than their own (and their fellow members') as "an operator",
    and a line with the Docker Engine's or Swarm's words as one neutral sentence.
    """
    if not text:
        return text
    text = mask_swarm_secrets(text)
    if is_operator(viewer):
        return text
    emails = _emails_to_check(viewer, text)
    return "".join(_redact_line(line, emails) for line in text.splitlines(keepends=True))


def person_for(viewer: User | AnonymousUser | None, person: User | None) -> str:
    """How ``person`` (who started an operation) is named to ``viewer``."""
    if person is None:
        return "system"
    if is_operator(viewer) or person == viewer:
        return person.email
    if person.is_staff:  # operators are never among a tenant's visible members
        return AN_OPERATOR
    if isinstance(viewer, User) and person.email.lower() in visible_emails(viewer):
        return person.email
    return AN_OPERATOR
