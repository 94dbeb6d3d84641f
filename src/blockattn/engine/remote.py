"""The remote tier: block entries in Redis, shared by every server process on the same store and model.

    Redis keys (PREFIX = "blockattn:")
      PREFIX kv:<key>   one entry, `entry.pack` bytes (header + raw tensor bytes, checksummed)
      PREFIX lru        sorted set  key -> last use (a logical clock, PREFIX clock), for a cross-process LRU
      PREFIX size       hash        key -> bytes of the entry
      PREFIX bytes      our total bytes in Redis; writes evict the least recently used entries past the budget

Writes and their evictions run as one Lua script, so processes sharing the store never see the budget
exceeded; reads touch the entry's last-use time in the same round trip. Redis's own `maxmemory` policy is a
second bound: with `allkeys-lru` it may drop an entry (a miss, recomputed) before our budget does.

Failure behaviour: Redis is a cache, never a dependency. Every command has short connect/read timeouts; any
error or timeout is a miss (reads) or a skipped write, counted. After a failure a circuit breaker skips Redis
for a back-off (1 s, doubling to 30 s) so a dead Redis does not add a timeout to every request; the first call
after the back-off tries again. An entry that fails verification (format, key, length, checksum) is deleted and
counted as corrupt -- never used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import torch

from blockattn.engine.entry import BadEntry, pack, unpack
from blockattn.errors import UserError

PREFIX = "blockattn:"

# KEYS: entry, lru, size, bytes, clock. ARGV: data, budget, entry-key prefix, key. -> {evicted, bytes, entries}
_WRITE = """
local now = redis.call('INCR', KEYS[5])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  return {0, tonumber(redis.call('GET', KEYS[4]) or 0), redis.call('ZCARD', KEYS[2])}
end
local stale = redis.call('HGET', KEYS[3], ARGV[4])  -- Redis itself evicted the entry: forget its bytes
if stale then redis.call('DECRBY', KEYS[4], stale) end
local size = string.len(ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[4], size)
redis.call('ZADD', KEYS[2], now, ARGV[4])
local total = redis.call('INCRBY', KEYS[4], size)
local evicted = 0
while total > tonumber(ARGV[2]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if (not oldest) or oldest == ARGV[4] then break end
  local bytes = tonumber(redis.call('HGET', KEYS[3], oldest) or 0)
  redis.call('DEL', ARGV[3] .. oldest)
  redis.call('HDEL', KEYS[3], oldest)
  redis.call('ZREM', KEYS[2], oldest)
  total = redis.call('DECRBY', KEYS[4], bytes)
  evicted = evicted + 1
end
return {evicted, total, redis.call('ZCARD', KEYS[2])}
"""

# KEYS: entry, lru, clock. ARGV: key. -> the entry's bytes or nil (and touches its last use)
_READ = """
local data = redis.call('GET', KEYS[1])
if data then redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1]) end
return data
"""

# KEYS: entry, lru, size, bytes. ARGV: key. Drops one entry and its bookkeeping.
_DROP = """
local bytes = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if bytes then redis.call('DECRBY', KEYS[4], bytes) end
return 1
"""


def parse_url(url: str) -> str:
    """`url` checked to be redis://HOST[:PORT][/DB]; UserError (one line) otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UserError(f"--kv-store {url!r}: bad port") from None
    db = parts.path.strip("/")
    if parts.scheme != "redis" or not parts.hostname:
        raise UserError(f"--kv-store {url!r}: expected redis://HOST:PORT/DB")
    if db and not db.isdigit():
        raise UserError(f"--kv-store {url!r}: the database must be a number, e.g. redis://{parts.hostname}:"
                        f"{port or 6379}/0")
    return url


class Breaker:
    """Open after a failure for a back-off that doubles per consecutive failure; closed again by a success."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 30.0):
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._open_until

    def success(self) -> None:
        with self._lock:
            self.failures, self._open_until = 0, 0.0

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            back_off = min(self.cap_s, self.base_s * 2 ** (self.failures - 1))
            self._open_until = time.monotonic() + back_off

    @property
    def is_open(self) -> bool:
        return not self.allow()


@dataclass
class RemoteStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0  # entries that failed verification (deleted, recomputed)
    errors: int = 0  # commands that failed or timed out (each one a miss or a skipped write)
    skipped: int = 0  # calls not sent because the breaker was open (Redis recently failed)
    evictions: int = 0  # entries our writes evicted to stay within the budget
    entries: int = 0  # entries in Redis under our budget, as of our last write
    bytes: int = 0  # their bytes, as of our last write


class RedisTier:
    """Block entries in Redis under a byte budget shared by all processes using the same `prefix`."""

    name = "redis"

    def __init__(self, url: str, budget_bytes: int, timeout_s: float = 0.25, prefix: str = PREFIX,
                 breaker: Breaker | None = None):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if budget_bytes <= 0:
            raise UserError("the Redis tier needs a byte budget > 0")
        self.url = parse_url(url)
        self.budget_bytes = int(budget_bytes)
        self.prefix = prefix
        # No client-side retries: one short timeout per call, then the breaker takes over.
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._write = self.client.register_script(_WRITE)
        self._read = self.client.register_script(_READ)
        self._drop = self.client.register_script(_DROP)
        self._errors = (redis.RedisError, OSError)
        self.breaker = breaker or Breaker()
        self.stats = RemoteStats()
        self._lock = threading.Lock()

    def _keys(self, key: str) -> dict[str, str]:
        p = self.prefix
        return {"entry": f"{p}kv:{key}", "lru": f"{p}lru", "size": f"{p}size", "bytes": f"{p}bytes",
                "clock": f"{p}clock"}

    def _call(self, script, keys: list[str], args: list):
        """The script's result, or None after counting an error / a skip (the breaker decides)."""
        if not self.breaker.allow():
            self._count(skipped=1)
            return None, False
        try:
            result = script(keys=keys, args=args)
        except self._errors:
            self.breaker.failure()
            self._count(errors=1)
            return None, False
        self.breaker.success()
        return result, True

    def read(self, key: str) -> torch.Tensor | None:
        """The verified entry (CPU) or None: absent, corrupt, Redis down or slow."""
        k = self._keys(key)
        data, _ = self._call(self._read, [k["entry"], k["lru"], k["clock"]], [key])
        if data is None:
            self._count(misses=1)
            return None
        try:
            tensor = unpack(key, data)
        except BadEntry:
            self._call(self._drop, [k["entry"], k["lru"], k["size"], k["bytes"]], [key])
            self._count(misses=1, corrupt=1)
            return None
        self._count(hits=1)
        return tensor

    def write(self, key: str, tensor: torch.Tensor) -> None:
        """Store an entry (evicting the least recently used past the budget); a failure is counted, not raised."""
        data = pack(key, tensor)
        if len(data) > self.budget_bytes:
            return
        k = self._keys(key)
        result, ok = self._call(self._write, [k["entry"], k["lru"], k["size"], k["bytes"], k["clock"]],
                                [data, self.budget_bytes, f"{self.prefix}kv:", key])
        if ok:
            evicted, total, entries = (int(x) for x in result)
            with self._lock:
                self.stats.writes += 1
                self.stats.evictions += evicted
                self.stats.bytes, self.stats.entries = total, entries

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def snapshot(self) -> dict:
        parts = urlsplit(self.url)
        where = f"redis://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"  # no password
        with self._lock:
            return {"name": self.name, "url": where, "budget_bytes": self.budget_bytes,
                    "breaker_open": self.breaker.is_open, **asdict(self.stats)}
