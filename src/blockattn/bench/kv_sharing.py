"""Replicas sharing one block store, measured: two `blockattn serve` processes (tiny random-weight model) on one
real redis-server -- the hit rate of repeated documents across replicas, requests during a Redis outage
(killed with SIGKILL), recovery after it returns -- and the disk budget under 2 processes × 16 clients.

    python -m blockattn.bench.kv_sharing --out reports/kv_sharing.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path


def _blocks(response) -> tuple[int, int]:
    usage = response.json()["usage"]["blockattn"]
    return usage["cached_blocks"], usage["computed_blocks"]


def sharing(a, b, n_docs: int, n_requests: int, per_request: int, rng: random.Random) -> dict:
    """Requests of random document subsets, alternating replicas: every block after its first computation
    anywhere should be a hit."""
    docs = [f"Document {i}: the keeper of light {i} logs {i * 13} ships a night." for i in range(n_docs)]
    seen: set[int] = set()
    blocks = firsts = computed = failed = 0
    for r in range(n_requests):
        picked = rng.sample(range(n_docs), per_request)
        response = (a, b)[r % 2].complete([docs[i] for i in picked])
        if response.status_code != 200:
            failed += 1
            continue
        cached, fresh = _blocks(response)
        blocks += cached + fresh
        computed += fresh
        firsts += len(set(picked) - seen)
        seen |= set(picked)
    repeats = blocks - firsts
    # a replica's own repeats are served by its CPU tier; blocks the other replica computed come from Redis
    from_redis = sum(s.metrics().get('blockattn_cache_hits_total{tier="redis"}', 0) for s in (a, b))
    return {"requests": n_requests, "failed": failed, "blocks": blocks, "first_computations": firsts,
            "hits_from_redis": int(from_redis),
            "computed": computed, "repeat_blocks": repeats, "repeat_hits": blocks - computed,
            "repeat_hit_rate": (blocks - computed) / repeats if repeats else None}


def outage(a, b, redis, n_requests: int) -> dict:
    """Redis SIGKILLed; requests keep coming (repeated and new documents); then Redis returns (empty)."""
    import httpx

    redis.kill()
    failed, latencies, computed = 0, [], 0
    for r in range(n_requests):
        docs = [f"Outage document {r}.", "Document 0: the keeper of light 0 logs 0 ships a night."]
        start = time.monotonic()
        try:
            response = (a, b)[r % 2].complete(docs)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.monotonic() - start)
        failed += not ok
        computed += _blocks(response)[1] if ok else 0
    during = {k: sum(s.metrics().get(k, 0) for s in (a, b)) for k in
              ("blockattn_cache_remote_errors_total", "blockattn_cache_remote_skipped_total")}
    redis.start()
    back = time.monotonic()
    probe = 0
    while True:  # until a block computed on A is a hit on B again (the breakers have closed)
        probe += 1
        doc = [f"After the outage, probe {probe}."]
        a.complete(doc)
        if _blocks(b.complete(doc))[1] == 0:
            break
        if time.monotonic() - back > 120:
            break
        time.sleep(0.25)
    latencies.sort()
    return {"requests": n_requests, "failed": failed, "computed_blocks": computed,
            "latency_s": {"p50": latencies[len(latencies) // 2], "max": latencies[-1]},
            "remote_errors": during["blockattn_cache_remote_errors_total"],
            "remote_skipped": during["blockattn_cache_remote_skipped_total"],
            "sharing_again_after_s": round(time.monotonic() - back, 2), "recovery_probes": probe}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--per-request", type=int, default=4)
    parser.add_argument("--outage-requests", type=int, default=20)
    parser.add_argument("--disk-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/kv_sharing.json"))
    args = parser.parse_args(argv)
    if args.per_request > args.docs or min(args.docs, args.requests, args.per_request) < 1:
        print("error: need 1 <= --per-request <= --docs and --requests >= 1", file=sys.stderr)
        return 2
    from blockattn.bench.diskstress import run as disk_stress
    from blockattn.bench.redisproc import RedisProcess
    from blockattn.reportio import write_report
    from blockattn.bench.serverproc import ServerProcess
    from blockattn.models.tiny import save_tiny_model

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(save_tiny_model(Path(tmp) / "tiny"))
        redis = RedisProcess(Path(tmp) / "redis").start()
        servers = []
        try:
            for _ in range(2):
                servers.append(ServerProcess("--model", model, "--adapter", "none", "--kv-store", redis.url))
            a, b = servers
            shared = sharing(a, b, args.docs, args.requests, args.per_request, rng)
            down = outage(a, b, redis, args.outage_requests)
        finally:
            for server in servers:
                server.stop()
            redis.stop()
        disk = disk_stress(Path(tmp) / "disk", budget_entries=8, processes=2, threads=16,
                           seconds=args.disk_seconds)
    result = {"setup": "2 blockattn serve processes (tiny random-weight llama, CPU) on one redis-server 7 "
                       "(loopback); disk: 2 processes x 16 threads on one --cache-dir-max-gb directory",
              "sharing": shared, "outage": down, "disk": disk,
              "command": "python -m blockattn.bench.kv_sharing " + " ".join(argv if argv is not None
                                                                            else sys.argv[1:])}
    write_report(result, args.out)
    print(json.dumps({"repeat_hit_rate": shared["repeat_hit_rate"], "outage_failed": down["failed"],
                      "disk_peak_over_budget_entries": disk["peak_over_budget_entries"],
                      "disk_errors": disk["errors"], "disk_wrong": disk["wrong"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
