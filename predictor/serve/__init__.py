"""One patient at a time: a local web page and a JSON API (``python -m predictor serve``).

Needs the ``serve`` extra (FastAPI, uvicorn, Jinja2): ``pip install "ketamine-predictor[serve]"``.
Importing this package imports the web stack; the command line imports it only for ``serve``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from predictor.model import Model
from predictor.serve._app import (
    ACCESS_LOG,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_RECORDS,
    DISCLAIMER,
    LOOPBACK_HOSTS,
    ROUTE_CAVEAT,
    Boundary,
    create_app,
)

__all__ = [
    "ACCESS_LOG",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_RECORDS",
    "DISCLAIMER",
    "LOG_CONFIG",
    "LOOPBACK_HOSTS",
    "ROUTE_CAVEAT",
    "Boundary",
    "create_app",
    "is_loopback",
    "serve",
]

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "predictor.serve": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
"""Logging while serving: uvicorn's own access log is off (it writes the path with its query
string); ``predictor.serve.access`` writes method, route, status and time instead."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): reachable from this machine
    only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    """A listening TCP socket. Its protocol is named (not 0, as ``socket.create_server``
    leaves it) because asyncio turns Nagle's algorithm off only on connections whose protocol
    says TCP; with it on, a response written in two parts waits ~40 ms for the client's
    delayed acknowledgement."""
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def serve(
    model: Model | str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the page and the API until interrupted (Ctrl-C or SIGTERM).

    Parameters
    ----------
    model : Model or path, optional
        A loaded model, or a model directory / ``model.json``; default: the shipped model.
    host : str
        The address to listen on; loopback by default, so that only this machine reaches it.
    port : int
        The port; 0 picks a free one (the address said names it).
    max_body_bytes, max_records : int
        The request limits (413 beyond).
    say : callable
        Where the one line saying where it listens goes.

    Raises
    ------
    OSError
        If the address cannot be listened on (a port in use, an address not on this machine).
    ModelFileError
        If the model cannot be loaded.
    """
    loopback = is_loopback(host)
    app = create_app(
        model,
        max_body_bytes=max_body_bytes,
        max_records=max_records,
        allowed_hosts=LOOPBACK_HOSTS if loopback else None,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = _listen(host, port, family)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    reach = (
        "loopback only: this machine can reach it, no other can"
        if loopback
        else "on the network: other machines can reach it, with no login and no encryption"
    )
    say(
        f"serving the page on http://{shown}:{bound}/ and the API (docs at /docs), {reach}; "
        f"limits {max_body_bytes:,} bytes and {max_records:,} records per request; the access "
        "log has no patient values. Ctrl-C stops it."
    )
    config = uvicorn.Config(
        app,
        log_config=LOG_CONFIG,
        access_log=False,
        server_header=False,
        limit_concurrency=256,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[listener])
