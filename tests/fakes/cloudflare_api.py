"""A local stand-in for the Cloudflare v4 API, so tests can drive the real SDK.

Only the endpoints ``sites/dns.py`` uses are served, under the same ``/client/v4``
prefix as the real API: list zones, and list/create/get/edit/overwrite/delete
DNS records. Answers use Cloudflare's envelope (``success``, ``errors``,
``messages``, ``result``, ``result_info``) and its status codes and error codes
where they are known from real responses: 9106 (no credentials), 6003/6111
(malformed Authorization header), 10000 (authentication error), 7000/7003
(no such route / object), 9005/9006 (bad A/AAAA content), 9021 (bad TTL),
81044 (no such record), 81053/81054 (A/AAAA/CNAME on the same name),
81058 (identical record), 9313 (comment longer than the free plan's 100
characters), 971 (rate limited). The bodies of other errors, notably 5xx, are
plausible rather than copied from the real API.

Record comments behave as the real API's do: stored as sent (an empty one is
none), ``comment_modified_on`` set when it changes and omitted when there is no
comment, kept by PATCH unless sent, dropped by PUT unless sent, and filtered
by ``comment.exact``/``.contains``/``.startswith``/``.endswith`` (case-insensitive)
and ``comment.present``/``comment.absent``.

Tests seed state with ``add_zone``/``add_record``, inject failures with
``fail_next``/``disconnect_next`` and read ``requests`` to see what the SDK sent.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/client/v4"
DEFAULT_TOKEN = "test-token"
ZONES_PER_PAGE = (20, 5, 50)  # default, minimum, maximum, as documented for GET /zones
RECORDS_PER_PAGE = (100, 5, 5_000_000)  # the same for GET /zones/{id}/dns_records
PROXIABLE_TYPES = {"A", "AAAA", "CNAME"}
MAX_COMMENT_LENGTH = 100  # the free plan's; paid plans allow 500
KNOWN_TYPES = {"A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA", "SRV"}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9_-]{1,63})*$")

Json = dict[str, Any]


class ApiError(Exception):
    """An error answer: HTTP status plus Cloudflare's ``errors`` list."""

    def __init__(self, status: int, code: int, message: str, chain: list[Json] | None = None):
        super().__init__(message)
        self.status = status
        self.errors: list[Json] = [{"code": code, "message": message}]
        if chain:
            self.errors[0]["error_chain"] = chain


@dataclass
class Fault:
    """A canned failure for the next matching request(s)."""

    remaining: int
    status: int
    errors: list[Json]
    headers: dict[str, str]
    method: str | None = None
    disconnect: bool = False

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the /client/v4 prefix
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived
    status: int  # what the fake answered (0: connection dropped)


@dataclass
class Answer:
    status: int
    body: Json | None
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return secrets.token_hex(16)  # Cloudflare identifiers are 32 hex characters


def _envelope(result: Any, result_info: Json | None = None) -> Json:
    body: Json = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def _error_body(errors: list[Json]) -> Json:
    return {"success": False, "errors": errors, "messages": [], "result": None}


