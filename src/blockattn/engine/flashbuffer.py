"""Flash attention of a query block over a request's static KV buffer, inside a CUDA graph (issue 10: TTFT).

The captured query step (`engine.graphs`) sees the whole buffer, (H_kv, capacity, D) per layer, of which only
the first `end` slots hold this request's keys; `end` is data (a device tensor), never a shape, so one graph
serves requests of every length. Flash's variable-length kernel takes exactly that: sequence boundaries as a
device tensor (`cu_seq_k`), keys read in place through a (capacity, H_kv, D) view, grouped-query heads
native. Two calls and a merge:

    context   the T query rows over slots [0, start), start = end - T, cut into S chunks of equal length;
              chunk j is sequence j of one non-causal call (the rows repeated S times)
    own       the T rows over their own T slots [start, end), causal (row i sees own slots <= i)
    merge     out = Σ_j exp(lse_j - m) · out_j / Σ_j exp(lse_j - m), m = max_j lse_j, over the S + 1 parts

Why the chunks (split-KV): one sequence of T = 64 rows is one query tile per head, 32 thread blocks for the
Llama-8B shape on 132 SMs, each walking every key alone; measured on the H200 (2026-12-03, one layer at 32k
context): 0.99 ms, against 0.13 ms for SDPA's fixed-length kernel, which splits the keys itself. Flash's
variable-length path only splits with paged K/V. S chunks make S × 32 thread blocks.

How many chunks, and whether each KV head's query heads are folded into rows of the context call, is a `Split`:
the engine times the options at start on the model's head shape (`querypath.calibrate_attention`), since the
best choice depends on the GPU, the head shape and the length; `DEFAULT_SPLIT` stands where nothing was timed.

Both kernel calls go through `flash_varlen` (tests put a reference in its place on the CPU). Whether the
kernel runs on this build and agrees with the matmul attention is probed once (`probe_flash_varlen`); if not,
the step attends with `staticops.masked_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from blockattn.engine import fusedops
from blockattn.engine.staticops import masked_attention

FLASH_VARLEN = False  # set by `probe_flash_varlen` (called once by the engine, outside any capture)
FLASH_VARLEN_ERROR: str | None = None  # why the probe said no (shown in the engine's info)
_HALF = (torch.bfloat16, torch.float16)
MAX_CHUNKS = 64


@dataclass(frozen=True)
class Split:
    """How the context call is cut: S = capacity // chunk_slots chunks (at least 1, at most MAX_CHUNKS), and
    whether each KV head's query heads are folded into rows (`_packed_context`; exact either way)."""

    chunk_slots: int = 2048
    pack_gqa: bool = False

    def chunks(self, capacity: int) -> int:
        return max(1, min(MAX_CHUNKS, capacity // max(1, self.chunk_slots)))

    def info(self) -> dict:
        return {"chunk_slots": self.chunk_slots, "pack_gqa": self.pack_gqa}


# where nothing was timed: 2048 slots a chunk, unpacked (H200, Llama-8B shape, 2026-12-03: 0.32 ms a layer at
# 32k against 1.0 ms in one chunk; scripts/gpu/probe_query_attention.py)
DEFAULT_SPLIT = Split()


def flash_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor,
                 max_q: int, max_k: int, scale: float, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Flash attention of the sequences q[cu_q[b]:cu_q[b+1]] over k/v[cu_k[b]:cu_k[b+1]]: q (total_q, H, D),
    k/v (L, H_kv, D) → out (total_q, H, D), lse (H, total_q) fp32 (natural log of the softmax denominator of
    the scaled scores). Causal aligns lower-right. `aten._flash_attention_forward`: its positional arguments
    are stable since torch 2.2; older builds return lse as (B, H, max_q), reshaped here."""
    out, lse = torch.ops.aten._flash_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal, False,
                                                       scale=scale)[:2]
    if lse.dim() == 3:  # (B, H, max_q), every sequence max_q rows long here
        lse = lse.permute(1, 0, 2).reshape(lse.shape[1], -1)
    return out, lse


def flash_applies(key: torch.Tensor) -> bool:
    """Whether a static step over `key`'s buffer can attend with `buffer_attention`."""
    return FLASH_VARLEN and key.is_cuda and key.dtype in _HALF


@dataclass(frozen=True)
class ChunkLayout:
    """Where a step's chunks lie: the same in every layer of one step (they depend only on `end`, the query
    length and the chunk count), so `QueryRowsAttention` builds it once per step, not once per layer (each
    build is ~8 small kernels; 32 layers of them showed in the captured graph)."""

    bounds: torch.Tensor  # (S + 1,) int32: chunk j covers context slots [bounds[j], bounds[j + 1])
    rows: torch.Tensor  # (S + 1,) int32: T·j, the query rows of chunk j (the rows repeated S times)
    own: torch.Tensor  # (2,) int32: [end - T, end), the query's own slots
    used: torch.Tensor  # (S + 1, 1, 1) bool: parts that hold keys (an empty chunk takes no weight)

    @staticmethod
    def build(end: torch.Tensor, t: int, s: int) -> "ChunkLayout":
        device = end.device
        start = end - t  # (1,)
        bounds = (torch.arange(s + 1, device=device) * start) // s
        used = torch.cat([bounds[1:] > bounds[:-1], torch.ones(1, dtype=torch.bool, device=device)]).view(-1, 1, 1)
        return ChunkLayout(bounds.to(torch.int32), torch.arange(s + 1, device=device, dtype=torch.int32) * t,
                           torch.cat([start, end]).to(torch.int32), used)


def buffer_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, end: torch.Tensor,
                     scale: float | None, split: Split | None = None, layout: ChunkLayout | None = None
                     ) -> torch.Tensor:
    """query (1, H, T, D), the last T of the first `end` slots of key/value (1, H_kv, capacity, D), row i
    seeing slots < end - T + 1 + i; end (1,) device tensor → (1, T, H, D) in query's dtype. `split`: how the
    context is cut (None: DEFAULT_SPLIT); `layout`: its `ChunkLayout`, if the caller keeps one per step."""
    split = DEFAULT_SPLIT if split is None else split
    _, heads, t, d = query.shape
    scale = d ** -0.5 if scale is None else scale
    q = query[0].transpose(0, 1).contiguous()  # (T, H, D): small; the buffer itself is never copied
    k, v = key[0].transpose(0, 1), value[0].transpose(0, 1)  # (capacity, H_kv, D) views
    capacity = k.shape[0]
    s = split.chunks(capacity)
    layout = ChunkLayout.build(end, t, s) if layout is None else layout
    if split.pack_gqa and heads > k.shape[1]:
        ctx, ctx_lse = _packed_context(q, k, v, s, layout.bounds, scale)
    else:
        ctx, ctx_lse = flash_varlen(q.repeat(s, 1, 1), k, v, layout.rows, layout.bounds, t, capacity, scale, False)
    own, own_lse = flash_varlen(q, k, v, layout.rows[:2], layout.own, t, t, scale, True)
    return merger(q)(ctx, ctx_lse, own, own_lse, layout.used).to(query.dtype).unsqueeze(0)


def merge_parts(ctx: torch.Tensor, ctx_lse: torch.Tensor, own: torch.Tensor, own_lse: torch.Tensor,
                used: torch.Tensor) -> torch.Tensor:
    """The S + 1 partial attentions as one: ctx (S·T, H, D) with lse (H, S·T), own (T, H, D) with lse (H, T),
    used (S + 1, 1, 1) → (T, H, D) fp32: out = Σ_j exp(lse_j - m) · out_j / Σ_j exp(lse_j - m)."""
    t, heads, d = own.shape
    s = ctx.shape[0] // t
    outs = torch.cat([ctx.view(s, t, heads, d), own.view(1, t, heads, d)]).float()  # (S + 1, T, H, D)
    lses = torch.cat([ctx_lse.view(heads, s, t), own_lse.view(heads, 1, t)], dim=1).permute(1, 2, 0)  # (S+1, T, H)
    # an empty chunk (a context shorter than S slots) takes no weight, whatever its kernel wrote
    lses = torch.where(used, lses.float(), float("-inf"))
    weights = torch.exp(lses - lses.amax(dim=0, keepdim=True))  # (S + 1, T, H)
    outs = torch.where(used.unsqueeze(-1), outs, 0.0)
    return (weights.unsqueeze(-1) * outs).sum(dim=0) / weights.sum(dim=0).unsqueeze(-1)


_COMPILED_MERGE: list = []  # [the compiled merge_parts], built on first use on CUDA
MERGE_ERROR: str | None = None  # why the compiled merge is not used (shown in the engine's info)


def merger(q: torch.Tensor):
    """merge_parts, compiled into one or two kernels in a step being graph-captured on CUDA (~12 small ones
    otherwise, in every layer); the plain function elsewhere (an eager call would pay the compiled function's
    host time every time) or once compiling it failed."""
    if not q.is_cuda or MERGE_ERROR is not None or not fusedops.capturing_now():  # eager: host time would dominate
        return merge_parts
    if not _COMPILED_MERGE:
        _COMPILED_MERGE.append(torch.compile(merge_parts, dynamic=True))
    compiled = _COMPILED_MERGE[0]

    def run(*args):
        global MERGE_ERROR
        try:
            return compiled(*args)
        except Exception as exc:  # noqa: BLE001 - the compiled merge is an optimisation, never a failure
            MERGE_ERROR = f"{type(exc).__name__}: {exc}"[:300]
            return merge_parts(*args)

    return run


def _packed_context(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, s: int, bounds: torch.Tensor,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The context call with the G query heads of each KV head folded into rows: q (T, H, D) as (G·T, H_kv, D)
    rows of H_kv heads, so that a KV head's keys are read once per tile of rows, not once per query head (the
    context part is not causal: every row sees every context slot, whichever head it came from). Returns what
    the plain call does: out (S·T, H, D), lse (H, S·T), query head h = kv·G + g."""
    t, heads, d = q.shape
    kv_heads = k.shape[1]
    g = heads // kv_heads
    packed = q.view(t, kv_heads, g, d).permute(2, 0, 1, 3).reshape(g * t, kv_heads, d)  # row = g·T + i
    rows = torch.arange(s + 1, device=q.device, dtype=torch.int32) * (g * t)
    out, lse = flash_varlen(packed.repeat(s, 1, 1), k, v, rows, bounds.to(torch.int32), g * t, k.shape[0], scale,
                            False)
    out = out.view(s, g, t, kv_heads, d).permute(0, 2, 3, 1, 4).reshape(s * t, heads, d)
    lse = lse.view(kv_heads, s, g, t).permute(0, 2, 1, 3).reshape(heads, s * t)
    return out, lse


def probe_flash_varlen(device: torch.device) -> bool:
    """Run `buffer_attention` once on small bf16 cases laid out like a request's buffer (with and without
    context, chunked and not) and compare it with `masked_attention`; remember whether it ran and agreed
    (a torch build without the kernel, or whose kernel refuses the strided view, keeps the matmuls)."""
    global FLASH_VARLEN, FLASH_VARLEN_ERROR
    FLASH_VARLEN, FLASH_VARLEN_ERROR = False, None
    if torch.device(device).type != "cuda":
        return False
    try:
        gen = torch.Generator(device=device).manual_seed(0)
        heads, kv_heads, t, d = 4, 2, 16, 64
        worst = 0.0
        slots = DEFAULT_SPLIT.chunk_slots
        for capacity, end, split in ((96, 70, None), (96, 16, None), (3 * slots, 2 * slots + 5, None),
                                     (3 * slots, 2 * slots + 5, Split(64, pack_gqa=True))):
            buffer = torch.randn(2, kv_heads, capacity, d, device=device, dtype=torch.bfloat16, generator=gen)
            query = torch.randn(1, heads, t, d, device=device, dtype=torch.bfloat16, generator=gen)
            key, value = buffer[0].unsqueeze(0), buffer[1].unsqueeze(0)
            got = buffer_attention(query, key, value, torch.tensor([end], device=device), None, split)
            visible = (torch.arange(capacity, device=device).view(1, -1)
                       <= torch.arange(end - t, end, device=device).view(-1, 1))
            rows = query.reshape(1, kv_heads, heads // kv_heads * t, d)
            ref = masked_attention(rows.float(), key.float(), value.float(), visible.repeat(heads // kv_heads, 1),
                                   None).reshape(1, heads, t, d).transpose(1, 2)
            worst = max(worst, float((got.float() - ref).abs().max()))
        FLASH_VARLEN = worst <= 2e-2
        FLASH_VARLEN_ERROR = None if FLASH_VARLEN else f"disagrees with the matmul attention by {worst:.3g}"
    except (RuntimeError, TypeError, NotImplementedError, AttributeError, ValueError) as exc:
        FLASH_VARLEN_ERROR = f"{type(exc).__name__}: {exc}"[:300]
    return FLASH_VARLEN
