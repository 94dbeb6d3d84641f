"""Ship the adapters of a quality run: one command, nothing edited by hand.

    python -m blockattn.experiments.ship RESULTS_DIR [--method distilled]

For every RESULTS_DIR/quality_<model>.json with its adapters_<model>.tar.gz: unpack the chosen method's
adapter into src/blockattn/assets/adapters/<model>-block-distill/, write its README from the JSON (data,
command, steps, GPU-seconds, scores), and map the model to it in assets/adapters/shipped.json (what
`--adapter default` reads). An adapter over 20 MB is refused.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import typer

from blockattn.errors import UserError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "adapters"
MAX_BYTES = 20 * 2**20


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def readme(data: dict, method: str, dirname: str, size: int) -> str:
    """The adapter's README, every figure taken from the run's JSON."""
    rows = {r["method"]: r for r in data.get("rows", [])}
    mine = rows.get(method, {})
    run = data.get("distill" if method == "distilled" else "block_ft", {}).get("summary", {})
    pack = data.get("pack", {})
    lines = [f"# {dirname} — the shipped block adapter of {data['model']}", "",
             f"The default of block mode for `--model {data['model']}` (`--adapter none` turns it off). "
             f"{method} adapter, {size / 2**20:.1f} MB (LoRA weights stored in bfloat16; the scores below were "
             f"measured with the fp32 weights of the run).", "",
             "## How it was made", "",
             f"- Data: SemanticSeg continuation rows plus RAG-shaped rows (share {data.get('rag_fraction')}) whose "
             f"targets are the base model's own full-attention answers to questions generated from training "
             f"documents (pack: {pack.get('rag_items')} requests, {pack.get('train_tokens')} train tokens, "
             f"source {pack.get('source')}). No evaluation data.",
             f"- Command: `{data['command']}`", f"- Commit: {data['commit']}; machine: {data['machine']}; "
             f"seed {data['seed']}",
             f"- Steps: {run.get('steps')}; training tokens: {mine.get('train_tokens')}; GPU-seconds (training "
             f"wall time, GPU possibly shared with other runs): {mine.get('gpu_seconds')}", "",
             "## Scores (same run)", "",
             "| method | HotpotQA contains | EM | on full-correct | facts 4 | facts 8 | facts 16 | ΔPPL | KL |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in data.get("rows", []):
        h, f = r["hotpotqa"], r["facts"]
        lines.append(f"| {r['method']} | {_fmt(h['contains'])} | {_fmt(h['em'])} | "
                     f"{_fmt(h['contains_on_full_correct'])} | {_fmt(f['4'])} | {_fmt(f['8'])} | {_fmt(f['16'])} | "
                     f"{_fmt(r['delta_ppl'])} | {_fmt(r['kl'], 4)} |")
    n = next((r["hotpotqa"]["n"] for r in data.get("rows", []) if r["hotpotqa"]["n"]), 0)
    lines += ["", f"HotpotQA: first {n} questions of dev500; facts: distractor facts in every document.", ""]
    return "\n".join(lines)


def to_bfloat16(path: Path) -> None:
    """Rewrite a LoRA weights file with its fp32 tensors in bfloat16 (PEFT casts them back to the model's dtype
    on load). Why: every shipped byte travels with the repo, and the GPU machine takes 64 MiB per call."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if not path.is_file():
        return  # a sinks-only adapter
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file({k: (v.to(torch.bfloat16) if v.dtype == torch.float32 else v).contiguous() for k, v in tensors.items()},
              str(path), metadata=meta)


def ship_one(result: Path, method: str, assets: Path, bf16: bool = True) -> tuple[str, str]:
    data = json.loads(result.read_text())
    model = data["model"]
    tarball = result.with_name(result.name.replace("quality_", "adapters_").replace(".json", ".tar.gz"))
    if not tarball.is_file():
        raise UserError(f"{tarball}: missing (the run trained no adapter?)")
    dirname = f"{Path(model).name}-block-distill"
    target = assets / dirname
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"{method}/")
                   and "/" not in m.name[len(method) + 1:]]
        if not members:
            raise UserError(f"{tarball}: holds no {method}/ adapter")
        for m in members:
            tar.extract(m, tmp, filter="data")
        src = Path(tmp) / method
        if bf16:
            to_bfloat16(src / "adapter_model.safetensors")
        size = sum(p.stat().st_size for p in src.iterdir())
        if size > MAX_BYTES:
            raise UserError(f"{model}: the {method} adapter is {size / 2**20:.1f} MB, over the 20 MB limit")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src, target)
    (target / "README.md").write_text(readme(data, method, dirname, size))
    return model, dirname


def main(results: Path = typer.Argument(..., help="Folder with quality_<model>.json + adapters_<model>.tar.gz."),
         method: str = typer.Option("distilled", help="Which adapter of the tarball to ship."),
         assets: Path = typer.Option(ASSETS, help="The adapters folder of the package."),
         bf16: bool = typer.Option(True, help="Store the LoRA weights in bfloat16 (half the bytes).")) -> None:
    """Unpack, document and register the adapters of a quality run."""
    found = sorted(results.glob("**/quality_*.json"))
    if not found:
        raise UserError(f"{results}: no quality_<model>.json")
    registry_path = assets / "shipped.json"
    registry = json.loads(registry_path.read_text()) if registry_path.is_file() else {}
    for result in found:
        model, dirname = ship_one(result, method, assets, bf16)
        registry[model] = dirname
        typer.echo(f"{model}: shipped {method} adapter as {dirname}")
    registry_path.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    import sys

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    try:
        app()
    except UserError as exc:  # typer.run does not know our errors: a one-line message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
