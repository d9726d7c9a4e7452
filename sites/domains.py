"""Domain names: one normalisation and one validation, used everywhere.

A domain reaches Traefik labels, file names, DNS records and log lines, so it
is validated before anything else sees it: IDNA (UTS #46) to its ASCII form,
lower-cased, trailing dot removed, RFC 1123 labels, at most 253 characters,
no wildcard, not an IP address. What comes out matches ``DOMAIN_PATTERN``.
"""

from __future__ import annotations

import ipaddress
import re

import idna
from django.core.exceptions import ValidationError

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# The database check constraint uses the same shape (lower-case ASCII only).
DOMAIN_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"


def normalise_domain(raw: str) -> str:
    """Return the canonical ASCII form of ``raw`` or raise ValidationError."""
    if not isinstance(raw, str):
        raise ValidationError("Enter a domain name.", code="invalid")
    value = raw.strip()
    if not value:
        raise ValidationError("Enter a domain name.", code="required")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValidationError(
            "A domain name cannot contain spaces or control characters.", code="invalid"
        )
    if "*" in value:
        raise ValidationError(
            "Wildcard domains are not supported; enter one host name.", code="wildcard"
        )
    if value.endswith("."):
        value = value[:-1]
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValidationError("Enter a domain name, not an IP address.", code="ip")
    if ".." in value or value.startswith("."):
        raise ValidationError("A domain name cannot have empty labels (“..”).", code="invalid")
    try:
        ascii_form = idna.encode(value, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValidationError(
            f"“{raw[:80]}” is not a valid domain name ({exc}).", code="invalid"
        ) from exc
    ascii_form = ascii_form.lower()
    if len(ascii_form) > MAX_DOMAIN_LENGTH:
        raise ValidationError(
            f"A domain name can be at most {MAX_DOMAIN_LENGTH} characters "
            f"(this one is {len(ascii_form)}).",
            code="too_long",
        )
    labels = ascii_form.split(".")
    if len(labels) < 2:
        raise ValidationError(
            "Enter a full domain name, such as shop.example.com.", code="single_label"
        )
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            raise ValidationError(
                f"Each part of a domain name can be at most {MAX_LABEL_LENGTH} characters.",
                code="label_too_long",
            )
        if not _LABEL.match(label):
            raise ValidationError(
                f"“{label[:63]}” is not a valid part of a domain name: use letters, digits "
                "and hyphens, not starting or ending with a hyphen.",
                code="invalid_label",
            )
    if labels[-1].isdigit():
        raise ValidationError("Enter a domain name, not an IP address.", code="ip")
    if not re.fullmatch(DOMAIN_PATTERN, ascii_form):  # belt and braces
        raise ValidationError("Enter a valid domain name.", code="invalid")
    return ascii_form


def is_local_domain(domain: str) -> bool:
    """``*.localhost`` never goes to public DNS (RFC 6761)."""
    return domain == "localhost" or domain.endswith(".localhost")


def display_domain(domain: str) -> str:
    """The Unicode form for people (xn--bcher-kva.example -> bücher.example)."""
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return domain
