"""Can this kernel carry Docker's encrypted overlays? Asked inside a node (plan D5).

Docker encrypts an overlay with ESP transport-mode SAs using the AEAD
``rfc4106(gcm(aes))`` (libnetwork ``drivers/overlay/encryption.go``), and drops
clear VXLAN for that network's VNI. A kernel without ESP or GCM
(``# CONFIG_INET_ESP is not set``, ``# CONFIG_CRYPTO_GCM is not set``, as here)
refuses the SA, Docker only warns, and the network carries nothing between nodes.

The probe adds such an SA between two documentation addresses (TEST-NET-1, never
real traffic) in the node's network namespace with ``ip xfrm state add``, deletes
it again, and keeps the kernel's words when it refuses.
"""

from __future__ import annotations

import secrets

import docker
from docker.models.containers import Container

from nodes.local_nodes import LocalNodeError
from nodes.local_nodes.engines import engine_errors, host_engine

AEAD = "rfc4106(gcm(aes))"
ICV_BITS = "64"  # what libnetwork asks for
PROBE_SRC = "192.0.2.1"
PROBE_DST = "192.0.2.2"


def _spi() -> str:
    # SPIs 1-255 are reserved (RFC 4303); libnetwork's are random 32-bit values too.
    return f"0x{secrets.randbelow(0xFFFFFFFF - 0x100) + 0x100:08x}"


def add_argv(spi: str, key_hex: str) -> list[str]:
    """``ip xfrm state add`` of one ESP transport SA as libnetwork programs it.
    The key is 20 bytes: a 16-byte AES key and the 4-byte rfc4106 salt."""
    if len(key_hex) != 40 or any(c not in "0123456789abcdef" for c in key_hex):
        raise ValueError("the probe key is 40 lower-case hex digits")
    return [
        "ip", "xfrm", "state", "add",
        "src", PROBE_SRC, "dst", PROBE_DST,
        "proto", "esp", "spi", spi,
        "mode", "transport",
        "aead", AEAD, f"0x{key_hex}", ICV_BITS,
    ]  # fmt: skip


def delete_argv(spi: str) -> list[str]:
    return [
        "ip", "xfrm", "state", "delete",
        "src", PROBE_SRC, "dst", PROBE_DST,
        "proto", "esp", "spi", spi,
    ]  # fmt: skip


def interpret(exit_code: int | None, output: bytes) -> tuple[bool, str]:
    """(supported, the kernel's words) from what ``ip xfrm state add`` said."""
    words = output.decode(errors="replace").strip()
    if exit_code == 0:
        return True, words
    return False, words or f"ip xfrm state add exited {exit_code} and said nothing"


def ipsec_supported(node: str, *, host: docker.DockerClient | None = None) -> tuple[bool, str]:
    """Whether ``node``'s kernel accepts Docker's ESP SA, and the kernel's words.

    ``(False, "RTNETLINK answers: Function not implemented")`` here (no ESP, no
    GCM). ``(True, "")`` on a kernel that can, with a note appended if the probe's
    SA could not be deleted again (it names no real address, so it is harmless).
    """
    host = host or host_engine()
    spi = _spi()
    with engine_errors(f"Probing IPsec in {node}"):
        try:
            container = host.containers.get(node)
        except docker.errors.NotFound as exc:
            raise LocalNodeError(f"{node} has no engine container to probe IPsec in") from exc
        added_code, added_output = _run(container, add_argv(spi, secrets.token_hex(20)))
        supported, words = interpret(added_code, added_output)
        if supported:
            deleted_code, deleted_output = _run(container, delete_argv(spi))
            if deleted_code != 0:
                said = deleted_output.decode(errors="replace").strip()
                words = (words + f" (the probe SA {spi} stayed: {said})").strip()
    return supported, words


def _run(container: Container, argv: list[str]) -> tuple[int | None, bytes]:
    """exec in the node (its network namespace), stdout and stderr together."""
    result = container.exec_run(argv, stdout=True, stderr=True, stream=False)
    output = result.output if isinstance(result.output, bytes) else b"".join(result.output)
    return result.exit_code, output
