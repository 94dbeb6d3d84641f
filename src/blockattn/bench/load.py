"""`blockattn bench load`: N concurrent clients against the OpenAI-compatible server, over loopback.

Each client sends `requests` requests back to back with the official async `openai` client; the mix cycles
through chat with documents (a shared pool, in varying subsets and orders, so blocks are reused across
clients), plain chat, streaming chat, and completions. Recorded per request: latency, time to the first
streamed token, status. Bounded in count and time: at most clients × requests requests, each with a timeout,
and the run stops sending after `time_limit_s`. Reports p50/p90/p99, throughput, errors, and the server's
cache counters; the goal is 0 errors.

    blockattn bench load --clients 32 --out reports/load_cpu.json        (starts its own server on 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from blockattn.reportio import write_report

QUESTIONS = ("Who designed the Bell Rock Lighthouse?", "Where was Marie Curie born?",
             "How many eggs can a honey bee queen lay in a day?", "What is the text about?")
KINDS = ("chat_documents", "chat_stream_documents", "chat_plain", "completion")


@dataclass
class LoadConfig:
    clients: int = 32
    requests: int = 4  # per client
    max_tokens: int = 16
    request_timeout_s: float = 300.0
    time_limit_s: float = 900.0  # no request starts after this
    model: str = "smollm2-135m-instruct"
    url: str | None = None  # an already running server; None: start one in-process on 127.0.0.1
    max_batch: tuple[int, ...] = (32,)  # the in-process server's batch limit; several: one run each, compared


def demo_documents() -> list[str]:
    folder = resources.files("blockattn") / "assets" / "demo"
    return [p.read_text(encoding="utf-8") for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".txt")]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100])."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def one_request(client, kind: str, i: int, docs: list[str], cfg: LoadConfig) -> dict:
    subset = [{"text": docs[(i + j) % len(docs)]} for j in range(1 + i % len(docs))]
    messages = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
    sampling = {"temperature": 0.0} if i % 2 else {"temperature": 0.7, "top_p": 0.9, "seed": i}
    start = time.perf_counter()
    first = None
    record = {"kind": kind}
    try:
        if kind == "chat_stream_documents":
            stream = await client.chat.completions.create(model="default", messages=messages, stream=True,
                                                          max_tokens=cfg.max_tokens, extra_body={"documents": subset},
                                                          **sampling)
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
                if chunk.usage is not None:
                    record["usage"] = chunk.usage.model_extra.get("blockattn")
        elif kind == "completion":
            reply = await client.completions.create(model="default", prompt=f"Q: {messages[0]['content']}\nA:",
                                                    max_tokens=cfg.max_tokens, **sampling)
            record["usage"] = reply.usage.model_extra.get("blockattn")
        else:
            extra = {"documents": subset} if kind == "chat_documents" else {}
            reply = await client.chat.completions.create(model="default", messages=messages,
                                                         max_tokens=cfg.max_tokens, extra_body=extra, **sampling)
            record["usage"] = reply.usage.model_extra.get("blockattn")
        record["ok"] = True
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, not raised
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    record["latency_s"] = time.perf_counter() - start
    if first is not None:
        record["first_token_s"] = first - start
    return record


async def drive(url: str, cfg: LoadConfig) -> tuple[list[dict], float]:
    import openai

    docs = demo_documents()
    deadline = time.monotonic() + cfg.time_limit_s
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=cfg.request_timeout_s)

    async def worker(c: int) -> list[dict]:
        records = []
        for r in range(cfg.requests):
            if time.monotonic() > deadline:
                break
            i = c * cfg.requests + r
            records.append(await one_request(client, KINDS[i % len(KINDS)], i, docs, cfg))
        return records

    started = time.perf_counter()
    per_client = await asyncio.gather(*(worker(c) for c in range(cfg.clients)))
    elapsed = time.perf_counter() - started
    await client.close()
    return [r for records in per_client for r in records], elapsed


def scrape(url: str) -> dict:
    """The cache and request counters from /metrics."""
    import httpx

    wanted = ("blockattn_cache_hits_total", "blockattn_cache_misses_total", "blockattn_generated_tokens_total",
              "blockattn_requests_total")
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def summarise(records: list[dict], elapsed: float) -> dict:
    ok = [r for r in records if r["ok"]]
    latencies = [r["latency_s"] for r in ok]
    firsts = [r["first_token_s"] for r in ok if "first_token_s" in r]
    ms = lambda v: None if v is None else round(v * 1e3, 1)  # noqa: E731
    return {
        "requests": len(records), "errors": len(records) - len(ok),
        "error_samples": sorted({r["error"] for r in records if not r["ok"]})[:5],
        "elapsed_s": round(elapsed, 2), "throughput_rps": round(len(ok) / elapsed, 3) if elapsed else None,
        "latency_ms": {"p50": ms(percentile(latencies, 50)), "p90": ms(percentile(latencies, 90)),
                       "p99": ms(percentile(latencies, 99)), "max": ms(max(latencies, default=None)),
                       "mean": ms(statistics.fmean(latencies)) if latencies else None},
        "stream_first_token_ms": {"p50": ms(percentile(firsts, 50)), "p99": ms(percentile(firsts, 99))},
        "by_kind": {kind: {"n": sum(r["kind"] == kind for r in records),
                           "p50_ms": ms(percentile([r["latency_s"] for r in ok if r["kind"] == kind], 50))}
                    for kind in KINDS},
        "blocks": {"cached": sum((r.get("usage") or {}).get("cached_blocks", 0) for r in ok),
                   "computed": sum((r.get("usage") or {}).get("computed_blocks", 0) for r in ok)},
    }


def _one_run(cfg: LoadConfig, max_batch: int) -> dict:
    if cfg.url is not None:
        records, elapsed = asyncio.run(drive(cfg.url, cfg))
        metrics = scrape(cfg.url)
    else:
        from blockattn.engine.server import background
        from blockattn.engine.service import Service

        service = Service.load(cfg.model, adapter="none", device="cpu")  # fresh: each run starts with no cache
        with background(service, max_batch=max_batch) as url:
            records, elapsed = asyncio.run(drive(url, cfg))
            metrics = scrape(url)
    return {"max_batch": None if cfg.url else max_batch, "summary": summarise(records, elapsed),
            "server_metrics": metrics}


def run(cfg: LoadConfig, log=print) -> dict:
    runs = []
    for max_batch in ([None] if cfg.url else cfg.max_batch):
        runs.append(_one_run(cfg, max_batch))
        s = runs[-1]["summary"]
        log(f"max_batch={max_batch}: {s['requests']} requests, {s['errors']} errors, p50 {s['latency_ms']['p50']} ms, "
            f"p99 {s['latency_ms']['p99']} ms, {s['throughput_rps']} req/s")
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
           "cpus": os.cpu_count(), "load_average": os.getloadavg(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    result = {"benchmark": "load", "config": asdict(cfg), "env": env, "summary": runs[0]["summary"],
              "server_metrics": runs[0]["server_metrics"], "runs": runs}
    if len(runs) > 1:  # side by side, same machine, same minutes: ratios against the first setting
        first = runs[0]["summary"]
        result["ratios"] = [{"max_batch": r["max_batch"],
                             "throughput_vs_first": r["summary"]["throughput_rps"] / first["throughput_rps"],
                             "p50_vs_first": r["summary"]["latency_ms"]["p50"] / first["latency_ms"]["p50"],
                             "p99_vs_first": r["summary"]["latency_ms"]["p99"] / first["latency_ms"]["p99"]}
                            for r in runs[1:]]
    return result


def write(result: dict, out: Path) -> Path:
    return write_report(result, out)

