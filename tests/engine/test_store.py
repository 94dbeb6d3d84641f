"""The tiered block store: LRU by bytes, demotion and promotion between tiers, stats, in-flight de-duplication."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from blockattn.engine.store import BlockStore, MemoryTier


def entry(n_bytes: int, fill: float = 0.0) -> torch.Tensor:
    return torch.full((n_bytes // 4,), fill, dtype=torch.float32)


def two_tier_store(fast: int = 1000, slow: int = 2000) -> BlockStore:
    # both tiers on the CPU: the same code path as GPU → CPU, testable without a GPU
    return BlockStore([MemoryTier("gpu", "cpu", fast), MemoryTier("cpu", "cpu", slow)])


def publish(store: BlockStore, key: str, tensor: torch.Tensor) -> None:
    assert store.lookup([key]).claimed == [key]
    store.publish(key, tensor)


class TestMemoryTiers:
    def test_lru_evicts_least_recently_used_to_the_next_tier(self):
        store = two_tier_store(fast=1000)
        for key in "abc":
            publish(store, key, entry(400))
        fast, slow = store.tiers
        assert "a" in slow and "b" in fast and "c" in fast  # a was oldest: demoted
        assert fast.stats.bytes == 800 and fast.stats.evictions == 1

    def test_a_hit_in_a_lower_tier_is_promoted(self):
        store = two_tier_store(fast=1000)
        for key in "abc":
            publish(store, key, entry(400, fill=ord(key)))
        found = store.lookup(["a"]).found["a"]
        assert float(found[0]) == ord("a")
        fast, slow = store.tiers
        assert "a" in fast and "b" in slow  # b, now the oldest in the fast tier, made room
        assert slow.stats.hits == 1 and fast.stats.misses >= 1

    def test_bytes_never_exceed_budgets_and_the_last_tier_drops(self):
        store = two_tier_store(fast=1000, slow=1000)
        for i in range(10):
            publish(store, f"k{i}", entry(400))
        for tier in store.tiers:
            assert tier.stats.bytes <= tier.budget_bytes
        assert sum(t.stats.entries for t in store.tiers) == 4
        assert store.lookup(["k0"]).claimed == ["k0"]  # dropped everywhere: a miss again

    def test_an_entry_larger_than_a_tier_skips_it(self):
        store = two_tier_store(fast=100, slow=1000)
        publish(store, "big", entry(400))
        assert "big" in store.tiers[1] and store.tiers[0].stats.entries == 0

    def test_stats(self):
        store = two_tier_store()
        publish(store, "a", entry(40))
        store.lookup(["a", "a"])
        stats = store.stats()
        assert stats["computed"] == 1
        assert stats["tiers"][0]["hits"] == 1 and stats["tiers"][0]["bytes"] == 40
        store.clear()
        assert store.stats()["tiers"][0]["bytes"] == 0


class TestInFlight:
    def test_a_claimed_key_is_awaited_not_claimed_again(self):
        store = two_tier_store()
        first = store.lookup(["x"])
        second = store.lookup(["x"])
        assert first.claimed == ["x"] and second.claimed == [] and "x" in second.waiting
        store.publish("x", entry(40, 7.0))
        assert float(second.waiting["x"].result(timeout=5)[0]) == 7.0
        assert store.joined == 1

    def test_a_failed_computation_reaches_waiters_and_releases_the_key(self):
        store = two_tier_store()
        store.lookup(["x"])
        waiting = store.lookup(["x"]).waiting["x"]
        store.fail(["x"], RuntimeError("boom"))
        with pytest.raises(RuntimeError, match="boom"):
            waiting.result(timeout=5)
        assert store.lookup(["x"]).claimed == ["x"]

    def test_many_threads_compute_each_key_once(self):
        store = two_tier_store(fast=10**6)
        computed = []
        lock = threading.Lock()

        def request(keys):
            look = store.lookup(keys)
            for key in look.claimed:
                with lock:
                    computed.append(key)
                store.publish(key, entry(40))
            for future in look.waiting.values():
                future.result(timeout=10)
            return len(look.found) + len(look.waiting) + len(look.claimed)

        keys = [f"k{i % 5}" for i in range(40)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: request([keys[i], keys[i + 1], keys[(i * 7) % 40]]), range(39)))
        assert sorted(computed) == sorted(set(computed)) and len(computed) == 5
        assert all(r >= 1 for r in results)


def test_the_gpu_tier_takes_a_quarter_of_the_free_memory_unless_told(monkeypatch):
    from blockattn.engine.engine import GiB, gpu_tier_bytes

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * GiB, 141 * GiB))
    assert gpu_tier_bytes(None, torch.device("cuda")) == 25 * GiB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * GiB, 24 * GiB))
    assert gpu_tier_bytes(None, torch.device("cuda")) == 1 * GiB  # never below 1 GiB
    assert gpu_tier_bytes(3 * GiB, torch.device("cuda")) == 3 * GiB  # a budget given is the budget
