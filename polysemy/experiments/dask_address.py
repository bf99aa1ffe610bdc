"""Check a Dask scheduler address quickly, before a sweep creates its store or starts a client.

``distributed.Client(address)`` waits for its whole connect timeout on a malformed address (66 s for
``--dask garbage``) and prints progress lines while doing so. Here the address is parsed first
(``[tcp|tls|ws|wss]://HOST:PORT``, the scheme defaulting to tcp as Dask does) and then one TCP connection
is opened to HOST:PORT with a short timeout: a malformed, unresolvable or closed address is a one-line
ConfigError within ``timeout`` seconds (default 5, well under the 10 s the issue asks for). On plain
``tcp://`` the probe also reads the first 8 bytes: a Dask scheduler greets every new connection with its
handshake, whose first 8 bytes are the message length (little-endian uint64, a few dozen bytes; checked
against distributed 2026.8). Silence, or a length no handshake has, means something else is listening.
``inproc://`` addresses (a scheduler in this very process, as ``LocalCluster(processes=False)`` makes)
are accepted as they are: there is nothing to probe.
"""

from __future__ import annotations

import socket
import struct
from urllib.parse import urlsplit

from ..errors import ConfigError

SCHEMES = ("tcp", "tls", "ws", "wss")
CHECK_TIMEOUT_S = 5.0
MAX_HANDSHAKE_BYTES = 1 << 20


def parse_dask_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address; ConfigError naming --dask when malformed."""
    text = str(address or "").strip()
    example = "tcp://HOST:8786"
    if "://" not in text:
        text = "tcp://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in SCHEMES or not parts.hostname or port is None \
            or parts.path not in ("", "/"):
        raise ConfigError(f"--dask must be a scheduler address like {example} (schemes: {', '.join(SCHEMES)}), "
                          f"got {address!r}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--dask port must be in [1, 65535], got {port} in {address!r}")
    return parts.scheme, parts.hostname, port


def check_dask_address(address: str, timeout: float = CHECK_TIMEOUT_S) -> str:
    """Parse ``address`` and open (then close) one TCP connection to it; returns the address."""
    if str(address).startswith("inproc://"):
        return address
    scheme, host, port = parse_dask_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if scheme == "tcp":
                greeting = _read_exactly(sock, 8)
                length = struct.unpack("<Q", greeting)[0] if len(greeting) == 8 else -1
                if not 0 < length <= MAX_HANDSHAKE_BYTES:
                    raise ConfigError(f"--dask address {address!r} answers, but not like a Dask scheduler "
                                      f"(no handshake within {timeout:g} s)")
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(f"--dask scheduler {address!r} is not reachable within {timeout:g} s ({reason})") from None
    return address


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    try:
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data
