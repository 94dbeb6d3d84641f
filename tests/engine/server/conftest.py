"""A real uvicorn server on 127.0.0.1 (a free port), in a thread, serving a tiny model: every API test runs against
the model in the server's process and against the model in an engine process of its own (`--engine-process`)."""

from __future__ import annotations

import pytest

from blockattn.engine.server import background


@pytest.fixture(scope="session")
def tiny_service(tiny_dir):
    from blockattn.engine.service import Service

    return Service.load(str(tiny_dir), adapter="none", device="cpu")


@pytest.fixture(scope="module", params=["in-process", "engine-process"])
def server_url(request, tiny_service, tiny_dir):
    if request.param == "in-process":
        with background(tiny_service) as url:
            yield url
        return
    from blockattn.engine.server.engineproc import EngineProcess

    engine = EngineProcess(dict(model=str(tiny_dir), adapter="none", device="cpu"))
    try:
        with background(engine.front_service(), engine=engine) as url:
            yield url
    finally:
        engine.close()


def client(url, api_key="none"):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=120)
