"""Addresses of a parallel search: the chief's, as users write them and as
KerasTuner's gRPC engine and `socket` take them, and the checks around them.

``host:port``, an IPv6 host in brackets (``[::1]:8000``). `socket` takes the
host without brackets; KerasTuner's ``KERASTUNER_ORACLE_IP`` goes into a gRPC
target ``f"{ip}:{port}"``, so an IPv6 host goes there in brackets.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import time

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
#: Seconds a worker waits for the chief to accept connections before it gives up
#: with an error (KerasTuner's own client would wait an hour).
ENV_CHIEF_TIMEOUT = "KBNAS_CHIEF_TIMEOUT"
DEFAULT_CHIEF_TIMEOUT = 30.0


class ChiefUnreachableError(RuntimeError):
    """A worker could not connect to the chief's oracle server."""


def parse_address(address: str, allow_zero: bool = False) -> tuple[str, int]:
    """``"host:port"`` as ``(host, port)``; port 0 (any free port) only if ``allow_zero``.

    An IPv6 address is written in brackets, ``"[::1]:8000"``, and returned
    without them (``("::1", 8000)``), as `socket` takes it.

    Raises:
        ValueError: not of that form.
    """
    text = str(address)
    host, sep, port = text.rpartition(":")
    lowest = 0 if allow_zero else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ValueError(f"expected an address HOST:PORT such as 127.0.0.1:8000 or [::1]:8000, got {address!r}")
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = _unbracketed(host)
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"expected an address HOST:PORT with an IPv6 host in brackets, such as [::1]:8000, "
                         f"got {address!r}")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:8000``): what gRPC and users read."""
    return f"{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _unbracketed(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _bind_address(host: str, port: int) -> tuple[int, tuple]:
    """The socket family and address a server binds for ``host:port``: an IP
    literal as it is, a name as the system resolves it (``ip6-localhost`` is IPv6).

    Raises:
        OSError: the name does not resolve (`socket.gaierror`).
    """
    family, _, _, _, address = socket.getaddrinfo(_unbracketed(host) or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    return family, address


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    family, address = _bind_address(host, 0)
    with socket.socket(family) as s:
        s.bind(address)
        return s.getsockname()[1]


def listen_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on ``host:port`` right now; None if it could.

    With ``SO_REUSEADDR``, as gRPC binds: the connections a killed chief left
    in TIME_WAIT on its port (about a minute) do not hold it, a listener does.
    """
    try:
        family, address = _bind_address(host, port)
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
    except OSError as error:
        return error
    return None


def port_in_use(host: str, port: int) -> bool:
    """Whether ``port`` cannot be bound on ``host`` because something holds it."""
    error = listen_error(host, port)
    return error is not None and error.errno == errno.EADDRINUSE


def wait_for_chief(host: str, port: int, timeout: float | None = None) -> None:
    """Returns once the chief at ``host:port`` accepts TCP connections.

    Args:
        timeout: seconds to keep trying; default ``$KBNAS_CHIEF_TIMEOUT`` or
            `DEFAULT_CHIEF_TIMEOUT`.

    Raises:
        ChiefUnreachableError: nothing accepted a connection in time.
    """
    if timeout is None:
        timeout = float(os.environ.get(ENV_CHIEF_TIMEOUT, DEFAULT_CHIEF_TIMEOUT))
    deadline = time.monotonic() + timeout
    while True:
        error = _connection_error(host, port, timeout=2.0)
        if error is None:
            return
        if time.monotonic() >= deadline:
            raise ChiefUnreachableError(
                f"cannot reach the kbnas/KerasTuner chief at {format_address(host, port)} after {timeout:g} s "
                f"({error}): is the chief running, and is that port open to this machine? "
                f"(set {ENV_CHIEF_TIMEOUT} to wait longer)"
            )
        time.sleep(0.5)


def _connection_error(host: str, port: int, timeout: float) -> OSError | None:
    """None when a server listening on ``host:port`` accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((_connectable(host), port), timeout=timeout):
            return None
    except OSError as error:
        return error


def is_worker_process() -> bool:
    """Whether KerasTuner's distributed-tuning variables make this process a worker
    (KerasTuner treats a tuner id containing "chief" as the chief)."""
    return ENV_ORACLE_IP in os.environ and "chief" not in os.environ.get(ENV_TUNER_ID, "")


def _connectable(host: str) -> str:
    """The address to connect to for a server listening on ``host`` (brackets
    of an IPv6 host dropped: KerasTuner's variable holds gRPC's ``[::1]``)."""
    host = _unbracketed(host)
    if not host:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name
    if address.is_unspecified:  # 0.0.0.0, ::, ::0, 0:0:0:0:0:0:0:0
        return "::1" if address.version == 6 else "127.0.0.1"
    return host
