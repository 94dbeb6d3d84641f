"""The disk tier: one safetensors file per block, verified on every read, surviving restarts.

Layout: DIR/<key[:2]>/<key>.safetensors holding one tensor "kv" and metadata {format, key, sha256 of the
tensor bytes}. Writes go to a temporary file renamed into place, so a reader (or a process killed mid-write)
never sees half a file. A file that fails to parse, names another key or format, or whose bytes do not hash
to the recorded checksum is corrupt: it is deleted, counted, and reported as a miss -- never used.

Budget (`max_bytes`, `--cache-dir-max-gb`): an LRU over every process sharing the directory. A verified read
touches the file's mtime (= last use); a write renames its finished temporary file into place while holding
an exclusive `fcntl` lock on DIR/.lock, after deleting the least recently used entries until the new one fits.
So the entries in the directory never exceed the budget; what is beyond it at any moment is the temporary
files of writes in flight (one per writing thread). Temporary files left by a killed process are removed when
a tier opens the directory (their name carries the dead writer's pid).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from blockattn.engine.keys import KV_FORMAT

_TENSOR = "kv"
_SUFFIX = ".safetensors"
_LOCK = ".lock"


_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}


def _read_entry(f) -> tuple[dict, torch.Tensor]:
    """(metadata, tensor "kv") of an open safetensors file, read once into one buffer (the tensor is a view
    of it: no second copy). The format: u64 little-endian header length, a JSON header naming each tensor's
    dtype, shape and byte range after the header, and "__metadata__"; anything else raises ValueError."""
    size = os.fstat(f.fileno()).st_size
    buffer = torch.empty(size, dtype=torch.uint8)
    if f.readinto(memoryview(buffer.numpy())) != size or size < 8:
        raise ValueError("short read")
    (header_len,) = struct.unpack("<Q", bytes(buffer[:8].numpy()))
    if 8 + header_len > size:
        raise ValueError("header runs past the end of the file")
    header = json.loads(bytes(buffer[8:8 + header_len].numpy()))
    entry = header[_TENSOR]
    dtype, shape = _DTYPES[entry["dtype"]], [int(n) for n in entry["shape"]]
    start, end = (8 + header_len + int(o) for o in entry["data_offsets"])
    numel = 1
    for n in shape:
        numel *= n
    if not 8 + header_len <= start <= end <= size or end - start != numel * dtype.itemsize:
        raise ValueError("tensor bytes out of place")
    return header.get("__metadata__") or {}, buffer[start:end].view(dtype).view(shape)


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a CPU tensor's raw bytes (any dtype, bf16 included)."""
    flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)  # (numel * itemsize,)
    return hashlib.sha256(flat.numpy()).hexdigest()


@dataclass
class DiskStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0  # entries found unreadable or failing their checksum (deleted, recomputed)
    write_errors: int = 0  # writes that failed (disk full, permissions): the cache is best effort
    evictions: int = 0  # entries this process deleted to keep the directory within its budget
    entries: int = 0
    bytes: int = 0


class DiskTier:
    """Block K/V files under `root`. Thread-safe; several processes may share a directory."""

    name = "disk"

    def __init__(self, root: str | Path, max_bytes: int | None = None):
        if max_bytes is not None and max_bytes <= 0:
            from blockattn.errors import UserError

            raise UserError("the cache directory's budget must be > 0 bytes")
        self.max_bytes = max_bytes
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from blockattn.errors import UserError

            raise UserError(f"cache dir {self.root}: cannot create ({exc.strerror})") from None
        self._lock = threading.Lock()
        self.stats = DiskStats()
        self._remove_dead_writers_temporaries()
        for _, size, _ in self._entries():
            self.stats.entries += 1
            self.stats.bytes += size

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every entry now in the directory (any process's)."""
        found = []
        for path in self.root.glob(f"*/*{_SUFFIX}"):
            try:
                st = path.stat()
            except FileNotFoundError:  # deleted by another process meanwhile
                continue
            found.append((st.st_mtime, st.st_size, path))
        return found

    def _remove_dead_writers_temporaries(self) -> None:
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                pid = int(tmp.name.split(".")[2])
                os.kill(pid, 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except (ValueError, IndexError, PermissionError):  # not ours, or another user's live process
                continue

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def read(self, key: str) -> torch.Tensor | None:
        """The verified entry for `key` (on the CPU), or None when absent or corrupt."""
        path = self.path(key)
        try:
            # One open, the whole file read through that descriptor. safetensors' `safe_open(...).get_tensor`
            # opens the file a second time by name (torch's `UntypedStorage.from_file`): an entry evicted and
            # written again by other processes between the two opens made a fresh, whole entry look corrupt
            # and get dropped (seen in CI under load, test_diskstress).
            with open(path, "rb") as f:
                meta, tensor = _read_entry(f)
        except FileNotFoundError:  # absent, or evicted by another process: a plain miss
            self._count(misses=1)
            return None
        except Exception:  # noqa: BLE001 - any unreadable file is corrupt, whatever the parser raised
            ok = False
        else:
            ok = (meta.get("format") == KV_FORMAT and meta.get("key") == key
                  and meta.get("sha256") == tensor_sha256(tensor))
        if not ok:
            self._drop(path)
            self._count(misses=1, corrupt=1)
            return None
        try:
            os.utime(path)  # last use, for the LRU shared by every process on this directory
        except OSError:
            pass
        self._count(hits=1)
        return tensor

    def write(self, key: str, tensor: torch.Tensor) -> None:
        """Store `tensor` under `key` (atomically; a failure is counted, not raised)."""
        from safetensors.torch import save_file

        path = self.path(key)
        if path.is_file():
            return
        cpu = tensor.detach().to("cpu").contiguous()
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"format": KV_FORMAT, "key": key, "sha256": tensor_sha256(cpu)}
            save_file({_TENSOR: cpu}, str(tmp), metadata=meta)
            size = tmp.stat().st_size
            if self.max_bytes is None:
                os.replace(tmp, path)
            elif not self._admit(tmp, path, size):
                tmp.unlink(missing_ok=True)
                return
        except OSError:
            tmp.unlink(missing_ok=True)
            self._count(write_errors=1)
            return
        if self.max_bytes is None:
            self._count(writes=1, entries=1, bytes=size)

    def _admit(self, tmp: Path, path: Path, size: int) -> bool:
        """Under the directory lock: evict least recently used entries until `size` more bytes fit the budget,
        then rename `tmp` into place. False when the entry alone is over the budget (not stored)."""
        if size > self.max_bytes:
            return False
        with open(self.root / _LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            entries = sorted(self._entries())  # oldest use first
            total = sum(s for _, s, _ in entries)
            evicted = 0
            for _, old_size, old in entries:
                if total + size <= self.max_bytes:
                    break
                old.unlink(missing_ok=True)
                total -= old_size
                evicted += 1
            os.replace(tmp, path)
            with self._lock:  # the directory's real totals, all processes included
                self.stats.writes += 1
                self.stats.evictions += evicted
                self.stats.entries, self.stats.bytes = len(entries) - evicted + 1, total + size
        return True

    def _drop(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            return
        self._count(entries=-1, bytes=-size)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def snapshot(self) -> dict:
        with self._lock:
            return {"name": self.name, "path": str(self.root), "budget_bytes": self.max_bytes, **asdict(self.stats)}
