"""How long a streamed request spends in HTTP and the event loop, by uvicorn's HTTP parser and event loop.

    .venv/bin/python scripts/dev/serve_http_gap.py

The real SmolLM2 server on this machine's CPU, in-process (uvicorn in a thread), 40 HotpotQA paragraphs a
request (all cached after the first), 2 new tokens, one client over loopback. Per request the gap = client TTFT
(request sent -> first content chunk) minus what the server reports (tokenize + queue + its own TTFT). Three
alternating rounds of 25 requests (the first 3 of each dropped) for h11 + asyncio and, where they are
installed, httptools + uvloop (uvicorn's "standard" extras). A dev tool: it prints, it writes nothing. Data:
$BLOCKATTN_HOTPOTQA, else ../shared/data/hotpotqa/dev500.jsonl.gz.

Measured here (2 CPU cores, 2026-12-04), three runs, gap p50 h11+asyncio vs httptools+uvloop: 2.98 vs 2.52 ms,
4.71 vs 4.50, 4.52 vs 4.99 -- no consistent difference, so blockattn does not depend on them.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import os
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from blockattn.engine.server import bind, create_app, tune_interpreter
from blockattn.engine.service import Service

ROOT = Path(__file__).resolve().parents[2]
HOTPOTQA = os.environ.get("BLOCKATTN_HOTPOTQA", str(ROOT.parent / "shared/data/hotpotqa/dev500.jsonl.gz"))
CONFIGS = [("h11", "asyncio")] + ([("httptools", "uvloop")] if all(
    importlib.util.find_spec(m) for m in ("httptools", "uvloop")) else [])
ROUNDS, REQUESTS, DROPPED = 3, 25, 3


def start(service: Service, http: str, loop: str) -> tuple[uvicorn.Server, str]:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", http=http, loop=loop))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    return server, f"http://{host}:{port}"


async def gap_ms(client: httpx.AsyncClient, question: str, documents: list[str]) -> float:
    body = {"model": "default", "messages": [{"role": "user", "content": question}],
            "documents": [{"text": d} for d in documents], "max_tokens": 2, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    sent, first, usage = time.perf_counter(), None, None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choice = (chunk.get("choices") or [{}])[0]
            if first is None and (choice.get("delta") or {}).get("content"):
                first = time.perf_counter()
            usage = chunk.get("usage") or usage
    if first is None or usage is None:
        raise SystemExit(f"no content or no usage streamed (last line: {line[:200]})")
    server = usage["blockattn"]
    return (first - sent) * 1e3 - (server["ttft_ms"] + server["timings_ms"].get("tokenize", 0) + server["queue_ms"])


async def round_of(url: str, questions: list[str], documents: list[str]) -> list[float]:
    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=300) as client:
        return [await gap_ms(client, questions[i % len(questions)], documents) for i in range(REQUESTS)]


def main() -> None:
    tune_interpreter()
    service = Service.load("default", device="cpu")
    with gzip.open(HOTPOTQA, "rt") as f:
        rows = [json.loads(line) for line in f]
    documents = [c["title"] + "\n" + c["paragraph_text"] for r in rows[:6] for c in r["contexts"]][:40]
    questions = [r["question_text"] for r in rows[10:15]]
    gaps: dict[str, list[float]] = {}
    for round_ in range(ROUNDS):
        for http, loop in CONFIGS:
            server, url = start(service, http, loop)
            got = asyncio.run(round_of(url, questions, documents))[DROPPED:]
            server.should_exit = True
            time.sleep(0.5)
            gaps.setdefault(f"{http}+{loop}", []).extend(got)
            print(f"round {round_}: {http} + {loop}: gap p50 {statistics.median(got):.2f} ms", flush=True)
    for name, values in gaps.items():
        print(f"{name}: gap p50 {statistics.median(values):.2f} ms, mean {statistics.mean(values):.2f} ms, "
              f"n={len(values)}")


if __name__ == "__main__":
    main()
