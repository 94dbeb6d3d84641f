"""Multi-GPU scaling of block distillation (issue 7): the same config, per-GPU batch unchanged, trained by
`torchrun --nproc_per_node 1` and then `--nproc_per_node N` on one machine; tokens/s per GPU against one GPU,
and the loss curves side by side.

    python -m blockattn.experiments.gpu_scaling --config configs/smollm2-h200.yaml --pack .gpu/pack.npz \\
        --out $OUT --gpus 2 --steps 150

Both runs go through `blockattn.experiments.gpu_run --phases distill` (the single-GPU entry point, unchanged).
With the per-GPU batch fixed, N GPUs train on N× the tokens per step (weak scaling): efficiency is
(tokens/s per GPU with N) / (tokens/s with 1). Writes $OUT/scaling.json and $OUT/scaling.png. On a machine
without CUDA it runs the same way on CPU processes (gloo), which is how it is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

from blockattn.experiments.gpu_run import MULTICAST_OFF



def launch(nproc: int, config: Path, pack: Path, work: Path, steps: int, overrides: list[str]) -> dict:
    """One torchrun of the distill phase; its summary and metrics."""
    out = work / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "blockattn.experiments.gpu_run", "--config", str(config), "--pack", str(pack), "--out", str(out),
           "--work", str(work), "--phases", "distill", "--set", f"train.steps={steps}", "--set", "train.max_minutes=0",
           "--set", "train.checkpoint_every=0"]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, **MULTICAST_OFF}
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc} process(es) failed (exit {done.returncode})")
    from blockattn.distill.metrics import read_metrics

    return {"summary": json.loads((work / "distill" / "summary.json").read_text()),
            "metrics": read_metrics(work / "distill" / "metrics.jsonl")}


def compare(one: dict, many: dict) -> dict:
    s1, sn = one["summary"], many["summary"]
    per_gpu_1, per_gpu_n = s1["tokens_per_s_per_process"], sn["tokens_per_s_per_process"]
    return {
        "gpus": sn["world_size"],
        "tokens_per_s": {"1": s1["tokens_per_s"], str(sn["world_size"]): sn["tokens_per_s"]},
        "tokens_per_s_per_gpu": {"1": per_gpu_1, str(sn["world_size"]): per_gpu_n},
        "scaling_efficiency": per_gpu_n / per_gpu_1 if per_gpu_1 else None,
        "final": {"1": s1.get("final"), str(sn["world_size"]): sn.get("final")},
        "probe_kl": {"1": s1.get("probe_kl"), str(sn["world_size"]): sn.get("probe_kl")},
        "steps": sn["steps"], "tokens": {"1": s1["tokens"], str(sn["world_size"]): sn["tokens"]},
        "peak_memory_gb": {"1": s1.get("peak_memory_gb"), str(sn["world_size"]): sn.get("peak_memory_gb")},
    }


def plot(one: dict, many: dict, n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run, label in ((one, "1 GPU"), (many, f"{n} GPUs")):
        recs = [r for r in run["metrics"] if r.get("kl") is not None]
        axes[0].plot([r["step"] for r in recs], [r["kl"] for r in recs], label=label)
        axes[1].plot([r["tokens"] / 1e6 for r in recs], [r["kl"] for r in recs], label=label)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training tokens (M)")
    for ax in axes:
        ax.set_ylabel("KL to full attention")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def scaling(config: Path = typer.Option(..., help="Run config (the single-GPU one)."),
            pack: Path = typer.Option(Path(".gpu/pack.npz")),
            out: Path = typer.Option(..., help="scaling.json and scaling.png go here ($OUT)."),
            work: Path = typer.Option(Path("/tmp/blockattn-scaling")),
            gpus: int = typer.Option(2, help="Processes of the multi-process run."),
            steps: int = typer.Option(150, help="Steps of each run (no time cap)."),
            overrides: list[str] = typer.Option([], "--set", help="Config override section.field=value.")) -> None:
    out.mkdir(parents=True, exist_ok=True)
    one = launch(1, config, pack, work / "1", steps, overrides)
    many = launch(gpus, config, pack, work / str(gpus), steps, overrides)
    result = compare(one, many)
    (out / "scaling.json").write_text(json.dumps({**result, "metrics": {"1": one["metrics"],
                                                                         str(gpus): many["metrics"]}}, indent=2))
    plot(one, many, gpus, out / "scaling.png")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
