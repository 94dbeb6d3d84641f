"""The Redis tier against a real redis-server: shared across instances, verified, bounded, and harmless when
Redis is dead (misses, counted, behind a breaker) -- with the engine's output unchanged throughout."""

import time

import pytest
import torch

from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.entry import pack
from blockattn.engine.remote import Breaker, RedisTier, parse_url
from blockattn.errors import UserError
from blockattn.models.tiny import tiny_model


def key(i: int) -> str:
    return f"{i:064x}"


class TestSharing:
    def test_an_entry_written_by_one_instance_is_a_hit_for_another(self, redis_server):
        kv = torch.randn(2, 2, 2, 5, 16).bfloat16()
        RedisTier(redis_server.url, 1 << 20).write(key(1), kv)
        other = RedisTier(redis_server.url, 1 << 20)
        assert torch.equal(other.read(key(1)), kv)
        assert other.stats.hits == 1 and other.read(key(2)) is None and other.stats.misses == 1


class TestVerification:
    @pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key"])
    def test_a_damaged_entry_is_dropped_and_counted(self, redis_server, damage):
        tier = RedisTier(redis_server.url, 1 << 20)
        tier.write(key(1), torch.randn(4, 8))
        name = f"{tier.prefix}kv:{key(1)}"
        data = bytearray(tier.client.get(name))
        if damage == "flip":
            data[-3] ^= 0x10
        elif damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "garbage":
            data = bytearray(b"not an entry")
        else:
            data = bytearray(pack(key(2), torch.randn(4, 8)))
        tier.client.set(name, bytes(data))
        assert tier.read(key(1)) is None
        assert tier.stats.corrupt == 1 and not tier.client.exists(name)
        assert tier.client.zscore(f"{tier.prefix}lru", key(1)) is None  # bookkeeping dropped with it


class TestBudget:
    def test_writes_evict_the_least_recently_used_past_the_budget(self, redis_server):
        kv = torch.randn(64, 64)  # 16 KiB + header per entry
        one = len(pack(key(0), kv))
        tier = RedisTier(redis_server.url, 3 * one + 10)
        for i in range(3):
            tier.write(key(i), kv)
        assert tier.read(key(0)) is not None  # key 0 is now the most recently used; key 1 the oldest
        tier.write(key(3), kv)
        assert tier.read(key(1)) is None and tier.read(key(0)) is not None
        assert tier.stats.evictions == 1 and tier.stats.entries == 3
        assert int(tier.client.get(f"{tier.prefix}bytes")) == 3 * one <= tier.budget_bytes

    def test_two_instances_share_one_budget(self, redis_server):
        kv = torch.randn(32, 32)
        one = len(pack(key(0), kv))
        a, b = RedisTier(redis_server.url, 4 * one), RedisTier(redis_server.url, 4 * one)
        for i in range(10):
            (a if i % 2 else b).write(key(i), kv)
        assert int(a.client.get(f"{a.prefix}bytes")) <= 4 * one
        assert a.client.zcard(f"{a.prefix}lru") == 4
        assert sum(a.client.exists(f"{a.prefix}kv:{key(i)}") for i in range(10)) == 4


class TestOutage:
    def test_a_dead_redis_is_a_fast_counted_miss_behind_the_breaker(self, redis_server):
        tier = RedisTier(redis_server.url, 1 << 20, timeout_s=0.2, breaker=Breaker(base_s=0.5))
        tier.write(key(1), torch.randn(4))
        redis_server.kill()
        start = time.monotonic()
        assert tier.read(key(1)) is None  # one failed connect
        for i in range(20):  # breaker open: nothing is sent
            assert tier.read(key(i)) is None
            tier.write(key(i), torch.randn(4))
        assert time.monotonic() - start < 1.0
        assert tier.stats.errors == 1 and tier.stats.skipped == 40 and tier.snapshot()["breaker_open"]
        redis_server.start()  # same port, empty (no persistence)
        time.sleep(0.6)
        tier.write(key(1), torch.randn(4))
        assert tier.read(key(1)) is not None and not tier.snapshot()["breaker_open"]

    def test_engine_recomputes_identically_while_redis_is_down(self, redis_server):
        model = tiny_model()
        blocks, query = [[5, 6, 7, 8, 9], [10, 11, 12]], [13, 14]
        config = EngineConfig(kv_store=redis_server.url)
        expected = BlockEngine(model, "tiny", config=config).prefill(blocks, query, keep_logits=2).logits
        replica = BlockEngine(model, "tiny", config=config)
        out = replica.prefill(blocks, query, keep_logits=2)
        assert out.computed_blocks == 0 and replica.store.remote.stats.hits == 2
        assert torch.equal(out.logits, expected)
        redis_server.kill()
        cold = BlockEngine(model, "tiny", config=config)
        out = cold.prefill(blocks, query, keep_logits=2)
        assert out.computed_blocks == 2 and cold.store.remote.stats.errors >= 1
        assert torch.allclose(out.logits, expected, atol=1e-5)


@pytest.mark.parametrize("url", ["http://x:1/0", "redis://", "redis://h:port/0", "redis://h:1/zero"])
def test_bad_urls_are_one_line_user_errors(url):
    with pytest.raises(UserError, match="--kv-store"):
        parse_url(url)
