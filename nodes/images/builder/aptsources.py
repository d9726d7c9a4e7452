"""The host's apt sources: which Debian mirror and suite the image builds use.

Read at build time from /etc/apt (deb822 ``*.sources`` and one-line
``*.list``); ``FARM_DEBIAN_MIRROR``, ``FARM_DEBIAN_SECURITY_MIRROR`` and
``FARM_DEBIAN_SUITE`` override them. No mirror's name is written in this
repository.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodes.images.builder.errors import ImageBuildError
from nodes.images.builder.recipes import SUPPORTED_SUITES

DEBIAN_CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]


def read_host_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The host's enabled ``deb`` entries, in the order apt reads them."""
    found: list[AptSource] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found.extend(_parse_one_line(path.read_text(errors="replace")))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        found.extend(_parse_deb822(path.read_text(errors="replace")))
    return found


def _parse_one_line(text: str) -> Iterator[AptSource]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        words = line.split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options, e.g. [signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = ["deb", *words[1:]]
        if len(words) >= 4:
            yield AptSource(words[1].rstrip("/"), words[2], tuple(words[3:]))


def _parse_deb822(text: str) -> Iterator[AptSource]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield AptSource(uri.rstrip("/"), suite, components)


def host_suite(sources: Sequence[AptSource]) -> str:
    """FARM_DEBIAN_SUITE, else the host's Debian release, else bookworm."""
    override = os.environ.get("FARM_DEBIAN_SUITE", "").strip()
    if override:
        return override
    for source in sources:
        if source.suite in DEBIAN_CODENAMES:
            return source.suite
    return SUPPORTED_SUITES[0]


def build_sources(suite: str, host: Sequence[AptSource]) -> list[AptSource]:
    """The sources the chroot uses: ``suite``, ``suite-updates``, ``suite-security``."""
    if suite not in SUPPORTED_SUITES:
        raise ImageBuildError(
            f"the image recipes are written for {', '.join(SUPPORTED_SUITES)}, "
            f"not {suite!r}; set FARM_DEBIAN_SUITE={SUPPORTED_SUITES[0]}"
        )

    def host_uri(wanted: str) -> str | None:
        for source in host:
            if source.suite == wanted and "main" in source.components:
                return source.uri
        return None

    mirror = os.environ.get("FARM_DEBIAN_MIRROR", "").strip().rstrip("/") or host_uri(suite)
    if not mirror:
        # A Debian mirror carries every release: fall back to the host's own.
        mirror = next((host_uri(s) for s in DEBIAN_CODENAMES if host_uri(s)), None)
    if not mirror:
        raise ImageBuildError(
            "no Debian mirror found in /etc/apt (sources.list or sources.list.d); "
            "set FARM_DEBIAN_MIRROR to the mirror's URL"
        )
    chosen = [AptSource(mirror, suite, ("main",))]
    if host_uri(f"{suite}-updates") or os.environ.get("FARM_DEBIAN_MIRROR"):
        chosen.append(AptSource(mirror, f"{suite}-updates", ("main",)))
    security = os.environ.get("FARM_DEBIAN_SECURITY_MIRROR", "").strip().rstrip("/")
    security = security or host_uri(f"{suite}-security") or ""
    if security:
        chosen.append(AptSource(security, f"{suite}-security", ("main",)))
    return chosen


def deb822(sources: Sequence[AptSource]) -> str:
    return "\n".join(
        f"Types: deb\nURIs: {s.uri}\nSuites: {s.suite}\nComponents: {' '.join(s.components)}\n"
        for s in sources
    )


def host_check_valid_until() -> bool:
    """Follow the host: a snapshot mirror needs Check-Valid-Until off."""
    try:
        out = subprocess.run(
            ["apt-config", "shell", "V", "Acquire::Check-Valid-Until"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return True
    return "false" not in out.lower()
