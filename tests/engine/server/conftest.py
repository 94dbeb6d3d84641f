"""A real uvicorn server on 127.0.0.1 (a free port), in a thread, serving a tiny model."""

from __future__ import annotations

import pytest

from blockattn.engine.server import background


@pytest.fixture(scope="session")
def tiny_service(tiny_dir):
    from blockattn.engine.service import Service

    return Service.load(str(tiny_dir), adapter="none", device="cpu")


@pytest.fixture(scope="module")
def server_url(tiny_service):
    with background(tiny_service) as url:
        yield url


def client(url, api_key="none"):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=120)
