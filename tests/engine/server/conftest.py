"""A real uvicorn server on 127.0.0.1 (a free port), in a thread, serving a tiny model."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest


@contextmanager
def running_server(service, **app_options):
    """Yield the base URL of a live server for `service`; shut it down afterwards."""
    import uvicorn

    from blockattn.engine.server import bind, create_app

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(service, **app_options), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def tiny_service(tiny_dir):
    from blockattn.engine.service import Service

    return Service.load(str(tiny_dir), adapter="none", device="cpu")


@pytest.fixture(scope="module")
def server_url(tiny_service):
    with running_server(tiny_service) as url:
        yield url


def client(url, api_key="none"):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=120)
