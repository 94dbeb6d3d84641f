"""`blockattn bench ...`: speed benchmarks (write JSON + a plot to reports/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from blockattn.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Speed benchmarks (write JSON + a plot to reports/).")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 128:
        raise UserError("--sizes needs at least one size, each >= 128 tokens")
    return sizes


def bench_device(device: str) -> str:
    """--device auto|cuda|cpu → "cuda" or "cpu"; UserError for anything else or a missing GPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        raise UserError(f"--device must be cuda, cpu or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but no CUDA device is available")
    return device


@app.command("attention")
def attention(
    device: str = typer.Option("auto", help="cuda, cpu, or auto (cuda when present)."),
    sizes: str = typer.Option("", help="Comma-separated sequence lengths (default: 2k,8k,16k,32k on CUDA; 1k,2k,4k on CPU)."),
    block_tokens: int = typer.Option(512, help="Tokens per context block."),
    out: Path = typer.Option(Path("reports/bench_attention.json"), help="JSON output; the plot goes beside it (.png)."),
) -> None:
    """Block mask via FlexAttention vs dense SDPA mask vs plain causal SDPA: time and memory."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from blockattn.bench.attention import AttentionBenchConfig, run, write

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but no CUDA device is available")
    on_cuda = device == "cuda"
    cfg = AttentionBenchConfig(
        sizes=parse_sizes(sizes) if sizes else ([2048, 8192, 16384, 32768] if on_cuda else [1024, 2048, 4096]),
        device=device, dtype="bfloat16" if on_cuda else "float32", block_tokens=block_tokens,
        # CPU: fewer heads so a 2-core run stays short; the ratios are what matter
        heads=32 if on_cuda else 8, kv_heads=8 if on_cuda else 2, head_dim=128 if on_cuda else 64)
    result = run(cfg)
    result["command"] = "blockattn " + " ".join(sys.argv[1:])
    path = write(result, out)
    table = Table(title=f"attention benchmark ({result['env'].get('gpu', 'CPU')})")
    for col in ("N", "method", "fwd ms", "fwd+bwd ms", "peak MB (fwd+bwd)", "mask MB"):
        table.add_column(col, justify="right")
    fmt = lambda x, f="{:.2f}": "n/a" if x is None else f.format(x)  # noqa: E731
    for r in result["rows"]:
        table.add_row(str(r["n"]), r["method"], fmt(r["fwd_ms"]), fmt(r["fwdbwd_ms"]),
                      fmt(r["fwdbwd_peak_mb"], "{:.0f}"), f"{r['mask_bytes'] / 2**20:.2f}")
    Console().print(table)
    for ratio in result["ratios"]:
        typer.echo("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in ratio.items()))
    typer.echo(f"wrote {path} and {path.with_suffix('.png')}")


@app.command("ttft")
def ttft(
    device: str = typer.Option("auto", help="cuda, cpu, or auto (cuda when present)."),
    models: str = typer.Option("", help="Comma-separated: llama8b, smollm2, tiny (default: llama8b,smollm2 on "
                                        "CUDA; smollm2 on CPU)."),
    sizes: str = typer.Option("", help="Comma-separated prompt lengths N (default: 2k..32k on CUDA; 2k,4k,8k on CPU)."),
    block_tokens: int = typer.Option(512, help="Tokens per context block."),
    question_tokens: int = typer.Option(64, help="Tokens of the question (the query block)."),
    warmup: int = typer.Option(0, help="Untimed runs first (default: 2 on CUDA, 1 on CPU)."),
    repeat: int = typer.Option(0, help="Timed runs, median taken (default: 5 on CUDA, 3 on CPU)."),
    time_budget: float = typer.Option(210.0, help="Start no new measurement after this many seconds."),
    out: Path = typer.Option(Path("reports/bench_ttft.json"), help="JSON output; the plot goes beside it (.png)."),
) -> None:
    """Time to first token: full prefill vs all blocks cached vs cold block prefill (and the plain HF path)."""
    from blockattn.bench.models import BENCH_MODELS
    from blockattn.bench.ttft import TTFTBenchConfig, run, table, write

    device = bench_device(device)
    on_cuda = device == "cuda"
    names = [m.strip() for m in models.split(",") if m.strip()] or (["llama8b", "smollm2"] if on_cuda else ["smollm2"])
    unknown = [m for m in names if m not in BENCH_MODELS]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BENCH_MODELS)}")
    if block_tokens < 1 or question_tokens < 1:
        raise UserError("--block-tokens and --question-tokens must be >= 1")
    cfg = TTFTBenchConfig(
        models=names, sizes=parse_sizes(sizes) if sizes else ([2048, 4096, 8192, 16384, 32768] if on_cuda else
                                                              [2048, 4096, 8192]),
        device=device, block_tokens=block_tokens, question_tokens=question_tokens,
        warmup=warmup or (2 if on_cuda else 1), repeat=repeat or (5 if on_cuda else 3), time_budget_s=time_budget)
    if min(cfg.sizes) <= question_tokens:
        raise UserError("every size must exceed --question-tokens")
    result = run(cfg, log=lambda line: typer.echo(line, err=True))
    result["command"] = "blockattn " + " ".join(sys.argv[1:])
    path = write(result, out)
    typer.echo(table(result))
    typer.echo(f"wrote {path}" + (f" and {path.with_suffix('.png')}" if result["rows"] else ""))


@app.command("load")
def load(
    clients: int = typer.Option(32, help="Concurrent clients."),
    requests: int = typer.Option(4, help="Requests per client (sent back to back)."),
    max_tokens: int = typer.Option(16, help="New tokens per request."),
    url: Optional[str] = typer.Option(None, help="A running server's base URL (default: start one on 127.0.0.1)."),
    model: str = typer.Option("smollm2-135m-instruct", help="Model for the server started here."),
    time_limit: float = typer.Option(900.0, help="Start no request after this many seconds."),
    max_batch: str = typer.Option("32", help="The started server's --max-batch; comma-separated for one run "
                                             "each, compared side by side (e.g. 32,1: batched vs one at a time)."),
    out: Path = typer.Option(Path("reports/load_cpu.json"), help="JSON output."),
) -> None:
    """Concurrent clients against the OpenAI-compatible server: latency percentiles, throughput, errors."""
    from blockattn.bench.load import LoadConfig, run, write

    if clients < 1 or requests < 1 or max_tokens < 1:
        raise UserError("--clients, --requests and --max-tokens must be >= 1")
    if url is not None and not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise UserError("--url must be a loopback address (this load test never leaves the machine)")
    try:
        batches = tuple(int(b) for b in max_batch.split(",") if b.strip())
    except ValueError:
        raise UserError(f"--max-batch must be integers separated by commas, got {max_batch!r}") from None
    if not batches or min(batches) < 1:
        raise UserError("--max-batch values must be >= 1")
    result = run(LoadConfig(clients=clients, requests=requests, max_tokens=max_tokens, url=url, model=model,
                            time_limit_s=time_limit, max_batch=batches), log=typer.echo)
    result["command"] = "blockattn " + " ".join(sys.argv[1:])
    path = write(result, out)
    s = result["summary"]
    typer.echo(f"{s['requests']} requests from {clients} clients in {s['elapsed_s']} s: {s['errors']} errors; "
               f"latency p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms; "
               f"{s['throughput_rps']} req/s; blocks cached {s['blocks']['cached']}, "
               f"computed {s['blocks']['computed']}")
    typer.echo(f"wrote {path}")


@app.command("decode")
def decode(
    device: str = typer.Option("auto", help="cuda, cpu, or auto (cuda when present)."),
    models: str = typer.Option("", help="Comma-separated: smollm2, llama8b, tiny (default: smollm2,llama8b on CUDA; "
                                        "smollm2 on CPU)."),
    context_tokens: int = typer.Option(1536, help="Context tokens before the question (in blocks)."),
    block_tokens: int = typer.Option(160, help="Tokens per context block."),
    new_tokens: int = typer.Option(64, help="Greedy tokens decoded per request."),
    streams: str = typer.Option("1,8,64", help="Comma-separated batch widths for batched decoding."),
    variants: str = typer.Option("engine,engine_compiled,engine_eager,hf_generate",
                                 help="Comma-separated: engine, engine_compiled, engine_eager, hf_generate."),
    repeat: int = typer.Option(3, help="Timed runs per single-stream measurement (median)."),
    time_budget: float = typer.Option(150.0, help="Start no new measurement after this many seconds."),
    out: Path = typer.Option(Path("reports/bench_decode.json"), help="JSON output; the plot goes beside it (.png)."),
) -> None:
    """Decode tokens/s: one stream (block and full mode, engine vs plain transformers) and batched streams."""
    from blockattn.bench.decode import VARIANTS, DecodeBenchConfig, run, table, write
    from blockattn.reportio import provenance
    from blockattn.bench.models import BENCH_MODELS

    device = bench_device(device)
    names = [m.strip() for m in models.split(",") if m.strip()] or (["smollm2", "llama8b"] if device == "cuda"
                                                                    else ["smollm2"])
    unknown = [m for m in names if m not in BENCH_MODELS]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BENCH_MODELS)}")
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in VARIANTS]
    if bad or not chosen:
        raise UserError(f"--variants: unknown {', '.join(bad) or '(none given)'}; choose {', '.join(VARIANTS)}")
    try:
        widths = [int(s) for s in streams.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--streams must be comma-separated integers, got {streams!r}") from None
    if min(widths, default=0) < 1 or context_tokens < 1 or block_tokens < 1 or new_tokens < 2 or repeat < 1:
        raise UserError("--streams, --context-tokens, --block-tokens and --repeat must be >= 1, --new-tokens >= 2")
    cfg = DecodeBenchConfig(models=names, device=device, context_tokens=context_tokens, block_tokens=block_tokens,
                            new_tokens=new_tokens, streams=widths, variants=chosen, repeat=repeat,
                            time_budget_s=time_budget)
    def partial(result: dict) -> None:  # rewritten after every row, without its plot (that comes at the end)
        from blockattn.reportio import write_report

        write_report({**result, **provenance(cfg.seed, result["seconds"]), "partial": True}, out)

    result = run(cfg, log=lambda line: typer.echo(line, err=True), partial=partial)
    result.update(provenance(cfg.seed, result["seconds"]))  # command, commit, machine, wall time, seed
    path = write(result, out)
    typer.echo(table(result))
    typer.echo(f"wrote {path}")


def parse_clients(text: str) -> list[int]:
    try:
        clients = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--clients must be comma-separated integers, got {text!r}") from None
    if not clients or min(clients) < 1:
        raise UserError("--clients needs at least one client count, each >= 1")
    return clients


@app.command("serve")
def serve(
    device: str = typer.Option("auto", help="cuda, cpu, or auto (cuda when present)."),
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or HF directory (tiny: a tiny random "
                                                            "model, for smoke runs)."),
    clients: str = typer.Option("1,8,64", help="Comma-separated concurrent client counts, one phase each."),
    modes: str = typer.Option("block,full,hf_generate", help="Comma-separated: block, full, hf_generate."),
    context_tokens: int = typer.Option(8192, help="Tokens of documents per request (about)."),
    new_tokens: int = typer.Option(32, help="Greedy tokens per request, at most."),
    requests: int = typer.Option(0, help="Measured requests per phase (0: 4 per client, at least 48)."),
    warmup: int = typer.Option(0, help="Unmeasured requests per phase first (0: one per client, at least 8)."),
    time_budget: float = typer.Option(90.0, help="Seconds for all measured phases, shared equally."),
    zipf: float = typer.Option(1.1, help="Document popularity exponent (rank r drawn with weight r^-zipf)."),
    seed: int = typer.Option(0, help="Seed of the request plan."),
    adapter: str = typer.Option("default", help="The block-mode server's --adapter."),
    max_batch: int = typer.Option(64, help="The servers' --max-batch."),
    hf_max_batch: int = typer.Option(16, help="Most requests one plain `generate` call takes together."),
    engine_process: Optional[bool] = typer.Option(
        None, "--engine-process/--no-engine-process",
        help="Both servers run the model in a process of its own (`serve --engine-process`). Default: as "
             "`serve` does (on with CUDA, off on the CPU)."),
    admit_per_step: int = typer.Option(4, help="The servers' --admit-per-step."),
    group_prefill: bool = typer.Option(
        False, "--group-prefill/--no-group-prefill", help="The servers' --group-prefill (off, as `serve`)."),
    client_processes: int = typer.Option(0, help="Load-generator processes per server phase (0: one per 16 "
                                                 "clients, at most a quarter of the cores): one Python process "
                                                 "streaming 64 requests becomes the bottleneck itself."),
    hotpotqa: Optional[Path] = typer.Option(None, help="HotpotQA file (default: $BLOCKATTN_HOTPOTQA or "
                                                       "../shared/data/hotpotqa/dev500.jsonl.gz)."),
    out: Path = typer.Option(Path("reports/bench_serve.json"), help="JSON output; the plot goes beside it (.png)."),
) -> None:
    """Serving like real use: block-mode server vs full-mode server vs plain `generate`, RAG requests over
    HotpotQA paragraphs (Zipf popularity), 1/8/64 concurrent clients: TTFT, tokens/s, hit rate, memory."""
    from blockattn.bench.serve import MODES, ServeBenchConfig, run, table
    from blockattn.data.hotpotqa import default_path

    device = bench_device(device)
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in chosen if m not in MODES]
    if bad or not chosen:
        raise UserError(f"--modes: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(MODES)}")
    if context_tokens < 16 or new_tokens < 1 or requests < 0 or warmup < 0 or max_batch < 1 or hf_max_batch < 1 \
            or admit_per_step < 1 or client_processes < 0:
        raise UserError("--context-tokens must be >= 16, --new-tokens, --max-batch, --hf-max-batch and "
                        "--admit-per-step >= 1, --requests, --warmup and --client-processes >= 0")
    if time_budget <= 0 or zipf < 0:
        raise UserError("--time-budget must be > 0 and --zipf >= 0")
    corpus = hotpotqa or default_path()
    if not Path(corpus).is_file():
        raise UserError(f"HotpotQA file {corpus}: not found (pass --hotpotqa PATH or set $BLOCKATTN_HOTPOTQA)")
    cfg = ServeBenchConfig(model=model, device=device, clients=parse_clients(clients), modes=chosen,
                           context_tokens=context_tokens, new_tokens=new_tokens, requests=requests, warmup=warmup,
                           time_budget_s=time_budget, zipf=zipf, seed=seed, adapter=adapter, max_batch=max_batch,
                           hf_max_batch=hf_max_batch, corpus=str(corpus),
                           engine_process=device == "cuda" if engine_process is None else engine_process,
                           admit_per_step=admit_per_step,
                           group_prefill=group_prefill,
                           client_processes=client_processes)
    result = run(cfg, "blockattn " + " ".join(sys.argv[1:]), out, log=lambda line: typer.echo(line, err=True))
    typer.echo(table(result))
    typer.echo(f"wrote {out} and {out.with_suffix('.png')}")


@app.command("serve-compare")
def serve_compare(
    reports: list[Path] = typer.Argument(..., help="Two or more `bench serve` JSON reports of one machine; the "
                                                   "first is the baseline."),
    out: Path = typer.Option(Path("reports/bench_serve_compare.json"), help="JSON output; the plot goes beside it."),
) -> None:
    """Server settings side by side: several `bench serve` runs (e.g. with and without --engine-process) as one
    table of requests/s, tokens/s and TTFT, each over the first run's."""
    from blockattn.bench.serve_compare import run

    result = run(reports, out, "blockattn " + " ".join(sys.argv[1:]))
    for row in result["rows"]:
        typer.echo(f"{row['clients']:>3} {row['mode']:<12} {row['setting']:<26} req/s {row['requests_per_s']:>7.2f}"
                   f" (x{row['requests_per_s_over_baseline']})  TTFT p50 {row['ttft_p50_ms']:>8.1f} ms"
                   f" (x{row['ttft_p50_ms_over_baseline']})")
    typer.echo(f"wrote {out} and {out.with_suffix('.png')}")
