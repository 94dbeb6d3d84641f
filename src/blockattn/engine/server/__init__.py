"""The OpenAI-compatible server: `create_app(service)` (FastAPI) and `serve(...)` (uvicorn on a bound socket)."""

from __future__ import annotations

import socket

from blockattn.engine.server.app import create_app
from blockattn.errors import UserError

__all__ = ["bind", "create_app", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), or a UserError saying why not."""
    if not 0 <= port <= 65535:
        raise UserError(f"port {port} is outside 0..65535")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(app, sock: socket.socket, log_level: str = "info") -> None:
    """Run uvicorn on an already bound socket until interrupted."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
