"""How much TTFT `bench serve`'s own load generator adds: its clients against a stub server with known timing.

    .venv/bin/python scripts/loadgen_capacity.py [--clients 64] [--processes 1,2] [--requests 300]
                                                 [--out reports/bench_loadgen_cpu.json]

The stub (a uvicorn + FastAPI server in its own process) answers every request like a server with no queue: the
first content chunk 20 ms after the request, then one chunk every 25 ms, 32 in all, then the usage. Whatever the
clients measure above 20 ms is the load generator's and the HTTP stack's own time. Each process count runs the
same requests (~50 documents of ~140 tokens, as `bench serve` sends) in one closed loop.
"""

import argparse
import asyncio
import datetime
import json
import multiprocessing
import socket
import statistics
import sys
import time
from pathlib import Path

FIRST_S, EVERY_S, CHUNKS = 0.020, 0.025, 32


def _stub(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        await request.json()

        async def events():
            await asyncio.sleep(FIRST_S)
            for i in range(CHUNKS):
                if i:
                    await asyncio.sleep(EVERY_S)
                yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f" t{i}"}}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [], "usage": {"completion_tokens": CHUNKS}}) + "\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, processes: int, clients: int, requests: list[dict], documents: list[str]) -> dict:
    from blockattn.bench.loadgen import ClientProcesses, closed_loop, local_take, open_client, stream_request

    if processes == 1:
        async def one():
            client = open_client(url, 120)
            try:
                started = time.perf_counter()
                records, _ = await closed_loop(lambda r: stream_request(client, documents, r, CHUNKS), requests,
                                               clients, None, local_take(len(requests)))
                return records, time.perf_counter() - started
            finally:
                await client.aclose()
        records, elapsed = asyncio.run(one())
    else:
        pool = ClientProcesses(url, documents, processes, 120)
        try:
            records, elapsed, _ = pool.drive(requests, clients, CHUNKS, None)
        finally:
            pool.close()
    ttft = sorted((r["first"] - r["start"]) * 1e3 for r in records if r["ok"])
    if not ttft:
        raise SystemExit(f"no request was answered: {records[0].get('error') if records else 'none ran'}")
    return {"processes": processes, "clients": clients, "ok": len(ttft), "requests": len(requests),
            "requests_per_s": round(len(requests) / elapsed, 2), "ttft_ms_p50": round(statistics.median(ttft), 1),
            "ttft_ms_p99": round(ttft[int(0.99 * (len(ttft) - 1))], 1),
            "added_ttft_ms_p50": round(statistics.median(ttft) - FIRST_S * 1e3, 1)}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from blockattn.reportio import machine, provenance, write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_loadgen_cpu.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    port = _free_port()
    stub = multiprocessing.get_context("spawn").Process(target=_stub, args=(port,), daemon=True)
    stub.start()
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(200):
        try:
            httpx.get(url + "/docs", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    documents = ["word " * 110 + str(i) for i in range(60)]  # ~140 tokens each, like a HotpotQA paragraph
    requests = [{"question": "Who?", "documents": [(i + k) % 60 for k in range(50)]} for i in range(args.requests)]
    rows = []
    try:
        for processes in [int(p) for p in args.processes.split(",")]:
            rows.append(measure(url, processes, args.clients, requests, documents))
            print(rows[-1])
    finally:
        stub.terminate()
    command = "python scripts/loadgen_capacity.py " + " ".join(sys.argv[1:])
    write_report({"title": "bench serve's load generator against a stub server", "rows": rows,
                  "stub": {"first_token_ms": FIRST_S * 1e3, "then_every_ms": EVERY_S * 1e3, "chunks": CHUNKS},
                  "note": "added_ttft_ms: what the clients measured beyond the stub's 20 ms to the first chunk: "
                          "the load generator's and the HTTP stack's own time, counted as TTFT by a benchmark",
                  "summary": [f"{r['processes']} process(es), {r['clients']} clients: {r['requests_per_s']} "
                              f"requests/s, TTFT p50 {r['ttft_ms_p50']} ms (+{r['added_ttft_ms_p50']} over the "
                              f"stub's 20), p99 {r['ttft_ms_p99']} ms" for r in rows],
                  **provenance(0, time.perf_counter() - started, command),
                  "where": f"{machine()}, {datetime.date.today()}; the stub, the clients and nothing else"}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
