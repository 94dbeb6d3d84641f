"""`blockattn serve`: the OpenAI-compatible server over the block KV-cache engine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from blockattn.errors import UserError


def serve(
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or local HF model directory."),
    adapter: str = typer.Option("default", help="default: the block adapter shipped for the "
                                                "model (if any); none: the base model alone; or a directory."),
    mode: str = typer.Option("block", help="block: documents are cached context blocks; full: every request "
                                           "runs full attention on the base weights (no adapter, no block cache)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port (0: any free port)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Persist block KV here (survives restarts)."),
    kv_store: Optional[str] = typer.Option(None, help="redis://HOST:PORT/DB: block KV shared by every process "
                                                      "on that store and model (a dead Redis means recompute)."),
    kv_store_gb: float = typer.Option(4.0, help="Our byte budget in --kv-store (GB; LRU across processes)."),
    cache_dir_max_gb: Optional[float] = typer.Option(None, help="Budget of --cache-dir (GB; LRU across the "
                                                              "processes sharing it). Default: unbounded."),
    api_key: Optional[str] = typer.Option(None, help="Require 'Authorization: Bearer KEY' on /v1 routes "
                                                     "(default: $BLOCKATTN_API_KEY, if set)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    gpu_cache_gb: Optional[float] = typer.Option(None, help="GPU tier budget for block KV (GB). Default: a "
                                                            "quarter of the GPU memory free after loading."),
    cpu_cache_gb: float = typer.Option(4.0, help="CPU tier budget for block KV (GB)."),
    cuda_graphs: bool = typer.Option(True, help="Replay query blocks (padded to bucketed lengths) and decode "
                                                "steps from CUDA graphs (CUDA only; ignored on the CPU)."),
    compile_decode: bool = typer.Option(False, help="torch.compile the graph-captured decode steps: fewer, fused "
                                                    "kernels per token; the first request of each new shape "
                                                    "waits for a compilation (tens of seconds)."),
    max_queue: int = typer.Option(256, help="Most generations waiting for the model; more get HTTP 429."),
    max_batch: int = typer.Option(32, help="Most running generations decoded in one forward."),
    admit_per_step: int = typer.Option(4, help="Most new requests started (prefilled) between two decode steps: "
                                               "more lowers the wait of a burst, fewer keeps running streams "
                                               "moving."),
    group_prefill: bool = typer.Option(
        False, "--group-prefill/--no-group-prefill",
        help="Compute the context blocks missing from the requests started together as one batched prefill, not "
             "one per request. Off by default: on an H100 at 64 clients it served fewer requests/s than one "
             "prefill each, and on the CPU its padded batches are slower."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    engine_process: Optional[bool] = typer.Option(
        None, "--engine-process/--no-engine-process",
        help="Run the model in a process of its own, HTTP in this one: parsing, tokenizing and streaming then "
             "never compete with the model thread for Python's GIL. Default: on where the model runs on CUDA "
             "(H100, 2026-12-07: 1.4-1.6x block-mode requests/s at 8 and 64 clients), off on the CPU."),
) -> None:
    """Serve the engine over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, ...)."""
    from blockattn.engine.server import bind, create_app
    from blockattn.engine.server import serve as run
    from blockattn.engine.service import Service, resolve_device

    if mode not in ("block", "full"):
        raise UserError(f"--mode must be block or full, got {mode!r}")
    if max_queue < 1:
        raise UserError("--max-queue must be at least 1")
    if max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if admit_per_step < 1:
        raise UserError("--admit-per-step must be at least 1")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise UserError(f"unknown --log-level {log_level!r}")
    api_key = api_key or os.environ.get("BLOCKATTN_API_KEY") or None
    sock = bind(host, port)  # fail fast (exit 2) on a taken port, before loading the model
    load = dict(model=model, adapter=adapter, cache_dir=cache_dir, cache_dir_max_gb=cache_dir_max_gb,
                kv_store=kv_store, kv_store_gb=kv_store_gb, device=device, dtype=dtype, gpu_cache_gb=gpu_cache_gb,
                cpu_cache_gb=cpu_cache_gb, cuda_graphs=None if cuda_graphs else False, mode=mode,
                compile_decode=compile_decode)
    engine = None
    if engine_process is None:  # the device as Service.load resolves it (a bad one is a clear error here)
        engine_process = resolve_device(device).startswith("cuda")
    if engine_process:
        from blockattn.engine.server.engineproc import EngineProcess

        engine = EngineProcess(load, max_queue=max_queue, max_batch=max_batch, admit_per_step=admit_per_step,
                               group_prefill=group_prefill)
        service = engine.front_service()
    else:
        service = Service.load(**load)
    bound_host, bound_port = sock.getsockname()[:2]
    typer.echo(f"blockattn: serving {service.model_name} ({mode} mode, adapter: {service.adapter_name or 'none'}"
               f"{', model in its own process' if engine else ''}) on http://{bound_host}:{bound_port}/v1", err=True)
    try:
        run(create_app(service, api_key=api_key, max_queue=max_queue, max_batch=max_batch, engine=engine,
                       admit_per_step=admit_per_step, group_prefill=group_prefill), sock,
            log_level=log_level)
    finally:
        if engine is not None:
            engine.close()  # also when uvicorn never ran the app's shutdown
