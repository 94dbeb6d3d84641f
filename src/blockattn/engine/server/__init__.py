"""The OpenAI-compatible server: `create_app(service)` (FastAPI), `serve(...)` (uvicorn on a bound socket),
and `background(service)` (a live server in a thread, for tests and the load benchmark)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from blockattn.engine.server.app import create_app
from blockattn.engine.server.worker import SWITCH_INTERVAL_S, tune_interpreter
from blockattn.errors import UserError

__all__ = ["SWITCH_INTERVAL_S", "background", "bind", "create_app", "serve", "tune_interpreter"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), or a UserError saying why not.

    TCP_NODELAY is set on it, and Linux hands it on to every accepted connection: with Nagle's algorithm a
    streamed response's small first chunk waited for the previous segment's (delayed) ACK, ~40 ms of TTFT
    over loopback (issue 10)."""
    if not 0 <= port <= 65535:
        raise UserError(f"port {port} is outside 0..65535")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(app, sock: socket.socket, log_level: str = "info") -> None:
    """Run uvicorn on an already bound socket until interrupted."""
    import uvicorn

    tune_interpreter()
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def background(service, host: str = "127.0.0.1", port: int = 0, **app_options) -> Iterator[str]:
    """A live server for `service` in a background thread; yields its base URL, stops it on exit."""
    import uvicorn

    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(service, **app_options), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the background server did not start")
        time.sleep(0.02)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
