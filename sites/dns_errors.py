"""Cloudflare's errors, as the farm reports them: one DnsError with Cloudflare's own
words and codes, and whether trying again can help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cloudflare

from farm.errors import FarmError

# Cloudflare error codes that mean "these credentials are wrong or not allowed",
# whatever HTTP status they come with (a malformed token is a 400, not a 401).
AUTH_ERROR_CODES = frozenset({6003, 6111, 9106, 9109, 10000, 10001})


class DnsError(FarmError):
    """Cloudflare refused or could not be reached; ``retryable`` says if waiting helps."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        error_codes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status_code = status_code
        self.error_codes = error_codes


class DnsNameTaken(DnsError):
    """The name has DNS records the farm did not create (or made for another site
    that still holds it): the farm never overwrites or deletes them. Not retryable:
    someone has to remove those records, or the site needs another name."""

    def __init__(self, domain: str, records: tuple[str, ...]) -> None:
        listed = ", ".join(records)
        super().__init__(
            f"{domain} already has DNS records the farm did not create for this site "
            f"({listed}). The farm never overwrites or deletes them: remove them in "
            "Cloudflare first, or choose another name.",
            retryable=False,
        )
        self.domain = domain
        self.records = records


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn whatever the SDK raises into a DnsError that says what was being done."""
    try:
        yield
    except cloudflare.APIStatusError as exc:
        raise _status_error(exc, doing) from exc
    except cloudflare.APITimeoutError as exc:
        raise DnsError(
            f"Cloudflare did not answer in time while trying to {doing}.", retryable=True
        ) from exc
    except cloudflare.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise DnsError(f"Could not reach Cloudflare to {doing}: {cause}.", retryable=True) from exc
    except cloudflare.CloudflareError as exc:
        # Malformed answers (APIResponseValidationError) and anything else the
        # SDK invents: not something waiting fixes.
        raise DnsError(f"Cloudflare's answer could not be used to {doing}: {exc}.") from exc


def _status_error(exc: cloudflare.APIStatusError, doing: str) -> DnsError:
    status = exc.status_code
    errors = _error_entries(exc.body)
    codes = tuple(code for code, _ in errors)
    details = "; ".join(f"{text} (code {code})" for code, text in errors) or exc.message
    if status in (401, 403) or AUTH_ERROR_CODES.intersection(codes):
        message = (
            f"Cloudflare authentication failed while trying to {doing}: {details}. "
            "Check CLOUDFLARE_API_TOKEN and that the token may edit DNS in the farm's zones."
        )
        return DnsError(message, retryable=False, status_code=status, error_codes=codes)
    # Same statuses the SDK itself retries: timeouts, lock conflicts, rate limits, 5xx.
    retryable = status in (408, 409, 429) or status >= 500
    if status == 429:
        message = (
            f"Cloudflare is rate-limiting the farm's API token, so it would not {doing}: "
            f"{details}. Try again later."
        )
    elif status >= 500:
        message = f"Cloudflare failed while trying to {doing}: {details} (HTTP {status})."
    else:
        message = f"Cloudflare refused to {doing}: {details} (HTTP {status})."
    return DnsError(message, retryable=retryable, status_code=status, error_codes=codes)


def _error_entries(body: object) -> list[tuple[int, str]]:
    """(code, message) for each of Cloudflare's ``errors`` and their ``error_chain``."""
    if not isinstance(body, dict):
        return []
    entries: list[tuple[int, str]] = []
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        entries.append((int(error.get("code") or 0), str(error.get("message") or "")))
        for link in error.get("error_chain") or []:
            if isinstance(link, dict):
                entries.append((int(link.get("code") or 0), str(link.get("message") or "")))
    return entries
