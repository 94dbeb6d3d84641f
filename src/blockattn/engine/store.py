"""The block KV store: content-addressed entries in memory tiers (fastest first) over an optional disk tier.

    lookup(keys) ──► tier 0 (GPU, LRU, byte budget) ──► tier 1 (CPU, LRU, byte budget) ──► disk ──► Redis ──► miss
                     hits in lower tiers are promoted to tier 0; tier-0 evictions are demoted to tier 1;
                     tier-1 evictions are dropped (the disk and Redis tiers, written through, still have them);
                     a Redis hit is also written to the local disk tier (the next lookup stays local)

Guarantees:
- an entry lives in at most one memory tier, so `bytes` per tier is what that tier really holds, and each
  tier's bytes stay within its budget (an entry larger than a tier's budget skips that tier);
- a key is computed by at most one caller at a time: the first `lookup` of a missing key *claims* it, later
  lookups get a future that the claimer resolves with `publish` (or fails with `fail`) -- so concurrent
  requests that share blocks compute each block once;
- stats per tier: hits, misses (looked up here, not found), evictions, bytes, entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field

import torch

from blockattn.engine.disk import DiskTier
from blockattn.engine.remote import RedisTier


@dataclass
class TierStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class MemoryTier:
    """An LRU map key → K/V tensor on one device, bounded in bytes. Not locked: `BlockStore` serialises access."""

    def __init__(self, name: str, device: torch.device | str, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"tier {name}: negative byte budget")
        self.name = name
        self.device = torch.device(device)
        self.budget_bytes = int(budget_bytes)
        self.stats = TierStats()
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def fits(self, tensor: torch.Tensor) -> bool:
        return nbytes(tensor) <= self.budget_bytes

    def get(self, key: str) -> torch.Tensor | None:
        """The entry (now most recently used), or None; counts a hit or a miss."""
        tensor = self._entries.get(key)
        if tensor is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return tensor

    def take(self, key: str) -> torch.Tensor:
        """Remove and return an entry (it is moving to another tier)."""
        tensor = self._entries.pop(key)
        self.stats.entries -= 1
        self.stats.bytes -= nbytes(tensor)
        return tensor

    def put(self, key: str, tensor: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Insert (moved to this tier's device). Returns (the stored tensor, the entries evicted to make room,
        oldest first). The caller checks `fits` first, so the new entry itself is never evicted."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key], []
        tensor = tensor.to(self.device)
        self._entries[key] = tensor
        self.stats.entries += 1
        self.stats.bytes += nbytes(tensor)
        evicted = []
        while self.stats.bytes > self.budget_bytes:
            old_key = next(iter(self._entries))
            evicted.append((old_key, self.take(old_key)))
            self.stats.evictions += 1
        return tensor, evicted

    def clear(self) -> None:
        self._entries.clear()
        self.stats.entries = self.stats.bytes = 0

    def snapshot(self) -> dict:
        return {"name": self.name, "device": str(self.device), "budget_bytes": self.budget_bytes,
                **asdict(self.stats)}


@dataclass
class Lookup:
    """What `BlockStore.lookup` found for a request's keys."""

    found: dict[str, torch.Tensor] = field(default_factory=dict)  # ready to use (from a memory tier or disk)
    claimed: list[str] = field(default_factory=list)  # missing everywhere: the caller must compute and publish
    waiting: dict[str, Future] = field(default_factory=dict)  # being computed by another caller right now


class BlockStore:
    """Memory tiers (fastest first) plus optional persistent tiers (local disk, then shared Redis); thread-safe."""

    def __init__(self, tiers: list[MemoryTier], disk: DiskTier | None = None, remote: RedisTier | None = None):
        if not tiers:
            raise ValueError("a block store needs at least one memory tier")
        self.tiers = tiers
        self.disk = disk
        self.remote = remote
        self._persistent = [t for t in (disk, remote) if t is not None]  # nearest first
        self.computed = 0  # blocks computed because no tier had them (the cache misses that cost a prefill)
        self.joined = 0  # lookups that waited for another caller's computation instead of computing again
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}

    # ---------------------------------------------------------------- lookup / publish
    def lookup(self, keys: list[str]) -> Lookup:
        """Find `keys` (duplicates allowed). Keys in no tier and not in flight are claimed by this caller."""
        result = Lookup()
        with self._lock:
            for key in dict.fromkeys(keys):
                tensor = self._from_memory(key)
                if tensor is not None:
                    result.found[key] = tensor
                elif key in self._inflight:
                    result.waiting[key] = self._inflight[key]
                    self.joined += 1
                else:
                    self._inflight[key] = Future()
                    result.claimed.append(key)
        # outside the lock: disk and network reads are slow, and claimed keys are ours alone
        for key in list(result.claimed):
            for i, tier in enumerate(self._persistent):
                tensor = tier.read(key)
                if tensor is not None:
                    for nearer in self._persistent[:i]:
                        nearer.write(key, tensor)
                    result.found[key] = self._resolve(key, tensor)
                    result.claimed.remove(key)
                    break
        return result

    def publish(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        """Store a freshly computed claimed entry (written through to disk and Redis); returns the stored tensor."""
        with self._lock:
            self.computed += 1
        for tier in self._persistent:
            tier.write(key, tensor)
        return self._resolve(key, tensor)

    def fail(self, keys: list[str], error: BaseException) -> None:
        """Release claimed keys whose computation failed; waiters see the error."""
        with self._lock:
            futures = [self._inflight.pop(key) for key in keys if key in self._inflight]
        for future in futures:
            future.set_exception(error)

    def _resolve(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        with self._lock:
            stored = self._admit(key, tensor)
            future = self._inflight.pop(key, None)
        if future is not None:
            future.set_result(stored)
        return stored

    # ---------------------------------------------------------------- tiers (lock held)
    def _from_memory(self, key: str) -> torch.Tensor | None:
        for i, tier in enumerate(self.tiers):
            tensor = tier.get(key)
            if tensor is not None:
                return tensor if i == 0 else self._admit(key, tier.take(key))
        return None

    def _admit(self, key: str, tensor: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Put an entry into the first tier from `start` on that can hold it, demoting what it evicts.
        Returns the entry as stored (on that tier's device), or unchanged when no memory tier can hold it."""
        for i in range(start, len(self.tiers)):
            tier = self.tiers[i]
            if tier.fits(tensor):
                stored, evicted = tier.put(key, tensor)
                for old_key, old in evicted:
                    self._admit(old_key, old, i + 1)
                return stored
        return tensor

    # ---------------------------------------------------------------- admin
    def clear(self) -> None:
        """Forget every memory-tier entry (the disk and Redis tiers are kept: they are the persistent ones)."""
        with self._lock:
            for tier in self.tiers:
                tier.clear()

    def stats(self) -> dict:
        with self._lock:
            tiers = [tier.snapshot() for tier in self.tiers]
            computed, joined = self.computed, self.joined
        return {"tiers": tiers, "disk": self.disk.snapshot() if self.disk is not None else None,
                "remote": self.remote.snapshot() if self.remote is not None else None,
                "computed": computed, "joined": joined}
