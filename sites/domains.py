"""Domain names: one normalisation and one validation, used everywhere.

A domain reaches Traefik labels, file names, DNS records and log lines, so it
is validated before anything else sees it: IDNA (UTS #46) to its ASCII form,
lower-cased, trailing dot removed, RFC 1123 labels, at most 253 characters,
no wildcard, not an IP address, and no label that mixes scripts (UTS #39's
"highly restrictive" level: "apple.com" written with a Cyrillic U+0430 for its
first letter is refused). What comes out matches ``DOMAIN_PATTERN``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

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
    for label in labels:
        _refuse_mixed_scripts(label)
    if labels[-1].isdigit():
        raise ValidationError("Enter a domain name, not an IP address.", code="ip")
    if not re.fullmatch(DOMAIN_PATTERN, ascii_form):  # belt and braces
        raise ValidationError("Enter a valid domain name.", code="invalid")
    return ascii_form


# Script names that are more than the first word of their characters' names.
_MULTI_WORD_SCRIPTS = (
    "CANADIAN SYLLABICS",
    "CAUCASIAN ALBANIAN",
    "DIVES AKURU",
    "GUNJALA GONDI",
    "HANIFI ROHINGYA",
    "KAYAH LI",
    "LINEAR A",
    "LINEAR B",
    "MASARAM GONDI",
    "MEETEI MAYEK",
    "NEW TAI LUE",
    "NYIAKENG PUACHUE HMONG",
    "OL CHIKI",
    "OLD HUNGARIAN",
    "OLD ITALIC",
    "OLD PERSIAN",
    "OLD TURKIC",
    "PAHAWH HMONG",
    "SORA SOMPENG",
    "SYLOTI NAGRI",
    "TAI LE",
    "TAI THAM",
    "TAI VIET",
    "WARANG CITI",
    "ZANABAZAR SQUARE",
)
# Name prefixes of characters that belong to no script in particular (Unicode's
# Common and Inherited: digits, the hyphen, combining marks, joiners, the kana
# prolonged sound mark), or whose name does not start with their script's name.
_SCRIPTLESS_PREFIXES = (
    "DIGIT ",
    "HYPHEN-MINUS",
    "MIDDLE DOT",
    "COMBINING ",
    "ZERO WIDTH ",
    "MODIFIER LETTER ",
    "KATAKANA-HIRAGANA ",
    "KATAKANA MIDDLE DOT",
)
_SCRIPT_OF_PREFIX = (
    ("CJK ", "Han"),
    ("IDEOGRAPHIC ", "Han"),
    ("HALFWIDTH KATAKANA", "Katakana"),
    ("HALFWIDTH HANGUL", "Hangul"),
    ("FULLWIDTH LATIN", "Latin"),
    ("ARABIC-INDIC ", "Arabic"),
    ("EXTENDED ARABIC-INDIC ", "Arabic"),
)
# UTS #39 "highly restrictive": one script, or one of these East Asian combinations.
ALLOWED_SCRIPT_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),  # Japanese
    frozenset({"Latin", "Han", "Bopomofo"}),  # Chinese
    frozenset({"Latin", "Han", "Hangul"}),  # Korean
)


def char_script(ch: str) -> str | None:
    """The script of one character, from its Unicode name; None for Common/Inherited
    characters (digits, the hyphen, combining marks), which go with any script."""
    if ch.isascii():
        if ch.isalpha():
            return "Latin"
        return None
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "Unknown"
    if name.startswith(_SCRIPTLESS_PREFIXES):
        return None
    for prefix, script in _SCRIPT_OF_PREFIX:
        if name.startswith(prefix):
            return script
    for script_name in _MULTI_WORD_SCRIPTS:
        if name.startswith(script_name + " "):
            return script_name.title()
    return name.split(" ", 1)[0].title()


def label_scripts(label: str) -> frozenset[str]:
    """The scripts a label's characters come from (ignoring digits and the hyphen)."""
    return frozenset(s for s in map(char_script, label) if s is not None)


def _unicode_label(ascii_label: str) -> str:
    if not ascii_label.startswith("xn--"):
        return ascii_label
    try:
        return ascii_label[4:].encode("ascii").decode("punycode")
    except UnicodeError:  # idna.encode has already checked it; be safe anyway
        return ascii_label


def _refuse_mixed_scripts(ascii_label: str) -> None:
    label = _unicode_label(ascii_label)
    scripts = label_scripts(label)
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in ALLOWED_SCRIPT_MIXES):
        return
    names = " and ".join(sorted(scripts)) if len(scripts) == 2 else ", ".join(sorted(scripts))
    raise ValidationError(
        f"“{label}” mixes the {names} scripts in one part of the name, which is how "
        "look-alikes of other names are made. Write each part in one script.",
        code="mixed_script",
    )


def is_local_domain(domain: str) -> bool:
    """``*.localhost`` never goes to public DNS (RFC 6761)."""
    return domain == "localhost" or domain.endswith(".localhost")


def display_domain(domain: str) -> str:
    """The Unicode form for people (xn--bcher-kva.example -> bücher.example)."""
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return domain
