"""Placing cached blocks into a request's KV buffer, each moved from its native position to its offset.

A block's K/V was computed at positions start.. (0, or after the shared sink); placed at `offset` its keys are
re-rotated by Δ = offset - start (`attention.rope`), its values copied as they are. All blocks' keys move in
one pass: they are gathered (one `torch.cat`) and rotated into the buffer with per-position angles, so the
cost is two passes over the keys and one over the values whatever the number of blocks. On CUDA that
rotation is compiled into one fused kernel (eager, bf16 keys take ~4 passes through an fp32 temporary: for
Llama-8B at 32k tokens ~10 ms against ~1 ms); fp32 keys (CPU) are rotated in place in the buffer.

With `fused` (CUDA + Triton) all blocks are placed by one Triton kernel launch instead (`fused_assemble`): keys read
once, rotated in registers, written once, values copied in the same pass, no gather. The kernel's first
placement is checked against this torch path; a mismatch or an error switches it off (logged), never a
wrong or failed request.
"""

from __future__ import annotations

import logging

import torch

from blockattn.attention.rope import RopeSpec, apply_rotation, rotation_tables
from blockattn.engine import fused_assemble
from blockattn.engine.cudagraph import to_device
from blockattn.engine.kvbuffer import SequenceKV

log = logging.getLogger(__name__)


def _rotate_into(dst: torch.Tensor, src: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """dst ← src rotated by (cos, sin); src, dst (..., T, D), cos/sin (T, rotary_dim)."""
    apply_rotation(src, cos, sin, out=dst)


class BlockPlacer:
    """Copies blocks into a `SequenceKV`, re-rotating keys; `compiled` fuses the rotation (falls back to eager
    if compilation fails, so a missing compiler costs speed, never a request)."""

    def __init__(self, rope: RopeSpec, compiled: bool, fused: bool = False):
        self.rope = rope
        self._ropes: dict[str, RopeSpec] = {}  # device -> the spec with inv_freq there (`_rope_on`)
        self._rotate = torch.compile(_rotate_into, dynamic=True) if compiled else _rotate_into
        self.compiled = compiled
        self.fused = fused  # place with the Triton kernel where it can run (CUDA)
        self._fused_checked = False  # the kernel's first placement is compared with the torch path
        self.fused_error: str | None = None

    def place(self, kv: SequenceKV, parts: list[tuple[torch.Tensor, int, int]]) -> int:
        """Write `parts` = [(entry (n_layers, 2, H_kv, T, D), native start, offset), ...] into `kv`.

        Offsets must tile [0, n) in order; the buffer's length becomes n, which is returned."""
        if not parts:
            kv.set_length(0)
            return 0
        buffer = kv.buffer
        expected = 0
        for entry, _, offset in parts:
            if offset != expected:
                raise ValueError(f"block placed at {offset}, expected {expected}: offsets must tile the context")
            expected += entry.shape[3]
        n = expected
        if n > kv.capacity:
            raise ValueError(f"{n} context tokens exceed the KV buffer capacity {kv.capacity}")
        entries = [entry.to(buffer.device, non_blocking=True) for entry, _, _ in parts]
        if self.fused and fused_assemble.fused_available(buffer.device) and self._place_fused(kv, entries, parts):
            kv.set_length(n)
            return n
        self._place_torch(buffer, entries, parts, n)
        kv.set_length(n)
        return n

    def _place_fused(self, kv: SequenceKV, entries: list[torch.Tensor], parts) -> bool:
        """Place with the Triton kernel; False (and the kernel off) when it fails or disagrees the first time."""
        buffer = kv.buffer
        # the deltas uploaded through pinned memory and inv_freq kept on the device: moved from pageable memory,
        # each waited for everything queued before it, the missing blocks' prefill included (H200, 2026-12-04:
        # the serving requests' "assemble" phase took 2.9 ms of host time). Computing the tables on the host
        # instead was worse there: its fp64 sin/cos took ~14 ms of host time (profile_serve_prefill.py)
        deltas = to_device(torch.tensor([offset - start for _, start, offset in parts]), buffer.device)
        cos, sin = rotation_tables(deltas, self._rope_on(buffer.device), buffer.device)
        n = sum(e.shape[3] for e in entries)
        try:
            contiguous = [entry.contiguous() for entry in entries]  # kept alive until the kernel has read them
            fused_assemble.place_blocks(buffer, contiguous, [offset for _, _, offset in parts], cos, sin)
            if not self._fused_checked:  # first and last layer, every position: every block, little memory
                ends = [0, buffer.shape[0] - 1]
                reference = torch.empty_like(buffer[ends, :, :, :n])
                self._place_torch(reference, [e[ends] for e in entries], parts, n)
                got = buffer[ends, :, :, :n].float()
                # bf16: the two paths round the same fp32 result, at most an ulp apart
                tol = 1e-4 if buffer.dtype == torch.float32 else 2e-2 * float(reference.float().abs().max()) + 1e-3
                worst = float((got - reference.float()).abs().max())
                if not worst <= tol:
                    raise RuntimeError(f"fused placement differs from the torch path by {worst:.3g} (> {tol:.3g})")
                self._fused_checked = True
            return True
        except Exception as exc:  # noqa: BLE001 - e.g. no compiler, or a kernel bug: keep serving, correctly
            self.fused, self.fused_error = False, f"{type(exc).__name__}: {exc}"
            log.warning("fused block placement off (%s); using the torch path", self.fused_error)
            return False

    def _rope_on(self, device: torch.device) -> RopeSpec:
        """The RoPE spec with its frequencies on `device` in fp64 (copied once per device)."""
        key = str(device)
        spec = self._ropes.get(key)
        if spec is None:
            spec = self._ropes[key] = RopeSpec(self.rope.inv_freq.to(device=device, dtype=torch.float64),
                                               self.rope.rotary_dim)
        return spec

    def _place_torch(self, buffer: torch.Tensor, entries: list[torch.Tensor], parts, n: int) -> None:
        """buffer (n_layers, 2, H_kv, >= n, D)[..., :n] ← the entries, keys rotated (gather + one rotation)."""
        # values: position-free, gathered into one copy (a copy per block costs a launch each: ~54 per request in
        # the serving benchmark)
        buffer[:, 1, :, :n] = entries[0][:, 1] if len(entries) == 1 else torch.cat([e[:, 1] for e in entries], dim=2)
        deltas = [offset - start for _, start, offset in parts]
        keys_dst = buffer[:, 0, :, :n]  # (n_layers, H_kv, n, D)
        keys_src = entries[0][:, 0] if len(entries) == 1 else torch.cat([e[:, 0] for e in entries], dim=2)
        if not any(deltas):
            keys_dst.copy_(keys_src)
        else:
            lengths = torch.tensor([e.shape[3] for e in entries])
            per_position = torch.repeat_interleave(torch.tensor(deltas), lengths)  # (n,)
            cos, sin = rotation_tables(per_position, self.rope, buffer.device)  # (n, rotary_dim) each
            self._rotate_keys(keys_dst, keys_src, cos, sin)

    def _rotate_keys(self, dst, src, cos, sin) -> None:
        try:
            self._rotate(dst, src, cos, sin)
        except Exception as exc:  # noqa: BLE001 - e.g. no C/Triton compiler: keep serving, eagerly
            if not self.compiled:
                raise
            log.warning("compiled key rotation failed (%s: %s); using the eager rotation", type(exc).__name__, exc)
            self._rotate, self.compiled = _rotate_into, False
            _rotate_into(dst, src, cos, sin)
