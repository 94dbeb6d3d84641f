"""`blockattn bench decode`: decode speed -- tokens/s of one stream and of many streams batched (issue 10).

For each model, a prompt of `context_tokens` context tokens in blocks of `block_tokens` + a short question
(random ids, seeded), then `new_tokens` greedy tokens, each one's id brought to the host (as a real generation
must, to sample and stream it). Timed after `warmup` runs, device-synchronised; tokens/s = new tokens / time.

    engine         the engine as configured by default (CUDA: SDPA without cuDNN, decode graphs, merged LoRA,
                   batched decode from the arena, graph-replayed)
    engine_unfused the same without the fused norms / rotary / SwiGLU (`engine.fusedops`, on by default on CUDA)
    engine_compiled  the same with `compile_decode` (torch.compile fuses each static step before capture);
                   block mode only, and only the widest batch (each new shape is a compilation)
    engine_eager   the engine with decode graphs and the adapter merge off (what issue 10 measured, minus cuDNN)
    hf_generate    plain transformers `generate` on the base model (SDPA, DynamicCache), same prompt as one
                   sequence, full attention: decode tokens/s = (N - 1) / (t(N tokens) - t(1 token))

The two comparison variants decode `baseline_tokens` (16) tokens, timed once after a warm-up: they are
10-50× slower and the lent GPU's time is short.

each in block mode (the shipped adapter on, for SmolLM2) and full mode (adapter off); then `streams` requests
decoded together by `decode_batch` (the server's continuous batching): tokens/s per stream and in total.
Every measurement has its own try/except and the run stops starting new ones after `time_budget_s`.

    python -m blockattn bench decode --device cuda --out reports/bench_decode.json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from blockattn.bench.models import build
from blockattn.reportio import save_figure, write_report
from blockattn.bench.ttft import environment, prompt_blocks

GOALS = {"smollm2_single_stream_tokens_s": 400, "llama8b_single_stream_tokens_s": 150,
         "smollm2_64_streams_total_tokens_s": 10000}


@dataclass
class DecodeBenchConfig:
    models: list[str] = field(default_factory=lambda: ["smollm2", "llama8b"])
    device: str = "cuda"
    dtype: str | None = None  # None: bfloat16 on CUDA, float32 on CPU
    context_tokens: int = 1536  # issue 10's RAG prompt: 10 passages, ~1.5k tokens
    block_tokens: int = 160
    question_tokens: int = 32
    new_tokens: int = 64
    baseline_tokens: int = 16  # new tokens for the slow comparison variants (engine_eager, hf_generate), timed once
    streams: list[int] = field(default_factory=lambda: [1, 8, 64])  # batched decode widths (1 = decode_batch alone)
    warmup: int = 1
    repeat: int = 3
    variants: list[str] = field(default_factory=lambda: ["engine", "engine_unfused", "engine_compiled", "engine_eager",
                                                         "hf_generate"])
    adapter: str = "default"  # SmolLM2's shipped block adapter ("none": base model only)
    time_budget_s: float = 150.0
    seed: int = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_of(fn, device: torch.device, warmup: int, repeat: int) -> float:
    """Median seconds of `fn()` (host-timed around a device sync: the token ids reach the host every step)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def single_stream(engine, blocks, question, mode: str, cfg: DecodeBenchConfig, device: torch.device,
                  new_tokens: int | None = None, repeat: int | None = None) -> dict:
    """Greedy decode of one request; prefill outside the timed part."""
    new_tokens, repeat = new_tokens or cfg.new_tokens, repeat or cfg.repeat
    holder = {}

    def setup():
        holder.pop("state", None)  # the previous buffer back to the pool first: its decode graph gets reused
        holder["state"] = engine.prefill(blocks, question, mode=mode, max_new_tokens=new_tokens)

    def decode():
        state = holder["state"]
        token = int(torch.argmax(state.logits[-1]))
        for _ in range(new_tokens):
            token = int(torch.argmax(engine.decode_one_token(state, token)))

    def once():
        setup()
        _sync(device)
        t0 = time.perf_counter()
        decode()
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(cfg.warmup):
        once()
    seconds = sorted(once() for _ in range(repeat))[repeat // 2]
    return {"tokens_per_s": new_tokens / seconds, "ms_per_token": seconds / new_tokens * 1e3,
            "timed_tokens": new_tokens}


def batched(engine, blocks, question, mode: str, streams: int, cfg: DecodeBenchConfig, device: torch.device) -> dict:
    """`streams` requests (the same cached blocks, each its own buffer) decoded together by `decode_batch`."""
    def once():
        states = [engine.prefill(blocks, question, mode=mode, max_new_tokens=cfg.new_tokens) for _ in range(streams)]
        tokens = [int(torch.argmax(s.logits[-1])) for s in states]
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(cfg.new_tokens):
            tokens = torch.argmax(engine.decode_batch(states, tokens), dim=-1).tolist()
        _sync(device)
        return time.perf_counter() - t0

    once() if cfg.warmup else None
    seconds = once()
    return {"streams": streams, "total_tokens_per_s": streams * cfg.new_tokens / seconds,
            "per_stream_tokens_per_s": cfg.new_tokens / seconds, "ms_per_step": seconds / cfg.new_tokens * 1e3}


def hf_generate(model, blocks, question, cfg: DecodeBenchConfig, device: torch.device) -> dict:
    """Plain transformers generation over the same tokens as one full-attention sequence."""
    ids = torch.tensor([sum(blocks, []) + question], device=device)

    def gen(n):
        return lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                      min_new_tokens=n, do_sample=False, pad_token_id=0)

    n = cfg.baseline_tokens
    one = _best_of(gen(1), device, cfg.warmup, 1)
    many = _best_of(gen(n), device, cfg.warmup, 1)
    seconds = max(many - one, 1e-9)
    return {"tokens_per_s": (n - 1) / seconds, "ms_per_token": seconds / (n - 1) * 1e3, "ttft_ms": one * 1e3,
            "timed_tokens": n - 1}


