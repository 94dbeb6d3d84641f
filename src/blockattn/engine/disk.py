"""The disk tier: one safetensors file per block, verified on every read, surviving restarts.

Layout: DIR/<key[:2]>/<key>.safetensors holding one tensor "kv" and metadata {format, key, sha256 of the
tensor bytes}. Writes go to a temporary file renamed into place, so a reader (or a process killed mid-write)
never sees half a file. A file that fails to parse, names another key or format, or whose bytes do not hash
to the recorded checksum is corrupt: it is deleted, counted, and reported as a miss -- never used.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from blockattn.engine.keys import KV_FORMAT

_TENSOR = "kv"
_SUFFIX = ".safetensors"


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
    entries: int = 0
    bytes: int = 0


class DiskTier:
    """Block K/V files under `root`. Thread-safe; several processes may share a directory."""

    name = "disk"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from blockattn.errors import UserError

            raise UserError(f"cache dir {self.root}: cannot create ({exc.strerror})") from None
        self._lock = threading.Lock()
        self.stats = DiskStats()
        for path in self.root.glob(f"*/*{_SUFFIX}"):
            self.stats.entries += 1
            self.stats.bytes += path.stat().st_size

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def read(self, key: str) -> torch.Tensor | None:
        """The verified entry for `key` (on the CPU), or None when absent or corrupt."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            self._count(misses=1)
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensor = f.get_tensor(_TENSOR)
            ok = (meta.get("format") == KV_FORMAT and meta.get("key") == key
                  and meta.get("sha256") == tensor_sha256(tensor))
        except Exception:  # noqa: BLE001 - any unreadable file is corrupt, whatever the parser raised
            ok = False
        if not ok:
            self._drop(path)
            self._count(misses=1, corrupt=1)
            return None
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
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            self._count(write_errors=1)
            return
        self._count(writes=1, entries=1, bytes=path.stat().st_size)

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
            return {"name": self.name, "path": str(self.root), **asdict(self.stats)}
