"""The OpenAI-compatible server, driven over HTTP with the official `openai` client (and raw httpx for
requests the client would refuse to build)."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from blockattn.engine.server import background

from .conftest import client

DOCS = [{"text": "The Bell Rock Lighthouse was designed by Robert Stevenson."},
        {"text": "Honey bees tell each other where food is by dancing."}]
ASK = [{"role": "user", "content": "Who designed the lighthouse?"}]


def metric(url, name):
    """The value of an unlabelled metric."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class TestEndpoints:
    def test_models_health_metrics(self, server_url, tiny_service):
        ids = [m.id for m in client(server_url).models.list().data]
        assert ids == [tiny_service.model_name, "default"]
        assert client(server_url).models.retrieve("default").id == "default"
        health = httpx.get(f"{server_url}/health").json()
        assert health["status"] == "ok" and health["queue_depth"] == 0
        text = httpx.get(f"{server_url}/metrics").text
        for name in ("blockattn_cache_hits_total", "blockattn_cache_misses_total", "blockattn_cache_bytes",
                     "blockattn_requests_total", "blockattn_ttft_seconds_bucket"):
            assert name in text, name

    def test_plain_chat_is_full_attention(self, server_url, tiny_service):
        reply = client(server_url).chat.completions.create(model="default", messages=ASK, max_tokens=6,
                                                           temperature=0)
        assert reply.object == "chat.completion" and reply.choices[0].finish_reason in ("stop", "length")
        extra = reply.usage.model_extra["blockattn"]
        assert extra["cached_blocks"] == extra["computed_blocks"] == 0 and extra["ttft_ms"] > 0
        direct = tiny_service.generate(tiny_service.chat_prompt(ASK), max_tokens=6).text()
        assert reply.choices[0].message.content == direct

    def test_documents_are_cached_blocks(self, server_url):
        docs = [{"text": "A fresh document about granite quarries."}, *DOCS]
        ask = lambda: client(server_url).chat.completions.create(  # noqa: E731
            model="default", messages=ASK, max_tokens=6, temperature=0, extra_body={"documents": docs})
        first, second = ask(), ask()
        assert first.usage.model_extra["blockattn"]["computed_blocks"] >= 1  # at least the fresh document
        usage = second.usage.model_extra["blockattn"]
        assert (usage["cached_blocks"], usage["computed_blocks"]) == (4, 0)  # prefix + 3 documents
        assert set(usage) == {"cached_blocks", "computed_blocks", "ttft_ms", "queue_ms", "timings_ms"}
        assert first.choices[0].message.content == second.choices[0].message.content

    def test_auto_segment_caches_each_block_of_a_document(self, server_url):
        from pathlib import Path

        text = (Path(__file__).parents[2] / "segment" / "fixtures" / "topic_shifts.txt").read_text()
        reply = client(server_url).chat.completions.create(
            model="default", messages=ASK, max_tokens=4, temperature=0,
            extra_body={"documents": [{"text": text}], "segment": "auto"})
        usage = reply.usage.model_extra["blockattn"]
        assert usage["cached_blocks"] + usage["computed_blocks"] > 2  # prefix + several blocks of one document

    def test_streaming_equals_non_streaming(self, server_url):
        kwargs = dict(model="default", messages=ASK, max_tokens=8, temperature=0, extra_body={"documents": DOCS})
        whole = client(server_url).chat.completions.create(**kwargs)
        chunks = list(client(server_url).chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                                 **kwargs))
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
        assert final.choices[0].finish_reason == whole.choices[0].finish_reason
        assert final.usage.model_extra["blockattn"]["cached_blocks"] == 3
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    def test_completions_plain_documents_and_stream(self, server_url):
        c = client(server_url)
        plain = c.completions.create(model="default", prompt="Once upon a time", max_tokens=5, temperature=0)
        assert plain.object == "text_completion" and plain.usage.completion_tokens <= 5
        streamed = "".join(ch.choices[0].text for ch in c.completions.create(
            model="default", prompt="Once upon a time", max_tokens=5, temperature=0, stream=True) if ch.choices)
        assert streamed == plain.choices[0].text
        docs = c.completions.create(model="default", prompt=[[1, 2, 3]], max_tokens=3, temperature=0,
                                    extra_body={"documents": DOCS})
        assert docs.usage.model_extra["blockattn"]["cached_blocks"] + \
            docs.usage.model_extra["blockattn"]["computed_blocks"] == 2

    def test_concurrent_requests_share_blocks(self, server_url):
        docs = [{"text": f"Shared document number {i} about lighthouses and bees."} for i in range(3)]
        misses_before = metric(server_url, "blockattn_cache_misses_total")

        def ask(i):
            return client(server_url).chat.completions.create(
                model="default", messages=[{"role": "user", "content": f"question {i}?"}], max_tokens=4,
                temperature=0, extra_body={"documents": docs[i % 3:] + docs[:i % 3]})

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(ask, range(16)))
        computed = sum(r.usage.model_extra["blockattn"]["computed_blocks"] for r in replies)
        assert computed <= 4  # the 3 documents (+ the prefix block, unless an earlier test cached it)
        assert metric(server_url, "blockattn_cache_misses_total") - misses_before == computed
        for reply in replies:
            usage = reply.usage.model_extra["blockattn"]
            assert usage["cached_blocks"] + usage["computed_blocks"] == 4

    def test_a_client_that_leaves_mid_stream_stops_the_generation(self, server_url):
        before = metric(server_url, "blockattn_generated_tokens_total")
        body = {"model": "default", "prompt": "x", "max_tokens": 1500, "temperature": 0, "stream": True,
                "stop": None}
        with httpx.stream("POST", f"{server_url}/v1/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"text": ""' not in line:
                    break
        reply = client(server_url).completions.create(model="default", prompt="y", max_tokens=2)
        assert reply.usage.completion_tokens <= 2
        assert metric(server_url, "blockattn_generated_tokens_total") - before < 1500


CHAT, COMPLETE = "/v1/chat/completions", "/v1/completions"


def chat(**fields):
    return {"model": "default", "messages": ASK, **fields}


def complete(**fields):
    return {"model": "default", **fields}


BAD = [
    (CHAT, b"{not json", 400, None),
    (CHAT, b"", 400, None),
    (CHAT, b"[1, 2]", 400, None),
    (CHAT, chat(messages=[]), 400, "messages"),
    (CHAT, {"model": "default"}, 400, "messages"),
    (CHAT, {"messages": ASK}, 400, "model"),
    (CHAT, chat(model="gpt-9"), 404, "model"),
    (CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "messages.0.content"),
    (CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role"),
    (CHAT, chat(messages=[{"role": "assistant", "content": "x"}]), 400, "messages"),
    (CHAT, chat(max_tokens=0), 400, "max_tokens"),
    (CHAT, chat(max_tokens="8"), 400, "max_tokens"),
    (CHAT, chat(max_tokens=10**6), 400, None),
    (CHAT, chat(temperature="hot"), 400, "temperature"),
    (CHAT, chat(temperature=3), 400, "temperature"),
    (CHAT, chat(top_p=0), 400, "top_p"),
    (CHAT, chat(stream="yes"), 400, "stream"),
    (CHAT, chat(n=2), 400, "n"),
    (CHAT, chat(tools=[{"type": "function"}]), 400, "tools"),
    (CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    (CHAT, chat(documents=[{"text": "  "}]), 400, "documents.0.text"),
    (CHAT, chat(documents="doc"), 400, "documents"),
    (CHAT, chat(documents=[{"text": "w " * 3000}]), 400, None),
    (COMPLETE, complete(prompt=""), 400, None),
    (COMPLETE, complete(prompt=[1, 2, 10**9]), 400, None),
    (COMPLETE, complete(prompt=["a", "b"]), 400, "prompt"),
    (COMPLETE, complete(prompt="x", echo=True), 400, "echo"),
    (COMPLETE, b"[" * 5000 + b"]" * 5000, 400, None),  # nested past the parser's recursion (found by fuzzing)
]


@pytest.mark.parametrize("path, body, status, param", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_requests_get_openai_style_4xx(server_url, path, body, status, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server_url}{path}", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param, error


def test_context_too_long_has_the_openai_code(server_url):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server_url).chat.completions.create(model="default", messages=ASK, max_tokens=10**5)
    assert caught.value.code == "context_length_exceeded"


def test_unknown_model_through_the_client(server_url):
    with pytest.raises(openai.NotFoundError):
        client(server_url).chat.completions.create(model="gpt-9", messages=ASK)


def test_unknown_route_method_and_oversized_body(server_url):
    assert httpx.get(f"{server_url}/v1/nothing").json()["error"]["message"] == "no such endpoint"
    assert httpx.get(f"{server_url}/v1/chat/completions").status_code == 405
    huge = b'{"model": "default", "prompt": "' + b"x" * (17 << 20) + b'"}'
    assert httpx.post(f"{server_url}/v1/completions", content=huge).status_code == 413


def test_bearer_token(tiny_service):
    with background(tiny_service, api_key="s3cret") as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, api_key="wrong").models.list()
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert client(url, api_key="s3cret").models.list().data
        assert httpx.get(f"{url}/health").status_code == 200


def test_a_server_process_hands_the_gil_over_often(monkeypatch):
    """`serve` (the `blockattn serve` process) shortens Python's GIL switch interval, so that a token the model
    thread produced is streamed without waiting out the default 5 ms; uvicorn itself is not started here."""
    import sys
    import types

    from blockattn.engine import server

    before = sys.getswitchinterval()
    ran = []
    monkeypatch.setitem(sys.modules, "uvicorn", types.SimpleNamespace(
        Config=lambda app, **kw: None, Server=lambda config: types.SimpleNamespace(run=lambda sockets: ran.append(1))))
    try:
        server.serve(app=None, sock=None)
        assert ran and sys.getswitchinterval() == pytest.approx(server.SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(before)