def _adapter_for(name: str, bm, cfg: DecodeBenchConfig):
    if name != "smollm2" or cfg.adapter == "none":
        return None
    from blockattn.adapter import load_block_adapter
    from blockattn.engine.service import resolve_adapter

    path, _ = resolve_adapter(cfg.adapter, "smollm2-135m-instruct")
    return load_block_adapter(bm.model, path) if path is not None else None


VARIANTS = ("engine", "engine_unfused", "engine_compiled", "engine_eager", "hf_generate")


def engine_configs():
    from blockattn.engine.engine import EngineConfig

    return {"engine": EngineConfig(), "engine_unfused": EngineConfig(fused_ops=False),
            "engine_compiled": EngineConfig(compile_decode=True),
            "engine_eager": EngineConfig(decode_graphs=False, merge_adapter=False, batch_graphs=False)}


def bench_model(name: str, cfg: DecodeBenchConfig, device: torch.device, started: float, log,
                flush=lambda rows, skipped: None) -> tuple[list, list]:
    from blockattn.engine.engine import BlockEngine

    rows, skipped = [], []
    over = lambda: time.monotonic() - started > cfg.time_budget_s  # noqa: E731
    t0 = time.monotonic()
    bm = build(name, cfg.device, cfg.dtype)
    log(f"{bm.name}: {bm.n_params / 1e9:.2f}B params, {bm.dtype}, ready in {time.monotonic() - t0:.1f}s")
    vocab = bm.model.get_input_embeddings().weight.shape[0]
    blocks, question = prompt_blocks(cfg.context_tokens + cfg.question_tokens, cfg.block_tokens,
                                     cfg.question_tokens, vocab, cfg.seed)
    base = {"model": bm.name, "context_tokens": cfg.context_tokens, "new_tokens": cfg.new_tokens}

    def record(what: dict, fn):
        if over():
            skipped.append({**what, "reason": "time budget"})
            return
        try:
            row = {**base, **what, **fn()}
            rows.append(row)
            log("  " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
            skipped.append({**base, **what, "reason": f"{type(exc).__name__}: {exc}"})
            log(f"  {what}: failed ({type(exc).__name__}: {exc})")
        flush(rows, skipped)  # a run cut short by its caller keeps every row measured so far

    with torch.no_grad():
        if "hf_generate" in cfg.variants:  # before the adapter wraps the base model's layers
            record({"variant": "hf_generate", "mode": "full", "streams": 1},
                   lambda: hf_generate(bm.model, blocks, question, cfg, device))
        adapter = _adapter_for(name, bm, cfg)
        for variant, config in engine_configs().items():
            if variant not in cfg.variants or over():
                continue
            engine = BlockEngine(bm.model, bm.identity, adapter, config)
            engine.prefill(blocks, question)  # blocks cached: decode is what is timed
            slow = variant == "engine_eager"  # a comparison: fewer tokens, timed once (the budget is short)
            modes = ("block",) if variant == "engine_compiled" else ("block", "full")
            for mode in modes:
                record({"variant": variant, "mode": mode, "streams": 1, "adapter": engine.keys.adapter},
                       lambda: single_stream(engine, blocks, question, mode, cfg, device,
                                             cfg.baseline_tokens if slow else None, 1 if slow else None))
            widths = {"engine": cfg.streams, "engine_unfused": cfg.streams[-1:],
                      "engine_compiled": cfg.streams[-1:]}.get(variant, [])
            for streams in widths:
                record({"variant": variant, "mode": "block", "streams": streams, "batched": True},
                       lambda: batched(engine, blocks, question, "block", streams, cfg, device))
            if variant != "engine_eager":
                rows.append({**base, "variant": variant, "engine_info": engine.info(),
                             "pool": engine.pool.info() if engine.pool is not None else None})
                flush(rows, skipped)
            del engine
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if device.type == "cuda":
        base["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        rows.append({**base, "variant": "memory"})
    return rows, skipped


def run(cfg: DecodeBenchConfig, log=print, partial=None) -> dict:
    """All models' rows. `partial(result)`, when given, receives the result so far after every measurement
    (the CLI writes it: a run its caller kills keeps what it measured)."""
    device = torch.device(cfg.device)
    started = time.monotonic()
    rows, skipped = [], []

    def result(extra_rows=(), extra_skipped=()) -> dict:
        all_rows = rows + list(extra_rows)
        return {"benchmark": "decode", "config": asdict(cfg), "env": environment(device), "rows": all_rows,
                "skipped": skipped + list(extra_skipped), "goals": goals(all_rows),
                "seconds": time.monotonic() - started}

    flush = (lambda r, s: partial(result(r, s))) if partial is not None else (lambda r, s: None)
    for name in cfg.models:
        if time.monotonic() - started > cfg.time_budget_s:
            skipped.append({"model": name, "reason": "time budget"})
            continue
        try:
            got, missed = bench_model(name, cfg, device, started, log, flush)
            rows += got
            skipped += missed
        except Exception as exc:  # noqa: BLE001 - e.g. no SmolLM2 staged: keep the other model
            skipped.append({"model": name, "reason": f"{type(exc).__name__}: {exc}"})
            log(f"{name}: skipped ({type(exc).__name__}: {exc})")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result()


def _speed(rows, model, mode, streams, key, variant="engine"):
    hits = [r[key] for r in rows if r.get("variant") == variant and r["model"] == model and r.get("mode") == mode
            and r.get("streams") == streams and key in r]
    return hits[0] if hits else None


def goals(rows: list[dict]) -> dict:
    """Issue 10's decode goals next to what this run measured (None: not measured): `measured` from the
    engine's default (graph-replayed) rows, `measured_compiled` from `engine_compiled` (torch.compile'd steps,
    opt-in with `compile_decode`)."""
    def measured(variant):
        single = {m: _speed(rows, "smollm2", m, 1, "tokens_per_s", variant) for m in ("block", "full")}
        big = {m: _speed(rows, "llama-8b-shape", m, 1, "tokens_per_s", variant) for m in ("block", "full")}
        return single, big, _speed(rows, "smollm2", "block", 64, "total_tokens_per_s", variant)

    (single, big, many), (single_c, big_c, many_c) = measured("engine"), measured("engine_compiled")
    return {"smollm2_single_stream_tokens_s": {"goal": GOALS["smollm2_single_stream_tokens_s"], "measured": single,
                                               "measured_compiled": single_c},
            "llama8b_single_stream_tokens_s": {"goal": GOALS["llama8b_single_stream_tokens_s"], "measured": big,
                                               "measured_compiled": big_c},
            "smollm2_64_streams_total_tokens_s": {"goal": GOALS["smollm2_64_streams_total_tokens_s"],
                                                  "measured": many, "measured_compiled": many_c}}


def table(result: dict) -> str:
    head = f"{'model':<16}{'variant':<17}{'mode':<7}{'streams':>8}{'tok/s':>10}{'total tok/s':>13}{'ms/token':>10}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        if "tokens_per_s" not in r and "total_tokens_per_s" not in r:
            continue
        per = r.get("tokens_per_s", r.get("per_stream_tokens_per_s"))
        ms = r.get("ms_per_token", r.get("ms_per_step"))
        lines.append(f"{r['model']:<16}{r['variant']:<17}{r['mode']:<7}{r['streams']:>8}{per:>10.1f}"
                     f"{r.get('total_tokens_per_s', per):>13.1f}{ms:>10.2f}")
    for s in result["skipped"]:
        lines.append(f"skipped: {s}")
    for name, g in result["goals"].items():
        lines.append(f"goal {name}: >= {g['goal']}, measured {g['measured']}, compiled {g.get('measured_compiled')}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Single-stream tokens/s per model and variant (block / full), and batched total tokens/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in result["rows"] if r.get("streams") == 1 and "tokens_per_s" in r]
    multi = [r for r in result["rows"] if "total_tokens_per_s" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['model']}\n{r['variant']}\n{r['mode']}" for r in single]
    ax1.bar(range(len(single)), [r["tokens_per_s"] for r in single], color="tab:blue")
    ax1.set_xticks(range(len(single)), labels, fontsize=6)
    ax1.set(ylabel="tokens/s", title="one stream", yscale="log")
    labels = [f"{r['model']}\n{r['streams']} streams" for r in multi]
    ax2.bar(range(len(multi)), [r["total_tokens_per_s"] for r in multi], color="tab:green")
    ax2.set_xticks(range(len(multi)), labels, fontsize=7)
    ax2.set(ylabel="total tokens/s", title="batched decode (decode_batch)", yscale="log")
    fig.suptitle(f"decode speed, {result['env'].get('gpu', 'CPU')}, {result['config']['context_tokens']}-token "
                 f"context, {result['config']['new_tokens']} new tokens")
    save_figure(fig, path)


def write(result: dict, out: Path) -> Path:
    has_speed = any("tokens_per_s" in r or "total_tokens_per_s" in r for r in result["rows"])
    return write_report(result, out, plot if has_speed else None)

