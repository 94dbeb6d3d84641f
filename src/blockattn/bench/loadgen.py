"""The load generator of `bench serve`: closed-loop streaming clients, in this process or spread over several.

Why several: one Python process streaming 64 requests at once spends its time in httpx's per-event work. Against
a stub server that sends the first chunk after 20 ms and then one every 25 ms (`python
scripts/loadgen_capacity.py`, 2 CPU cores, 2026-12-07, reports/bench_loadgen_cpu.json), 64 clients in one
process measured TTFT p50 88 ms, in two processes 57.5 ms: the client's own queueing was counted as the server's
TTFT. `ClientProcesses` runs the clients in worker processes that take the next
request from one shared counter, so the phase stays one closed loop of `clients` clients over one request list.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time


def open_client(url: str, timeout_s: float):
    """An httpx client for many concurrent streams (no connection limit, TCP_NODELAY)."""
    import httpx

    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout_s,
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))


async def stream_request(client, documents: list[str], req: dict, new_tokens: int) -> dict:
    """One streamed chat completion: a record of its start, first content chunk, end, usage (or its error)."""
    body = {"model": "default", "messages": [{"role": "user", "content": req["question"]}],
            "documents": [{"text": documents[d]} for d in req["documents"]],
            "max_tokens": new_tokens, "temperature": 0, "stream": True}
    record: dict = {"ok": False}
    start = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:200]
                record["error"] = f"HTTP {response.status_code}: {text}"
                return record
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    record["error"] = f"in-stream error: {chunk['error'].get('message')}"
                    return record
                choice = (chunk.get("choices") or [{}])[0]
                if "first" not in record and (choice.get("delta") or {}).get("content"):
                    record["first"] = time.perf_counter()
                if chunk.get("usage"):
                    record["usage"] = chunk["usage"]
        record["end"] = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 - counted and reported
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    usage = record.get("usage") or {}
    record.update(ok="first" in record and bool(usage), tokens=usage.get("completion_tokens", 0),
                  start=start, server=usage.get("blockattn", {}))
    if not record["ok"]:
        record["error"] = "no content streamed" if usage else "no usage in the stream"
    return record


async def closed_loop(ask, requests: list[dict], clients: int, deadline: float | None, take) -> tuple[list, bool]:
    """`clients` clients, each taking the next request (`take()` → index or None) when its last is answered;
    none starts after `deadline` (time.monotonic). (records, cut short by the deadline)."""
    records: list[dict] = []
    cut = False

    async def client() -> None:
        nonlocal cut
        while (index := take()) is not None:
            if deadline is not None and time.monotonic() > deadline:
                cut = True
                return
            records.append(await ask(requests[index]))

    await asyncio.gather(*(client() for _ in range(clients)))
    return records, cut


def local_take(count: int):
    """`take` over one process's counter."""
    indices = iter(range(count))
    return lambda: next(indices, None)


def _shared_take(counter, count: int):
    def take():
        with counter.get_lock():
            index = counter.value
            if index >= count:
                return None
            counter.value = index + 1
        return index
    return take


def _worker(conn, counter, url: str, documents: list[str], timeout_s: float) -> None:
    """A load-generator process: per message (requests, clients, new_tokens, deadline) it runs its clients over
    the shared counter and answers (records, cut); None ends it."""
    while (message := conn.recv()) is not None:
        requests, clients, new_tokens, deadline = message

        async def phase():
            client = open_client(url, timeout_s)
            try:
                return await closed_loop(lambda req: stream_request(client, documents, req, new_tokens),
                                         requests, clients, deadline, _shared_take(counter, len(requests)))
            finally:
                await client.aclose()

        conn.send(asyncio.run(phase()))


class ClientProcesses:
    """`processes` load-generator processes against one server; `drive` splits a phase's clients over them."""

    def __init__(self, url: str, documents: list[str], processes: int, timeout_s: float):
        context = multiprocessing.get_context("spawn")  # the parent may hold CUDA (plain generate) and threads
        self.counter = context.Value("l", 0)
        self.workers = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, self.counter, url, documents, timeout_s),
                                      name="bench-client", daemon=True)
            process.start()
            child.close()
            self.workers.append((process, parent))

    def drive(self, requests: list[dict], clients: int, new_tokens: int,
              deadline: float | None) -> tuple[list[dict], float, bool]:
        """The phase as one closed loop of `clients` clients: (records, elapsed seconds, cut short)."""
        self.counter.value = 0
        share = [clients // len(self.workers) + (i < clients % len(self.workers)) for i in range(len(self.workers))]
        busy = [(process, conn) for (process, conn), n in zip(self.workers, share) if n]
        started = time.perf_counter()
        for (_, conn), n in zip(busy, [n for n in share if n]):
            conn.send((requests, n, new_tokens, deadline))
        records, cut = [], False
        for process, conn in busy:
            try:
                part, part_cut = conn.recv()
            except EOFError:
                raise RuntimeError(f"a load-generator process exited (code {process.exitcode})") from None
            records += part
            cut = cut or part_cut
        return records, time.perf_counter() - started, cut

    def close(self) -> None:
        for process, conn in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
        for process, _ in self.workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
