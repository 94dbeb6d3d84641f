"""`blockattn bench attention`: the block mask through FlexAttention vs the same mask as a dense SDPA mask vs
plain causal SDPA (the full-attention floor), forward and forward+backward, with peak and mask memory.

The layout is RAG-shaped: context blocks of `block_tokens` tokens, then a `query_tokens` query block. Flex
skips the tiles the block mask empties, so its cost grows with N·block_tokens rather than N²; the dense
mask costs N² bytes and a masked (non-flash) kernel.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.progress import Progress

from blockattn.attention.interface import compiled_flex_attention
from blockattn.attention.layout import BlockLayout, BlockSpec
from blockattn.attention.masks import dense_block_mask, flex_block_mask
from blockattn.reportio import save_figure, token_axis, write_report
from blockattn.bench.timing import median_ms, peak_memory_mb

METHODS = ("flex", "dense", "causal")


@dataclass
class AttentionBenchConfig:
    sizes: list[int] = field(default_factory=lambda: [2048, 8192, 16384, 32768])
    device: str = "cuda"
    dtype: str = "bfloat16"
    heads: int = 32  # query heads (Llama-8B shape)
    kv_heads: int = 8  # grouped-query attention
    head_dim: int = 128
    block_tokens: int = 512  # tokens per context block
    query_tokens: int = 64
    warmup: int = 2
    repeat: int = 5


def rag_layout(n: int, block_tokens: int, query_tokens: int) -> BlockLayout:
    """Context blocks of `block_tokens` (the last one shorter) filling n − query_tokens, then the query."""
    context = n - query_tokens
    lengths = [block_tokens] * (context // block_tokens) + ([context % block_tokens] if context % block_tokens else [])
    return BlockLayout.build([BlockSpec(length) for length in lengths] + [BlockSpec(query_tokens, is_query=True)])


def mask_nbytes(mask) -> int:
    if isinstance(mask, torch.Tensor):
        return mask.numel() * mask.element_size()
    tensors = [t for t in vars(mask).values() if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def _attention_fn(method: str, layout: BlockLayout, cfg: AttentionBenchConfig, device: torch.device):
    """(callable(q, k, v) -> out, mask or None)."""
    groups = cfg.heads // cfg.kv_heads
    if method == "flex":
        mask = flex_block_mask(layout, device)
        flex = compiled_flex_attention()
        return (lambda q, k, v: flex(q, k, v, block_mask=mask, enable_gqa=True)), mask
    if method == "dense":
        mask = dense_block_mask(layout, device)

        def dense(q, k, v):  # what the dense backend does: expand KV heads, SDPA with a boolean mask
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        return dense, mask
    return (lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=True)), None


def bench_one(method: str, n: int, cfg: AttentionBenchConfig, device: torch.device) -> dict:
    layout = rag_layout(n, cfg.block_tokens, cfg.query_tokens)
    dtype = getattr(torch, cfg.dtype)
    gen = torch.Generator(device=device).manual_seed(n)

    def tensor(heads):  # (1, heads, N, D)
        return torch.randn(1, heads, n, cfg.head_dim, device=device, dtype=dtype, generator=gen)

    q, k, v = tensor(cfg.heads), tensor(cfg.kv_heads), tensor(cfg.kv_heads)
    fn, mask = _attention_fn(method, layout, cfg, device)
    row = {"n": n, "method": method, "mask_bytes": mask_nbytes(mask) if mask is not None else 0}
    with torch.no_grad():
        row["fwd_ms"] = median_ms(lambda: fn(q, k, v), device, cfg.warmup, cfg.repeat)
        row["fwd_peak_mb"] = peak_memory_mb(lambda: fn(q, k, v), device)
    # FlexAttention has no CPU backward in torch 2.13; everything else does
    if method == "flex" and device.type != "cuda":
        row["fwdbwd_ms"], row["fwdbwd_peak_mb"] = None, None
        return row
    qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
    grad_out = torch.randn_like(q)

    def fwd_bwd():
        out = fn(qg, kg, vg)
        torch.autograd.grad(out, (qg, kg, vg), grad_out)

    row["fwdbwd_ms"] = median_ms(fwd_bwd, device, cfg.warmup, cfg.repeat)
    row["fwdbwd_peak_mb"] = peak_memory_mb(fwd_bwd, device)
    return row


def add_ratios(rows: list[dict]) -> list[dict]:
    """Per size: each method's time over Flex's (same run, so machine drift cancels)."""
    ratios = []
    for n in sorted({r["n"] for r in rows}):
        by = {r["method"]: r for r in rows if r["n"] == n}
        flex = by.get("flex")
        entry = {"n": n}
        for method in ("dense", "causal"):
            if flex and method in by:
                for key in ("fwd_ms", "fwdbwd_ms"):
                    if flex.get(key) and by[method].get(key):
                        entry[f"{method}_over_flex_{key[:-3]}"] = by[method][key] / flex[key]
        ratios.append(entry)
    return ratios


def run(cfg: AttentionBenchConfig) -> dict:
    device = torch.device(cfg.device)
    rows = []
    with Progress(transient=True) as progress:
        task = progress.add_task("attention benchmark", total=len(cfg.sizes) * len(METHODS))
        for n in cfg.sizes:
            for method in METHODS:
                progress.update(task, description=f"{method} @ {n}")
                rows.append(bench_one(method, n, cfg, device))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                progress.advance(task)
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return {"config": asdict(cfg), "env": env, "rows": rows, "ratios": add_ratios(rows)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "fwd_ms", "forward"), (axes[1], "fwdbwd_ms", "forward + backward")):
        for method in METHODS:
            pts = [(r["n"], r[key]) for r in result["rows"] if r["method"] == method and r.get(key)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=method)
        token_axis(ax, result["config"]["sizes"])
        ax.set(yscale="log", xlabel="sequence length (tokens)", ylabel="ms", title=title)
        ax.legend()
    env = result["env"]
    fig.suptitle(f"block-mask attention, {env.get('gpu', 'CPU')}, {result['config']['dtype']}, "
                 f"blocks of {result['config']['block_tokens']} + {result['config']['query_tokens']}-token query")
    save_figure(fig, path)


def write(result: dict, out: Path) -> Path:
    return write_report(result, out, plot)
