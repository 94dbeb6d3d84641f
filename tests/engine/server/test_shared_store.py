"""Replicas on one Redis store, as real `blockattn serve` processes (tiny random model): blocks computed by one
are hits for the other; Redis dying mid-run costs recomputation, never a failed request; corrupted entries in
Redis and on disk are dropped and recomputed; a server SIGKILLed while writing restarts on whole entries only."""

import threading
import time

import httpx
import pytest

from blockattn.bench.serverproc import ServerProcess

pytestmark = pytest.mark.slow

DOCS = [f"Document {i}: the lighthouse number {i} stands on rock {i * 7}." for i in range(4)]


def usage(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["usage"]["blockattn"]


@pytest.fixture
def servers(request):
    started = []

    def start(*args):
        server = ServerProcess(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def serve_args(tiny_dir, *extra):
    return ("--model", str(tiny_dir), "--adapter", "none", *extra)


def test_a_block_computed_by_one_server_is_a_hit_for_another(tiny_dir, redis_server, servers):
    a = servers(*serve_args(tiny_dir, "--kv-store", redis_server.url))
    b = servers(*serve_args(tiny_dir, "--kv-store", redis_server.url))
    assert usage(a.complete(DOCS))["computed_blocks"] == len(DOCS)
    assert usage(b.complete(DOCS))["computed_blocks"] == 0
    assert usage(b.complete(DOCS[::-1]))["computed_blocks"] == 0  # any order: block KV is position-free
    metrics = b.metrics()
    assert metrics['blockattn_cache_hits_total{tier="redis"}'] == len(DOCS)
    assert metrics["blockattn_cache_remote_errors_total"] == 0


def test_redis_killed_mid_run_only_costs_recomputation(tiny_dir, redis_server, servers):
    a = servers(*serve_args(tiny_dir, "--kv-store", redis_server.url))
    b = servers(*serve_args(tiny_dir, "--kv-store", redis_server.url))
    usage(a.complete(DOCS))
    redis_server.kill()
    for i in range(6):
        server = (a, b)[i % 2]
        start = time.monotonic()
        result = usage(server.complete([f"outage document {i}", *DOCS]))
        assert time.monotonic() - start < 10
        assert result["computed_blocks"] >= 1
    for server in (a, b):
        metrics = server.metrics()
        assert metrics["blockattn_cache_remote_errors_total"] >= 1 and metrics["blockattn_cache_remote_up"] == 0
        assert server.alive()
    redis_server.start()  # back, empty: after the breaker's back-off the servers share again
    time.sleep(2.5)
    usage(a.complete(["after the outage"]))
    usage(a.complete(["after the outage, again"]))
    assert usage(b.complete(["after the outage, again"]))["computed_blocks"] == 0


def corrupt_all(redis_server, cache_dir) -> int:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    names = client.keys("blockattn:kv:*")
    for i, name in enumerate(names):
        data = client.get(name)
        client.set(name, data[: len(data) // 2] if i % 2 else data[:-1] + bytes([data[-1] ^ 1]))
    for path in cache_dir.glob("*/*.safetensors"):
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    return len(names)


def test_corrupted_entries_in_redis_and_on_disk_are_dropped_and_recomputed(tiny_dir, redis_server, servers,
                                                                           tmp_path):
    cache = tmp_path / "cache"
    args = serve_args(tiny_dir, "--kv-store", redis_server.url, "--cache-dir", str(cache))
    first = servers(*args)
    expected = first.complete(DOCS, max_tokens=4).json()["choices"][0]["text"]
    first.stop()
    assert corrupt_all(redis_server, cache) == len(DOCS)
    again = servers(*args)
    response = again.complete(DOCS, max_tokens=4)
    assert usage(response)["computed_blocks"] == len(DOCS)
    assert response.json()["choices"][0]["text"] == expected
    metrics = again.metrics()
    assert metrics["blockattn_cache_corrupt_total"] == len(DOCS)
    assert metrics["blockattn_cache_remote_corrupt_total"] == len(DOCS)


def test_a_server_killed_while_writing_restarts_on_whole_entries(tiny_dir, redis_server, servers, tmp_path):
    cache = tmp_path / "cache"
    args = serve_args(tiny_dir, "--kv-store", redis_server.url, "--cache-dir", str(cache))
    docs = [f"Passage {i}: " + "words of the passage " * 5 for i in range(48)]  # 48 blocks within the window
    victim = servers(*args)

    def request():
        try:
            victim.complete(docs)
        except httpx.TransportError:  # the victim dies mid-request: expected
            pass

    threading.Thread(target=request, daemon=True).start()
    deadline = time.monotonic() + 120
    while not list(cache.glob("*/*.safetensors")):  # the first entries are landing: others are being written
        assert time.monotonic() < deadline, "no entry was written"
        time.sleep(0.01)
    victim.kill()
    written = len(list(cache.glob("*/*.safetensors")))
    restarted = servers(*args)
    result = usage(restarted.complete(docs))
    assert result["computed_blocks"] + result["cached_blocks"] == len(docs)
    assert result["cached_blocks"] >= written
    metrics = restarted.metrics()
    assert metrics["blockattn_cache_corrupt_total"] == 0 and metrics["blockattn_cache_remote_corrupt_total"] == 0
    assert not list(cache.glob("*/.*.tmp"))
