"""The local single-node farm, for tests that need the real Swarm.

Tests share one farm (ports 80 and 13306 exist once per machine); ``ensure_farm``
is cheap when the farm is already up (farm_up changes nothing then).
"""

from __future__ import annotations

import time

import pytest

from nodes.bootstrap import Report, farm_up
from nodes.images import image_for
from nodes.swarm import client, engine_status

_last_up: Report | None = None


def require_engine() -> None:
    available, why = engine_status()
    if not available:
        try:
            client().ping()
        except Exception:
            pytest.fail(f"These tests need the local Docker Engine: {why}")


def ensure_farm() -> Report:
    global _last_up
    require_engine()
    started = time.monotonic()
    _last_up = farm_up(progress=lambda m: None)
    _last_up.timings.setdefault("ensure", time.monotonic() - started)
    return _last_up


def gateway_address() -> str:
    """Where a container on an overlay network reaches the host's published ports."""
    net = client().networks.get("docker_gwbridge")
    return str(net.attrs["IPAM"]["Config"][0]["Gateway"])


# What tenant PHP can do: plain HTTP requests, from a container of the wordpress image.
# Arguments come in threes (method, URL, body or "-"); one line out per request:
# "<method> <url> <status>", the status "none" when nothing answered.
_PHP_REQUESTS = r"""
$args = array_slice($argv, 1);
for ($i = 0; $i + 2 < count($args); $i += 3) {
    [$method, $url, $body] = [$args[$i], $args[$i + 1], $args[$i + 2]];
    $context = stream_context_create(["http" => [
        "method" => $method,
        "header" => "Content-Type: application/json\r\n",
        "content" => $body === "-" ? "" : $body,
        "ignore_errors" => true,
        "timeout" => 5,
    ]]);
    $http_response_header = [];
    @file_get_contents($url, false, $context);
    $status = $http_response_header ? explode(" ", $http_response_header[0])[1] : "none";
    echo "$method $url $status\n";
}
"""


def http_statuses_from(network: str, requests: list[tuple[str, str, str]]) -> dict[str, str]:
    """Send (method, url, body) requests from a throwaway PHP container on ``network``
    (an attachable overlay); returns "<method> <url>" -> HTTP status ("none": no answer)."""
    argv: list[str] = []
    for method, url, body in requests:
        argv += [method, url, body or "-"]
    output = client().containers.run(
        image_for("wordpress"),
        ["-r", _PHP_REQUESTS, "--", *argv],
        entrypoint=["php"],
        network=network,
        remove=True,
        stdout=True,
        stderr=True,
    )
    statuses = {}
    for line in output.decode().splitlines():
        request, _, status = line.rpartition(" ")  # URLs here carry no spaces
        statuses[request] = status
    return statuses
