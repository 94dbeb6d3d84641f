"""One self-contained run on a lent GPU machine: distil, train the block-FT baseline on the same tokens,
measure, and leave everything worth keeping under --out (≤ 8 files, ≤ 2 folders deep).

    python -m blockattn.experiments.gpu_run --config configs/smollm2-h200.yaml --pack .gpu/pack.npz --out $OUT

Phases (--phases, default all three, in this order):
    distill   block distillation (config as given; its max_minutes caps it)
    block_ft  block fine-tuning from the same config, for exactly the steps distillation took (same tokens)
    eval      ΔPPL(block − full) on the pack's held-out text: zero-shot block, distilled, block-FT;
              planted-fact retrieval over 4/8/16 documents: full, zero-shot block, distilled, block-FT

Under --out: results.json (rewritten after every phase, so a run cut short still reports what it did),
results.png (training curves, retrieval accuracy, ΔPPL), adapter/ (the distilled block adapter, 4 files).
Work directories (checkpoints, both adapters) live under --work, outside --out.

Under `torchrun --nproc_per_node N` only the distill phase runs (every process trains; rank 0 writes):
that is the multi-GPU throughput measurement (`experiments.gpu_scaling` drives it). A phase that fails is
recorded with its traceback, the later phases still run, and the exit status is 1.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import traceback
from pathlib import Path
from typing import Callable

import typer

# NVLink multicast stays off on shared multi-GPU hosts (it can take the host's GPUs down): set before any
# process group exists; an explicit setting in the environment wins.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
for _var, _value in MULTICAST_OFF.items():
    os.environ.setdefault(_var, _value)

PHASES = ("distill", "block_ft", "eval")
# Evaluation batches vary in length (prompts of 4 to 16 documents); a Flex kernel compiled per length would
# recompile on every batch, so evaluation uses the dense-mask SDPA path (exact, and fast at these sizes)
EVAL_BACKEND = "dense"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "block_sinks.safetensors",
                 "blockattn_adapter.json")


def environment() -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "cuda": torch.cuda.is_available(),
           "world_size": int(os.environ.get("WORLD_SIZE", 1))}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count())
    return env


class Report:
    """results.json under --out, rewritten whole after every change."""

    def __init__(self, out: Path, write: bool):
        self.path, self.write, self.data = out / "results.json", write, {"phases": {}}

    def set(self, key: str, value) -> None:
        self.data[key] = value
        self.flush()

    def phase(self, name: str, status: str, seconds: float, error: str | None = None) -> None:
        self.data["phases"][name] = {"status": status, "seconds": round(seconds, 1),
                                     **({"error": error} if error else {})}
        self.flush()

    def flush(self) -> None:
        if self.write:
            self.path.write_text(json.dumps(self.data, indent=2))


# What a single-GPU run falls back to when training fails (say, a compiler error that only this machine's
# torch shows): compilation off, then the dense-mask SDPA path as well. A paid GPU call then still brings
# back a trained adapter, and results.json says which attempt failed and why.
SAFER = (["train.compile=false"], ["train.compile=false", "train.attention_backend=dense"])


def train_phase(objective: str, make_config: Callable[[list[str]], object], work: Path,
                retry: bool) -> tuple[dict, list[str]]:
    """(result, the extra overrides that worked). `make_config(extra)` builds the run config."""
    import torch

    from blockattn.distill.metrics import read_metrics
    from blockattn.distill.recipe import run
    from blockattn.errors import UserError

    failures = []
    for extra in ([], *SAFER) if retry else ([],):
        try:
            summary = run(make_config(extra), objective, work / objective, progress=False)
        except UserError:
            raise  # a mistake in the config or the files: another attempt would fail the same way
        except Exception:
            if not retry:
                raise
            failures.append({"overrides": extra, "error": traceback.format_exc()[-6000:]})
            traceback.print_exc()
            shutil.rmtree(work / objective, ignore_errors=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        return {"summary": summary, "metrics": read_metrics(work / objective / "metrics.jsonl"),
                "fallback_overrides": extra, "failed_attempts": failures}, extra
    raise RuntimeError(f"{objective} failed in every configuration; see failed_attempts: {failures}")


def eval_phase(cfg, pack, work: Path, needles_per_count: int, ppl_rows: int, query_tokens: int) -> dict:
    """ΔPPL and retrieval for every variant whose weights exist; each variant on a freshly loaded base."""
    import torch

    from blockattn.distill.recipe import load_base
    from blockattn.distill.rows import eval_rows, row_budget
    from blockattn.data.needles import NeedleItem, first_per_count
    from blockattn.eval.perplexity import delta_perplexity
    from blockattn.eval.retrieval import needle_accuracy
    from blockattn.eval.variants import full_attention, with_adapter, zero_shot_block

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    picked = first_per_count([NeedleItem.from_dict(d) for d in pack.needles], needles_per_count)
    trained = {"distilled": work / "distill" / "adapter", "block-FT": work / "block_ft" / "adapter"}
    out = {"ppl": [], "needles": [], "seconds": {}}
    precision = cfg.train.precision
    for name in ("full", "zero-shot block", *trained):
        if name in trained and not (trained[name] / "blockattn_adapter.json").is_file():
            continue
        start = time.perf_counter()
        base = load_base(cfg, device)
        variant = {"full": full_attention, "zero-shot block": zero_shot_block}.get(name)
        variant = variant(base.model) if variant else with_adapter(base.model, trained[name], name)
        if variant.mode == "block":
            width = cfg.data.seq_len
            rows = eval_rows(pack.heldout, *row_budget(width, variant.sinks_per_block, variant.shared_sink),
                             query_tokens=query_tokens, max_rows=ppl_rows)
            out["ppl"].append(delta_perplexity(variant, pack.heldout, rows, width, base.pad_id,
                                               batch_size=cfg.data.batch_size, precision=precision,
                                               backend=EVAL_BACKEND,
                                               chunk_tokens=cfg.loss.chunk_tokens).to_dict())
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out["needles"].append(needle_accuracy(variant, base.tokenizer, picked, batch_size=16,
                                                  backend=EVAL_BACKEND))
        out["seconds"][name] = round(time.perf_counter() - start, 1)
        del base, variant
    return out


def plot_results(data: dict, path: Path) -> None:
    """Curves (KL of both methods against tokens; block-FT's CE), retrieval accuracy by document count,
    ΔPPL by variant, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for objective, style in (("distill", "-"), ("block_ft", "--")):
        records = (data.get(objective) or {}).get("metrics") or []
        points = [(r["tokens"] / 1e6, r["kl"]) for r in records if r.get("kl") is not None]
        if points:
            axes[0].plot(*zip(*points), style, label=f"{objective}: KL to full attention")
    axes[0].set_xlabel("training tokens (M)")
    axes[0].set_ylabel("KL (nats/token)")
    if axes[0].lines:
        axes[0].legend()
    axes[0].grid(alpha=0.3)
    for result in (data.get("eval") or {}).get("needles", []):
        docs = sorted(result["by_docs"], key=int)
        axes[1].plot([int(d) for d in docs], [result["by_docs"][d]["accuracy"] for d in docs], marker="o",
                     label=result["variant"])
    axes[1].set_xlabel("documents")
    axes[1].set_ylabel("planted-fact accuracy")
    axes[1].set_ylim(0, 1)
    if axes[1].lines:
        axes[1].legend()
    axes[1].grid(alpha=0.3)
    ppl = (data.get("eval") or {}).get("ppl", [])
    axes[2].bar([p["variant"] for p in ppl], [p["delta_ppl"] for p in ppl])
    axes[2].set_ylabel("ΔPPL (block − full), query blocks")
    axes[2].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def block_ft_budget(cfg, work: Path, started: float, deadline_minutes: float, eval_minutes: float) -> tuple[int, float]:
    """(steps, minutes) for block-FT: the steps distillation took (its summary says; the same tokens), and a
    time cap that leaves `eval_minutes` before the deadline."""
    summary_path = work / "distill" / "summary.json"
    steps = json.loads(summary_path.read_text())["steps"] if summary_path.is_file() else cfg.train.steps
    left = deadline_minutes - eval_minutes - (time.perf_counter() - started) / 60
    return steps, max(0.5, left)


def copy_adapter(src: Path, dst: Path) -> None:
    """The adapter's own files (not PEFT's generated README)."""
    if not (src / "blockattn_adapter.json").is_file():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def headline(data: dict) -> dict:
    """The numbers a reader wants first (printed last, so they end the command's output)."""
    out = {"phases": {k: v["status"] for k, v in data.get("phases", {}).items()}}
    for objective in ("distill", "block_ft"):
        s = (data.get(objective) or {}).get("summary")
        if s:
            out[objective] = {k: s.get(k) for k in ("steps", "tokens", "train_seconds", "tokens_per_s",
                                                    "tokens_per_s_per_process", "probe_kl", "peak_memory_gb")}
    ev = data.get("eval") or {}
    out["delta_ppl"] = {p["variant"]: round(p["delta_ppl"], 3) for p in ev.get("ppl", [])}
    out["needles"] = {n["variant"]: {d: round(v["accuracy"], 3) for d, v in n["by_docs"].items()}
                      for n in ev.get("needles", [])}
    return out


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def gpu_run(config: Path = typer.Option(..., help="Run config (configs/smollm2-h200.yaml)."),
            pack: Path = typer.Option(Path(".gpu/pack.npz"), help="Pack (python -m blockattn.distill.pack)."),
            out: Path = typer.Option(..., help="Where results.json, results.png and adapter/ go ($OUT)."),
            work: Path = typer.Option(Path("/tmp/blockattn-gpu"), help="Checkpoints and adapters of both runs."),
            phases: str = typer.Option(",".join(PHASES), help="Comma-separated subset of distill,block_ft,eval."),
            overrides: list[str] = typer.Option([], "--set", help="Config override section.field=value."),
            needles_per_count: int = typer.Option(64, help="Retrieval items per document count."),
            ppl_rows: int = typer.Option(48, help="Held-out rows for ΔPPL."),
            query_tokens: int = typer.Option(256, help="Query-block tokens per ΔPPL row."),
            deadline_minutes: float = typer.Option(9.0, help="Block-FT is cut short (and says so) so that "
                                                   "evaluation still starts before this much wall time."),
            eval_minutes: float = typer.Option(1.5, help="Wall time kept for evaluation.")) -> None:
    from blockattn.distill.config import load_config
    from blockattn.distill.distributed import shutdown
    from blockattn.distill.pack import load_pack

    started = time.perf_counter()
    chosen = [p.strip() for p in phases.split(",") if p.strip()]
    unknown = set(chosen) - set(PHASES)
    if unknown:
        raise typer.BadParameter(f"unknown phase(s) {sorted(unknown)}; choose from {PHASES}")
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and chosen != ["distill"]:
        raise typer.BadParameter("under torchrun only --phases distill runs")
    main_process = int(os.environ.get("RANK", 0)) == 0
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, write=main_process)
    report.set("environment", environment())
    base = ["data.source=pack", f"data.path={pack}", *overrides]
    cfg = load_config(config, base)
    fallback: list[str] = []  # what distillation needed to run (block-FT then runs the same way)
    report.set("config", cfg.to_dict())
    failed = False
    for phase in chosen:
        t0 = time.perf_counter()
        try:
            if phase == "distill":
                result, fallback = train_phase("distill", lambda extra: load_config(config, base + extra), work,
                                               retry=world == 1)
                report.set("distill", result)
            elif phase == "block_ft":
                steps, minutes = block_ft_budget(cfg, work, started, deadline_minutes, eval_minutes)
                budget = [f"train.steps={steps}", f"train.max_minutes={minutes:.2f}"]
                result, _ = train_phase("block_ft",
                                        lambda extra: load_config(config, base + fallback + extra + budget), work,
                                        retry=world == 1)
                report.set("block_ft", result)
            else:
                report.set("eval", eval_phase(cfg, load_pack(pack), work, needles_per_count, ppl_rows,
                                              query_tokens))
            report.phase(phase, "ok", time.perf_counter() - t0)
        except Exception:  # record it, keep going: later phases may still produce results
            failed = True
            report.phase(phase, "failed", time.perf_counter() - t0, traceback.format_exc())
            traceback.print_exc()
    if main_process:
        copy_adapter(work / "distill" / "adapter", out / "adapter")
        plot_results(report.data, out / "results.png")
        report.set("wall_seconds", round(time.perf_counter() - started, 1))
        print(json.dumps(headline(report.data), indent=2))
    shutdown()
    raise typer.Exit(code=1 if failed else 0)


if __name__ == "__main__":
    app()
