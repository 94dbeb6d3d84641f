"""One block entry as bytes, for stores that hold bytes (Redis): a small header + the tensor's raw bytes.

    b"BKV1" | u32 header length | JSON header {format, key, dtype, shape, sha256} | raw tensor bytes

`unpack` checks what a disk entry is checked for -- the format, the key it was stored under, the SHA-256 of the
tensor bytes -- plus the length, so a truncated, corrupted or misplaced entry is rejected, never used.
"""

from __future__ import annotations

import json
import struct

import torch

from blockattn.engine.disk import tensor_sha256
from blockattn.engine.keys import KV_FORMAT

_MAGIC = b"BKV1"
_LEN = struct.Struct("<I")
_DTYPES = {str(d): d for d in (torch.float32, torch.bfloat16, torch.float16, torch.float64)}


class BadEntry(ValueError):
    """The bytes are not a whole, verified entry for the key asked for."""


def pack(key: str, tensor: torch.Tensor) -> bytes:
    cpu = tensor.detach().to("cpu").contiguous()
    header = json.dumps({"format": KV_FORMAT, "key": key, "dtype": str(cpu.dtype), "shape": list(cpu.shape),
                         "sha256": tensor_sha256(cpu)}).encode()
    raw = cpu.reshape(-1).view(torch.uint8).numpy().tobytes()  # (numel * itemsize,)
    return _MAGIC + _LEN.pack(len(header)) + header + raw


def unpack(key: str, data: bytes) -> torch.Tensor:
    """The verified tensor (CPU) stored as `data` under `key`; BadEntry when anything does not check out."""
    start = len(_MAGIC) + _LEN.size
    if len(data) < start or data[:len(_MAGIC)] != _MAGIC:
        raise BadEntry("not a block entry")
    (size,) = _LEN.unpack_from(data, len(_MAGIC))
    try:
        header = json.loads(data[start:start + size])
        dtype, shape = _DTYPES[header["dtype"]], [int(n) for n in header["shape"]]
    except (ValueError, KeyError, TypeError):
        raise BadEntry("unreadable header") from None
    if header.get("format") != KV_FORMAT or header.get("key") != key:
        raise BadEntry("another format or key")
    raw = data[start + size:]
    numel = 1
    for n in shape:
        numel *= n
    if len(raw) != numel * dtype.itemsize:
        raise BadEntry("truncated")
    tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
    if tensor_sha256(tensor) != header.get("sha256"):
        raise BadEntry("checksum mismatch")
    return tensor