class FakeCloudflareApi:
    """In-memory zones and records behind the Cloudflare v4 HTTP API."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.base_url = ""  # set by running_fake_cloudflare once the port is known
        self.zones: dict[str, Json] = {}
        self.records: dict[str, dict[str, Json]] = {}  # zone id -> record id -> record
        self.requests: list[LoggedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    # ---- test helpers -------------------------------------------------------

    def add_zone(self, name: str) -> str:
        zone_id = _new_id()
        now = _now()
        with self._lock:
            self.zones[zone_id] = {
                "id": zone_id,
                "name": name.lower(),
                "status": "active",
                "paused": False,
                "type": "full",
                "development_mode": 0,
                "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
                "original_name_servers": None,
                "original_registrar": None,
                "original_dnshost": None,
                "created_on": now,
                "modified_on": now,
                "activated_on": now,
                "meta": {"step": 2, "phishing_detected": False},
                "owner": {"id": None, "type": "user", "email": None},
                "account": {"id": _new_id(), "name": "Farm account"},
                "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
                "plan": {"id": _new_id(), "name": "Free Website", "legacy_id": "free"},
            }
            self.records[zone_id] = {}
        return zone_id

    def zone_id_of(self, name: str) -> str:
        return next(z["id"] for z in self.zones.values() if z["name"] == name.lower())

    def add_record(self, zone: str, **fields: Any) -> Json:
        """Seed a record as if created through the API (same validation)."""
        zone_id = self.zone_id_of(zone)
        with self._lock:
            return self._create_record(zone_id, dict(fields))

    def records_named(self, name: str) -> list[Json]:
        with self._lock:
            return [
                dict(record)
                for zone_records in self.records.values()
                for record in zone_records.values()
                if record["name"] == name.lower()
            ]

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        errors: list[Json] | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (optionally only ``method`` ones) with an error."""
        if errors is None:
            errors = (
                [{"code": 971, "message": "Please wait and consider throttling your request speed"}]
                if status == 429
                else [{"code": 10013, "message": "An unknown error has occurred"}]
            )
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        with self._lock:
            self._faults.append(Fault(count, status, errors, headers, method))

    def disconnect_next(self, count: int = 1) -> None:
        """Close the connection without answering, like a dropped proxy."""
        with self._lock:
            self._faults.append(Fault(count, 0, [], {}, disconnect=True))

    def calls(self, method: str | None = None, path_contains: str = "") -> list[LoggedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and path_contains in r.path
            ]

    # ---- request handling ---------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> Answer | None:
        """Answer one request; None means: drop the connection."""
        parts = urlsplit(target)
        path = parts.path[len(API_PREFIX) :] if parts.path.startswith(API_PREFIX) else parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            answer = self._answer(method, parts.path, path, query, headers, body)
            status = answer.status if answer else 0
            self.requests.append(
                LoggedRequest(method, path, query, body, headers, time.monotonic(), status)
            )
        return answer

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _answer(
        self,
        method: str,
        full_path: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> Answer | None:
        fault = self._take_fault(method)
        if fault is not None:
            if fault.disconnect:
                return None
            return Answer(fault.status, _error_body(fault.errors), dict(fault.headers))
        try:
            self._authenticate(headers)
            if not full_path.startswith(API_PREFIX):
                raise ApiError(400, 7000, "No route for that URI")
            result = self._route(method, path, query, body)
        except ApiError as exc:
            return Answer(exc.status, _error_body(exc.errors))
        return Answer(200, result)

    def _authenticate(self, headers: dict[str, str]) -> None:
        value = headers.get("authorization")
        if value is None:
            raise ApiError(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        scheme, _, token = value.partition(" ")
        if scheme != "Bearer" or not token:
            raise ApiError(
                400,
                6003,
                "Invalid request headers",
                [{"code": 6111, "message": "Invalid format for Authorization header"}],
            )
        if not secrets.compare_digest(token, self.token):
            raise ApiError(401, 10000, "Authentication error")

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Json:
        segments = [s for s in path.split("/") if s]
        if segments == ["zones"]:
            self._allow(method, "GET")
            return self._list_zones(query)
        if len(segments) in (3, 4) and segments[0] == "zones" and segments[2] == "dns_records":
            zone_id = segments[1]
            if zone_id not in self.zones:
                raise ApiError(
                    400,
                    7003,
                    f"Could not route to /zones/{zone_id}/dns_records, "
                    "perhaps your object identifier is invalid?",
                )
            if len(segments) == 3:
                self._allow(method, "GET", "POST")
                if method == "GET":
                    return self._list_records(zone_id, query)
                return _envelope(self._create_record(zone_id, _object(body)))
            return self._one_record(method, zone_id, segments[3], body)
        raise ApiError(400, 7000, "No route for that URI")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, 7001, f"Method {method} not available for that URI.")

    def _one_record(self, method: str, zone_id: str, record_id: str, body: Any) -> Json:
        self._allow(method, "GET", "PATCH", "PUT", "DELETE")
        existing = self.records[zone_id].get(record_id)
        if existing is None:
            raise ApiError(404, 81044, "Record does not exist.")
        if method == "GET":
            return _envelope(dict(existing))
        if method == "DELETE":
            del self.records[zone_id][record_id]
            return _envelope({"id": record_id})
        fields = _object(body)
        if method == "PUT":
            missing = [k for k in ("name", "type", "content") if k not in fields]
            if missing:
                raise ApiError(400, 1004, f"DNS Validation Error: {', '.join(missing)} required")
            merged = fields
        else:
            merged = {**existing, **fields}
        record = self._validated(zone_id, merged, replacing=record_id)
        now = _now()
        record.update(id=record_id, created_on=existing["created_on"], modified_on=now)
        if record["comment"] is not None:
            unchanged = record["comment"] == existing["comment"]
            record["comment_modified_on"] = existing["comment_modified_on"] if unchanged else now
        self.records[zone_id][record_id] = record
        return _envelope(dict(record))

    # ---- zones --------------------------------------------------------------

    def _list_zones(self, query: dict[str, list[str]]) -> Json:
        zones = list(self.zones.values())
        if "name" in query:
            wanted = query["name"][-1].lower()
            zones = [z for z in zones if z["name"] == wanted]
        if "status" in query:
            zones = [z for z in zones if z["status"] == query["status"][-1]]
        return _paginate(zones, query, ZONES_PER_PAGE)

    # ---- records ------------------------------------------------------------

    def _list_records(self, zone_id: str, query: dict[str, list[str]]) -> Json:
        checks = _record_filters(query)
        records = list(self.records[zone_id].values())
        if checks:
            combine = any if query.get("match", ["all"])[-1] == "any" else all
            records = [r for r in records if combine(check(r) for check in checks)]
        return _paginate(records, query, RECORDS_PER_PAGE)

    def _create_record(self, zone_id: str, fields: Json) -> Json:
        record = self._validated(zone_id, fields, replacing=None)
        now = _now()
        record.update(id=_new_id(), created_on=now, modified_on=now)
        if record["comment"] is not None:
            record["comment_modified_on"] = now
        self.records[zone_id][record["id"]] = record
        return dict(record)

    def _validated(self, zone_id: str, fields: Json, *, replacing: str | None) -> Json:
        """The record as Cloudflare would store it, or the error it would answer."""
        zone_name = self.zones[zone_id]["name"]
        rtype = str(fields.get("type", "")).upper()
        if rtype not in KNOWN_TYPES:
            raise ApiError(400, 1004, "DNS Validation Error: unsupported or missing record type")
        name = _absolute_name(str(fields.get("name", "")), zone_name)
        content = _validated_content(rtype, str(fields.get("content", "")))
        proxied = bool(fields.get("proxied", False))
        if proxied and rtype not in PROXIABLE_TYPES:
            raise ApiError(400, 9004, "This record type cannot be proxied.")
        ttl = fields.get("ttl", 1)
        if not isinstance(ttl, int | float) or not (ttl == 1 or 60 <= ttl <= 86400):
            raise ApiError(
                400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for automatic."
            )
        comment = fields.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ApiError(400, 1004, "DNS Validation Error: comment must be a string")
        if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
            raise ApiError(
                400,
                9313,
                f"DNS record comment exceeds the maximum length of {MAX_COMMENT_LENGTH} "
                "characters.",
            )
        self._check_conflicts(zone_id, name, rtype, content, replacing)
        return {
            "name": name,
            "type": rtype,
            "content": content,
            "proxiable": rtype in PROXIABLE_TYPES,
            "proxied": proxied,
            # Proxied records are always served with automatic TTL.
            "ttl": 1 if proxied else int(ttl),
            "settings": fields.get("settings") or {},
            "meta": {},
            "comment": comment or None,
            "tags": list(fields.get("tags") or []),
        }

    def _check_conflicts(
        self, zone_id: str, name: str, rtype: str, content: str, replacing: str | None
    ) -> None:
        for other in self.records[zone_id].values():
            if other["id"] == replacing or other["name"] != name:
                continue
            if other["type"] == rtype and other["content"] == content:
                raise ApiError(400, 81058, "An identical record already exists.")
            if rtype == "CNAME" and other["type"] in PROXIABLE_TYPES:
                raise ApiError(
                    400, 81053, "An A, AAAA, or CNAME record with that host already exists."
                )
            if rtype in ("A", "AAAA") and other["type"] == "CNAME":
                raise ApiError(400, 81054, "A CNAME record with that host already exists.")


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise ApiError(400, 9207, "Request body is invalid.")
    return body


def _absolute_name(name: str, zone_name: str) -> str:
    """Cloudflare accepts "@", relative names and absolute names; it stores absolute ones."""
    name = name.strip().lower().rstrip(".")
    if not name:
        raise ApiError(400, 1004, "DNS Validation Error: name required")
    if name == "@":
        return zone_name
    if name == zone_name or name.endswith("." + zone_name):
        return name
    return f"{name}.{zone_name}"


def _validated_content(rtype: str, content: str) -> str:
    if rtype in ("A", "AAAA"):
        version = 4 if rtype == "A" else 6
        try:
            address = ipaddress.ip_address(content)
        except ValueError:
            address = None
        if address is None or address.version != version:
            code = 9005 if version == 4 else 9006
            raise ApiError(
                400, code, f"Content for {rtype} record must be a valid IPv{version} address."
            )
        return str(address)  # stored in canonical form (IPv6 compressed, lower case)
    if rtype == "CNAME":
        target = content.strip().lower().rstrip(".")
        if not _HOSTNAME.match(target):
            raise ApiError(400, 9007, "Content for CNAME record is invalid.")
        return target
    if not content:
        raise ApiError(400, 1004, "DNS Validation Error: content required")
    return content


def _record_filters(query: dict[str, list[str]]) -> list[Any]:
    """The list filters the SDK can send: ``name``/``name.exact``, ``name.contains`` ..."""
    checks: list[Any] = []

    def text(field_name: str, op: str, wanted: str) -> Any:
        wanted = wanted.lower()
        operations = {
            "exact": lambda v: v == wanted,
            "contains": lambda v: wanted in v,
            "startswith": lambda v: v.startswith(wanted),
            "endswith": lambda v: v.endswith(wanted),
        }
        compare = operations[op]
        return lambda record: (
            record[field_name] is not None and compare(str(record[field_name]).lower())
        )

    for field_name in ("name", "content", "comment"):
        if field_name in query:
            checks.append(text(field_name, "exact", query[field_name][-1]))
        for op in ("exact", "contains", "startswith", "endswith"):
            key = f"{field_name}.{op}"
            if key in query:
                checks.append(text(field_name, op, query[key][-1]))
    if "comment.present" in query:
        checks.append(lambda record: record["comment"] is not None)
    if "comment.absent" in query:
        checks.append(lambda record: record["comment"] is None)
    if "type" in query:
        wanted_type = query["type"][-1].upper()
        checks.append(lambda record: record["type"] == wanted_type)
    if "proxied" in query:
        wanted_proxied = query["proxied"][-1].lower() == "true"
        checks.append(lambda record: record["proxied"] == wanted_proxied)
    return checks


def _paginate(
    items: Sequence[Json], query: dict[str, list[str]], limits: tuple[int, int, int]
) -> Json:
    default, minimum, maximum = limits
    try:
        page = max(1, int(float(query.get("page", ["1"])[-1])))
        per_page = int(float(query.get("per_page", [str(default)])[-1]))
    except ValueError as exc:
        raise ApiError(400, 1004, "Invalid pagination parameters") from exc
    per_page = min(max(per_page, minimum), maximum)
    start = (page - 1) * per_page
    chunk = [dict(item) for item in items[start : start + per_page]]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": math.ceil(len(items) / per_page),
    }
    return _envelope(chunk, info)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from the real API
    # Headers and body go out in two writes; without TCP_NODELAY the client's
    # delayed ACK adds ~40 ms to every request on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        answer = self.server.api.handle(self.command, self.path, headers, raw)
        if answer is None:
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``api.requests`` instead of stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: FakeCloudflareApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


@contextmanager
def running_fake_cloudflare(
    token: str = DEFAULT_TOKEN, zones: Sequence[str] = ("example.com",)
) -> Iterator[FakeCloudflareApi]:
    """Serve a fake API on a free local port; ``api.base_url`` is what the SDK needs."""
    api = FakeCloudflareApi(token)
    for zone in zones:
        api.add_zone(zone)
    server = _Server(api)
    host, port = server.server_address[:2]
    api.base_url = f"http://{host!s}:{port}{API_PREFIX}"
    # A short poll interval makes shutdown() quick: tests start one server each.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fake-cloudflare",
        daemon=True,
    )
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
