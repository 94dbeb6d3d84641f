"""One deadline-bounded GPU run per model: does block attention hold on real multi-document QA?

    python -m blockattn.experiments.quality --model qwen2.5-coder-0.5b-instruct --pack .gpu/pack-qwen05.npz \\
        --out $OUT/qwen05 --deadline-minutes 14 [--ablations sinks,dropout,weighting,rag]

Phases, in order (each failure is recorded with its traceback; later phases still run):
    teacher    the base model answers the pack's RAG requests under full attention (batched greedy, capped), or
               --rag-from takes another run's answers (same model and pack: the GPU answers once)
    eval full, eval zero-shot block   measured first: their times give the estimate of what every later
               evaluation costs, and the training runs get the deadline minus that estimate (with margin)
    distill    block distillation: SemanticSeg continuation + RAG rows (data.rag_fraction of the rows; KL on
               the answer tokens of RAG rows), adapter snapshots every --snapshot-every steps
    block_ft   block fine-tuning on the same rows, for the steps distillation took (equal tokens)
    ablation_X "distilled -X", one run each at distillation's steps: -sinks (no sink tokens), -dropout (no block
               dropout), -weighting (uniform token weights), -rag (no RAG rows)
    eval       every trained variant: HotpotQA (first --hotpot-limit questions), planted facts with distractors
               at 4/8/16 documents, multi-hop chains with distractor chains at 4/8/16 documents (held-out
               template), ΔPPL and KL(full ‖ block) on held-out SemanticSeg text; a variant the deadline
               leaves no time for (by the estimate) is skipped and says so
    curves     up to --curve-points snapshots of distill and block-FT (evenly spaced, the final adapter last):
               held-out KL and HotpotQA on --curve-hotpot-limit questions
    recut      (--recut-limit N) T3: the distilled model on HotpotQA joined and re-cut by paragraph / learned /
               fixed / sentence segmentation at each question's paragraph count

Under --out (≤ 4 files): quality_<model>.json (schema: see rows/curves below; rewritten after every phase),
quality_<model>.png, adapters_<model>.tar.gz (distilled/ and block-FT/ adapters, LoRA weights in bfloat16; the
scores were measured with the run's fp32 weights), teacher_<model>.json.
Training time is split evenly between the training runs so that evaluation starts by --deadline-minutes minus
the measured evaluation estimate ("budget" in the JSON; --eval-minutes when nothing was measured); a run cut
short says so (its steps and tokens are in the JSON).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

import typer

ABLATIONS = {"sinks": ["adapter.sinks_per_block=0", "adapter.shared_sink=0"],
             "dropout": ["data.block_dropout=0.0"], "weighting": ["loss.weighting=none"],
             "rag": ["data.rag_fraction=0.0"]}
EVAL_MARGIN = 1.15  # the evaluation estimate times this, plus TAIL_SECONDS, is kept from the training time
# an adapter variant's evaluation time over the slower of full / zero-shot (0.5B, 2026-12-02, three runs on one
# H200: distilled 87 s, block-FT 72 s, full 67 s without the ~8 s of KL rows, zero-shot 38 s with them)
ADAPTER_COST = 1.3
TAIL_SECONDS = 30.0  # tarball, plot, last flushes
EVAL_BACKEND = "dense"  # prompts vary in length: a Flex kernel per length would recompile every batch
CONFIG = Path(__file__).resolve().parents[3] / "configs" / "quality-h200.yaml"


def commit() -> str:
    if os.environ.get("BLOCKATTN_COMMIT"):
        return os.environ["BLOCKATTN_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()} (torch {torch.__version__})"


class Results:
    """quality_<model>.json, rewritten whole after every change (a run cut short still reports what it did)."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def wait_for_file(path: Path, seconds: float) -> bool:
    end = time.perf_counter() + seconds
    while not path.is_file():
        if time.perf_counter() > end:
            return False
        time.sleep(2)
    return True


def safe_name(model: str) -> str:
    return Path(model).name.replace("/", "_")


def run_training(cfg, objective: str, work: Path) -> dict:
    from blockattn.distill.metrics import read_metrics
    from blockattn.distill.recipe import run

    summary = run(cfg, objective, work, progress=False)
    return {"summary": summary, "metrics": read_metrics(work / "metrics.jsonl")}


def eval_variant(name: str, adapter: Path | None, cfg, pack, hotpot_items, fact_items, ppl_rows: int,
                 query_tokens: int, batch_size: int, multihop_items=()) -> dict:
    """Every measurement of one variant, on a freshly loaded base (PEFT modifies the base in place)."""
    import torch

    from blockattn.distill.recipe import load_base
    from blockattn.distill.rows import eval_rows, row_budget
    from blockattn.eval.hotpotqa import evaluate
    from blockattn.eval.perplexity import delta_perplexity
    from blockattn.eval.retrieval import needle_accuracy
    from blockattn.eval.variants import full_attention, with_adapter, zero_shot_block

    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = load_base(cfg, device)
    if name == "full":
        variant = full_attention(base.model)
    elif adapter is None:
        variant = zero_shot_block(base.model)
    else:
        variant = with_adapter(base.model, adapter, name)
    out: dict = {"variant": name}
    bf16 = cfg.train.precision == "bf16"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if hotpot_items:
            out["hotpotqa"] = evaluate(variant, base.tokenizer, hotpot_items, batch_size=batch_size,
                                       backend=EVAL_BACKEND)
        if fact_items:
            out["facts"] = needle_accuracy(variant, base.tokenizer, fact_items, batch_size=batch_size,
                                           backend=EVAL_BACKEND)
        if multihop_items:
            out["multihop"] = needle_accuracy(variant, base.tokenizer, multihop_items, batch_size=batch_size,
                                              max_new_tokens=24, backend=EVAL_BACKEND)
    if variant.mode == "block" and ppl_rows:
        rows = eval_rows(pack.heldout, *row_budget(cfg.data.seq_len, variant.sinks_per_block, variant.shared_sink),
                         query_tokens=query_tokens, max_rows=ppl_rows)
        if rows:
            t0 = time.perf_counter()
            out["ppl"] = delta_perplexity(variant, pack.heldout, rows, cfg.data.seq_len, base.pad_id,
                                          batch_size=max(1, batch_size // 4), precision=cfg.train.precision,
                                          backend=EVAL_BACKEND, chunk_tokens=cfg.loss.chunk_tokens).to_dict()
            out["ppl_seconds"] = round(time.perf_counter() - t0, 2)
    del base, variant
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def recut_variant(adapter: Path, cfg, hotpot_items, batch_size: int) -> dict:
    """T3: the distilled model on HotpotQA re-cut by each segmentation method (`eval.recut`)."""
    import torch

    from blockattn.distill.recipe import load_base
    from blockattn.eval.recut import evaluate_recut
    from blockattn.eval.variants import with_adapter

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = load_base(cfg, device)
    variant = with_adapter(base.model, adapter, "distilled")
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16"):
        methods = evaluate_recut(variant, base.tokenizer, hotpot_items, batch_size=batch_size, backend=EVAL_BACKEND)
    del base, variant
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"variant": "distilled", "n": len(hotpot_items), "methods": methods}


def row_of(method: str, ev: dict | None, train: dict | None, full_correct: list[str] | None) -> dict:
    """One row of the contract (missing measurements are null)."""
    from blockattn.eval.hotpotqa import on_subset

    ev = ev or {}
    hp = ev.get("hotpotqa")
    facts = (ev.get("facts") or {}).get("by_docs", {})
    multihop = (ev.get("multihop") or {}).get("by_docs", {})
    ppl = ev.get("ppl")
    summary = (train or {}).get("summary") or {}
    return {"method": method, "train_tokens": summary.get("tokens"), "gpu_seconds": summary.get("train_seconds"),
            "hotpotqa": {"contains": hp["contains"] if hp else None, "em": hp["em"] if hp else None,
                         "n": hp["n"] if hp else 0,
                         "contains_on_full_correct": on_subset(hp, full_correct) if hp and full_correct else None},
            "facts": {d: (facts.get(d) or {}).get("accuracy") for d in ("4", "8", "16")},
            "multihop": {d: (multihop.get(d) or {}).get("accuracy") for d in ("4", "8", "16")},
            "delta_ppl": ppl["delta_ppl"] if ppl else None, "kl": ppl["kl"] if ppl else None}


def snapshots(run_dir: Path, most: int = 0) -> list[Path]:
    """Adapter snapshots of a run in step order, then its final adapter; with `most`, at most that many, evenly
    spaced, the final adapter always last."""
    snaps = sorted((run_dir / "snapshots").glob("step*"), key=lambda p: int(p.name[4:]))
    final = run_dir / "adapter"
    found = [p for p in [*snaps, final] if (p / "blockattn_adapter.json").is_file()]
    if most <= 0 or len(found) <= most:
        return found
    if most == 1:
        return found[-1:]
    picks = sorted({round(i * (len(found) - 1) / (most - 1)) for i in range(most)})
    return [found[i] for i in picks]


def eval_estimate(base_evals: dict[str, dict], n_trained: int, hotpot_n: int, curve_points: int,
                  curve_hotpot_n: int, recut_n: int) -> dict | None:
    """Seconds the evaluations after training will take, from the measured full / zero-shot evaluations:
    each trained variant ADAPTER_COST times the slower of the two, each curve point its share of HotpotQA (and
    a quarter of the KL rows), the re-cut four HotpotQA passes of its questions. None when nothing was measured."""
    secs = [e["seconds"] for e in base_evals.values() if e.get("seconds")]
    if not secs:
        return None
    variant = ADAPTER_COST * max(secs)
    hp = max([(e.get("hotpotqa") or {}).get("seconds", 0.0) for e in base_evals.values()] + [0.0])
    ppl = max([e.get("ppl_seconds", 0.0) for e in base_evals.values()] + [0.0])
    point = ADAPTER_COST * (hp * curve_hotpot_n / max(1, hotpot_n) + ppl / 4)
    recut = ADAPTER_COST * 4 * hp * recut_n / max(1, hotpot_n)
    total = n_trained * variant + curve_points * point + recut
    return {"variant_seconds": round(variant, 1), "curve_point_seconds": round(point, 1),
            "recut_seconds": round(recut, 1), "total_seconds": round(total, 1),
            "reserve_minutes": round((EVAL_MARGIN * total + TAIL_SECONDS) / 60, 2)}


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    rows = data.get("rows", [])
    names = [r["method"] for r in rows]
    axes[0].bar(names, [r["hotpotqa"]["contains"] or 0 for r in rows])
    axes[0].set_title(f"HotpotQA contains ({data['model']})")
    axes[0].tick_params(axis="x", rotation=45)
    for r in rows:
        for key, style, suffix in (("facts", "-", ""), ("multihop", "--", " (2-hop)")):
            pts = [(int(d), v) for d, v in (r.get(key) or {}).items() if v is not None]
            if pts:
                axes[1].plot(*zip(*sorted(pts)), marker="o", linestyle=style, label=r["method"] + suffix)
    axes[1].set_xlabel("documents (every one with a fact; dashed: two-hop chains)")
    axes[1].set_ylabel("planted-fact accuracy")
    axes[1].set_ylim(0, 1)
    for method, points in data.get("curves", {}).items():
        pts = [(p["tokens"] / 1e6, p["kl"]) for p in points if p.get("kl") is not None]
        if pts:
            axes[2].plot(*zip(*pts), marker="o", label=method)
    axes[2].set_xlabel("training tokens (M)")
    axes[2].set_ylabel("held-out KL(full ‖ block)")
    for ax in axes[1:]:
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pack_adapters(adapters: dict[str, Path], target: Path) -> None:
    """One tarball: <method>/<adapter files> (PEFT's generated README left out), the LoRA weights in bfloat16
    (what ships: half the bytes, so the tarball comes back from the GPU machine in one file of a call)."""
    import tempfile

    from blockattn.adapter import META_FILE
    from blockattn.experiments.ship import to_bfloat16

    with tarfile.open(target, "w:gz") as tar, tempfile.TemporaryDirectory() as tmp:
        for method, src in adapters.items():
            if not (src / META_FILE).is_file():
                continue
            for f in sorted(src.iterdir()):
                if not f.is_file() or f.name == "README.md":
                    continue
                arcname = f"{method}/{f.name}"
                if f.name == "adapter_model.safetensors":
                    half = Path(tmp) / f"{method}-{f.name}"
                    shutil.copyfile(f, half)
                    to_bfloat16(half)
                    f = half
                tar.add(f, arcname=arcname)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def quality(model: str = typer.Option(..., help="Model name (blockattn models list) or 'tiny' (smoke tests)."),
            pack: Path = typer.Option(..., help="Pack from `python -m blockattn.experiments.pack` (its tokenizer "
                                                "must be the model's)."),
            out: Path = typer.Option(..., help="Where the ≤ 4 result files go ($OUT)."),
            config: Path = typer.Option(CONFIG, help="Run config (training and data settings)."),
            work: Path = typer.Option(Path("/tmp/blockattn-quality"), help="Checkpoints, snapshots, adapters."),
            steps: int = typer.Option(2000, help="Most steps of distillation (the deadline usually stops it)."),
            ablations: str = typer.Option("", help="Comma-separated subset of sinks,dropout,weighting,rag."),
            methods: str = typer.Option("distill,block_ft", help="Training runs besides the ablations "
                                                                  "(empty: evaluate full and zero-shot only)."),
            deadline_minutes: float = typer.Option(14.0, help="Wall time of the whole run."),
            eval_minutes: float = typer.Option(5.0, help="Wall time kept for evaluation and curves when the full / "
                                               "zero-shot evaluations measured nothing (else the measured estimate)."),
            teacher_minutes: float = typer.Option(1.5, help="Most wall time of the teacher pre-pass."),
            rag_items: int = typer.Option(1500, help="RAG requests the teacher answers (pack holds up to 3000)."),
            rag_from: Path = typer.Option(None, help="Another run's teacher answers (its WORK/rag.npz; same model "
                                          "and pack) instead of the teacher pre-pass; taken after the full / "
                                          "zero-shot evaluations, waiting up to --teacher-minutes + 1 for it."),
            report_tag: str = typer.Option("", help="Suffix of the result files' model name (a second run of one "
                                           "model in the same session, e.g. 'ablations')."),
            answer_tokens: int = typer.Option(48, help="Cap on each teacher answer."),
            hotpot_limit: int = typer.Option(500, help="HotpotQA questions per variant."),
            hotpotqa: str = typer.Option("", help="dev500.jsonl.gz (default: $BLOCKATTN_HOTPOTQA or ../shared)."),
            facts_per_count: int = typer.Option(50, help="Distractor-fact items per document count."),
            ppl_rows: int = typer.Option(32, help="Held-out rows for ΔPPL and KL."),
            query_tokens: int = typer.Option(256, help="Query-block tokens per held-out row."),
            snapshot_every: int = typer.Option(40, help="Adapter snapshot every N steps (efficiency curves)."),
            curve_points: int = typer.Option(6, help="Most snapshots per run on the curve (evenly spaced, the final "
                                             "adapter last; 0 = all)."),
            curve_hotpot_limit: int = typer.Option(100, help="HotpotQA questions per curve point."),
            batch_size: int = typer.Option(16, help="Evaluation batch size."),
            recut_limit: int = typer.Option(0, help="T3: HotpotQA questions re-cut by each segmentation method "
                                            "and answered by the distilled model (0 = skip)."),
            init_from: Path = typer.Option(None, help="Continue training from an earlier run's adapters: a "
                                           "directory holding distilled/ (and block-FT/ when block_ft runs), e.g. "
                                           "an unpacked adapters_<model>.tar.gz. Not with --ablations."),
            overrides: list[str] = typer.Option([], "--set", help="Config override section.field=value."),
            seed: int = typer.Option(0)) -> None:
    """Teacher pre-pass, distillation, block-FT, ablations, evaluation and curves for one model."""
    import torch

    from blockattn.distill.config import load_config
    from blockattn.distill.pack import load_pack
    from blockattn.data.hotpotqa import load_items
    from blockattn.data.needles import NeedleItem, first_per_count

    started = time.perf_counter()
    deadline = started + 60 * deadline_minutes
    left = lambda: (deadline - time.perf_counter()) / 60  # noqa: E731  minutes
    chosen = [a.strip() for a in ablations.split(",") if a.strip()]
    unknown = sorted(set(chosen) - set(ABLATIONS))
    if unknown:
        raise typer.BadParameter(f"unknown ablation(s) {unknown}; choose from {sorted(ABLATIONS)}")
    trains = [m.strip() for m in methods.split(",") if m.strip()]
    if set(trains) - {"distill", "block_ft"}:
        raise typer.BadParameter("--methods: a subset of distill,block_ft")
    if chosen and "distill" not in trains:
        raise typer.BadParameter("ablations need distill in --methods (they train at its steps)")
    warm = {}  # run label → the adapter it continues from
    if init_from is not None:
        if chosen:
            raise typer.BadParameter("--init-from continues distill/block-FT only: the ablations would no longer "
                                     "be at equal tokens; run them without --init-from")
        for label, sub in (("distill", "distilled"), ("block_ft", "block-FT")):
            if label in trains:
                if not (init_from / sub).is_dir():
                    raise typer.BadParameter(f"--init-from {init_from}: no {sub}/ adapter for {label}")
                warm[label] = init_from / sub
    name = safe_name(model) + (f"-{report_tag}" if report_tag else "")
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    loaded_pack = load_pack(pack)
    rag_path = work / "rag.npz"
    base = [f"model.name={model}", "data.source=pack", f"data.path={pack}", f"data.rag_path={rag_path}",
            f"train.seed={seed}",
            f"train.steps={steps}", f"train.snapshot_every={snapshot_every}", *overrides]
    cfg = load_config(config, base)
    rag_fraction = cfg.data.rag_fraction
    results = Results(out / f"quality_{name}.json", {
        "command": " ".join(["python -m blockattn.experiments.quality", *sys.argv[1:]]), "commit": commit(),
        "machine": machine(), "seed": seed, "wall_seconds": 0.0, "model": model, "report_tag": report_tag,
        "rows": [],
        "curves": {"distilled": [], "block-FT": []}, "examples": [], "phases": {},
        "config": cfg.to_dict(), "rag_fraction": rag_fraction, "pack": loaded_pack.meta,
        "note": "gpu_seconds = training wall seconds of a process that may share its GPU with other runs"})
    data = results.data
    trained: dict[str, dict] = {}
    adapters: dict[str, Path] = {}

    def phase(label: str, fn) -> object:
        t0 = time.perf_counter()
        try:
            value = fn()
            data["phases"][label] = {"status": "ok", "seconds": round(time.perf_counter() - t0, 1)}
            return value
        except Exception:
            data["phases"][label] = {"status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                                     "error": traceback.format_exc()[-6000:]}
            traceback.print_exc()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return None
        finally:
            data["wall_seconds"] = round(time.perf_counter() - started, 1)
            results.flush()

    # ---------------------------------------------------------------- teacher pre-pass
    def teacher() -> dict:
        from blockattn.distill.recipe import load_base
        from blockattn.experiments.teacher import teacher_answers

        if not loaded_pack.rag:
            raise ValueError("the pack holds no RAG requests (build it with blockattn.experiments.pack)")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        b = load_base(cfg, device)
        asked = loaded_pack.rag[:rag_items]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16"):
            ragset, examples, kinds = teacher_answers(b.model, b.tokenizer, asked, answer_tokens, batch_size,
                                                      deadline=time.perf_counter() + 60 * teacher_minutes)
        ragset.save(rag_path)
        info = {"answered": ragset.n, "asked": len(asked), "answered_kinds": kinds,
                "asked_kinds": {k: sum(r["kind"] == k for r in asked) for k in kinds}, "examples": examples}
        (out / f"teacher_{name}.json").write_text(json.dumps(info, indent=2))
        return info

    def teacher_from() -> dict:
        from blockattn.distill.ragset import load_ragset

        if not wait_for_file(rag_from, 60 * (teacher_minutes + 1)):
            raise FileNotFoundError(f"--rag-from {rag_from}: not written within {teacher_minutes + 1} minutes")
        shutil.copyfile(rag_from, rag_path)
        return {"answered": load_ragset(rag_path).n, "from": str(rag_from)}

    wants_rag = rag_fraction > 0 and bool(trains)

    def take_teacher(fn) -> None:
        info = phase("teacher", fn)
        data["teacher"] = {k: v for k, v in (info or {}).items() if k != "examples"}

    rag_path.unlink(missing_ok=True)  # never train on an earlier run's answers left in --work
    if wants_rag and rag_from is None:
        take_teacher(teacher)

    # ---------------------------------------------------------------- evaluation items; the untrained variants
    fact_items = first_per_count([NeedleItem.from_dict(d) for d in loaded_pack.facts], facts_per_count)
    multihop_items = first_per_count([NeedleItem.from_dict(d) for d in loaded_pack.multihop], facts_per_count)
    if not multihop_items:
        data["phases"]["multihop"] = {"status": "skipped", "error": "the pack holds no multi-hop items (older pack)"}
    hotpot_items = []
    if hotpot_limit > 0:
        hotpot_items = phase("load_hotpotqa", lambda: load_items(hotpotqa or None, hotpot_limit)) or []
    eval_cfg = load_config(config, base)
    methods_of = {"distill": "distilled", "block_ft": "block-FT", **{f"ablation_{a}": f"distilled -{a}" for a in ABLATIONS}}
    run_of = {v: k for k, v in methods_of.items()}
    evaluated: dict[str, dict] = {}
    full_correct: list[str] | None = None

    def evaluate_one(method: str, adapter: Path | None, need_seconds: float = 0.0) -> None:
        nonlocal full_correct
        if 60 * left() < need_seconds + 5:
            data["phases"][f"eval {method}"] = {"status": "skipped", "error": f"deadline: {60 * left():.0f} s left, "
                                                f"the estimate needs {need_seconds:.0f} s"}
            return
        ev = phase(f"eval {method}", lambda: eval_variant(method, adapter, eval_cfg, loaded_pack, hotpot_items,
                                                          fact_items, ppl_rows, query_tokens, batch_size,
                                                          multihop_items))
        if ev is None:
            return
        evaluated[method] = ev
        if method == "full" and ev.get("hotpotqa"):
            full_correct = [q for q, (c, _) in ev["hotpotqa"]["per_item"].items() if c]
        data["rows"] = [row_of(m, evaluated[m], trained.get(run_of.get(m, "")), full_correct) for m in evaluated]
        data["evaluation"] = {m: {k: v for k, v in e.items() if k != "hotpotqa"} for m, e in evaluated.items()}
        data["full_correct"] = len(full_correct) if full_correct is not None else None
        results.flush()

    for method in ("full", "zero-shot block"):
        evaluate_one(method, None)
    if wants_rag and rag_from is not None:  # the other run's teacher answered meanwhile
        take_teacher(teacher_from)
    rag_ok = wants_rag and rag_path.is_file()
    if rag_fraction > 0 and not rag_ok:
        data["rag_fraction"] = 0.0  # no teacher answers: every run trains on continuation only (and says so)
    rag_set = [] if rag_ok else ["data.rag_fraction=0.0"]
    # the mix, stated (issue 11): the share of RAG rows, the kinds' shares in the requests, what was answered
    data["mix"] = {"rag_fraction": data["rag_fraction"], "continuation": "SemanticSeg train text, query blocks",
                   "rag_kinds": (loaded_pack.meta.get("rag_mix") or {}).get("shares"),
                   "rag_shapes": {k: v for k, v in (loaded_pack.meta.get("rag_mix") or {}).items() if k != "shares"},
                   "answered_kinds": (data.get("teacher") or {}).get("answered_kinds")}

    # ---------------------------------------------------------------- training runs
    runs = [("distill", "distill", [])] if "distill" in trains else []
    runs += [("block_ft", "block_ft", [])] if "block_ft" in trains else []
    runs += [(f"ablation_{a}", "distill", ABLATIONS[a]) for a in chosen]
    curve_runs = ("distill" in trains) + ("block_ft" in trains)
    estimate = eval_estimate({m: evaluated[m] for m in ("full", "zero-shot block") if m in evaluated}, len(runs),
                             len(hotpot_items), (curve_points + bool(warm)) * curve_runs,
                             min(curve_hotpot_limit, len(hotpot_items)),
                             min(recut_limit, len(hotpot_items)) if "distill" in trains else 0)
    reserve = estimate["reserve_minutes"] if estimate else eval_minutes
    data["budget"] = {"deadline_minutes": deadline_minutes, "eval_estimate": estimate, "reserve_minutes": reserve,
                      "reserve_from": "measured" if estimate else "--eval-minutes",
                      "train_minutes_left": round(left() - reserve, 2), "runs": len(runs)}
    distill_steps = steps
    for i, (label, objective, extra) in enumerate(runs):
        minutes = max(0.3, (left() - reserve) / (len(runs) - i))
        budget = [f"train.max_minutes={minutes:.2f}"] + ([f"train.steps={distill_steps}"] if i else [])
        if label == "ablation_rag" or not rag_ok:
            extra = [*extra, "data.rag_fraction=0.0"]
        if label in warm:
            extra = [*extra, f"adapter.init_from={warm[label]}"]
        run_cfg = load_config(config, base + rag_set + extra + budget)
        shutil.rmtree(work / label, ignore_errors=True)  # a fresh run: never resume another session's state
        result = phase(label, lambda: run_training(run_cfg, objective, work / label))
        if result is not None:
            trained[label] = result
            data[label] = {"summary": result["summary"], "metrics": result["metrics"], "overrides": extra + budget}
            if label == "distill":
                distill_steps = result["summary"]["steps"]
            adapters[label] = work / label / "adapter"
        results.flush()

    # ---------------------------------------------------------------- evaluation of the trained variants
    need = (estimate or {}).get("variant_seconds", 0.0)
    for label, adapter in adapters.items():
        evaluate_one(methods_of[label], adapter, need)
    hp = {m: e["hotpotqa"] for m, e in evaluated.items() if e.get("hotpotqa")}
    data["examples"] = [{"question": it.question, "gold": list(it.answers),
                         "outputs": {m: r["outputs"].get(it.qid) for m, r in hp.items()}} for it in hotpot_items[:5]]
    results.flush()

    # ---------------------------------------------------------------- efficiency curves
    def curves() -> None:
        subset = hotpot_items[:curve_hotpot_limit]
        point_need = (estimate or {}).get("curve_point_seconds", 0.0)
        for label, method in (("distill", "distilled"), ("block_ft", "block-FT")):
            points = []
            zero = evaluated.get("zero-shot block")
            if zero:
                points.append({"tokens": 0, "gpu_seconds": 0.0, "kl": (zero.get("ppl") or {}).get("kl"),
                               "hotpotqa": None})
            # a continued run's curve starts at the adapter it continued (its tokens carried on)
            start = [warm[label]] if label in warm and label in adapters else []
            for snap in start + snapshots(work / label, curve_points):
                if 60 * left() < point_need + 5:
                    data["curves_cut"] = f"deadline: {60 * left():.0f} s left at {label} {snap.name}"
                    break
                meta = json.loads((snap / "blockattn_adapter.json").read_text())
                ev = eval_variant(method, snap, eval_cfg, loaded_pack, subset, [], max(4, ppl_rows // 4),
                                  query_tokens, batch_size)
                points.append({"tokens": meta.get("tokens"), "gpu_seconds": meta.get("train_seconds"),
                               "kl": (ev.get("ppl") or {}).get("kl"),
                               "hotpotqa": (ev.get("hotpotqa") or {}).get("contains"), "snapshot": snap.name})
                data["curves"][method] = points
                results.flush()
            kls = [p["kl"] for p in points if p.get("tokens") and p.get("kl") is not None]
            if len(kls) >= 2:  # issue 11: stop when the held-out KL flattens -- how much the last stretch gained
                data.setdefault("curves_last_kl_drop", {})[method] = round((kls[-2] - kls[-1]) / kls[-2], 4)
        data["curves_hotpot_n"] = len(subset)

    if adapters:
        phase("curves", curves)

    # ---------------------------------------------------------------- T3: does segmentation matter
    if recut_limit > 0 and "distill" in adapters and hotpot_items:
        if 60 * left() < (estimate or {}).get("recut_seconds", 0.0) + 5:
            data["phases"]["recut"] = {"status": "skipped", "error": f"deadline: {60 * left():.0f} s left"}
        else:
            data["recut"] = phase("recut", lambda: recut_variant(adapters["distill"], eval_cfg,
                                                                 hotpot_items[:recut_limit], batch_size))

    # ---------------------------------------------------------------- files
    keep = {m: adapters[k] for k, m in (("distill", "distilled"), ("block_ft", "block-FT")) if k in adapters}
    if keep:
        phase("tarball", lambda: pack_adapters(keep, out / f"adapters_{name}.tar.gz"))
    phase("plot", lambda: plot(data, out / f"quality_{name}.png"))
    data["wall_seconds"] = round(time.perf_counter() - started, 1)
    results.flush()
    print(json.dumps({"phases": {k: v["status"] for k, v in data["phases"].items()},
                      "rows": [{"method": r["method"], "hotpotqa": r["hotpotqa"]["contains"], "facts": r["facts"],
                                "kl": r["kl"]} for r in data["rows"]]}, indent=2))
    failed = any(v["status"] == "failed" for v in data["phases"].values())
    raise typer.Exit(code=1 if failed else 0)


if __name__ == "__main__":
    app()
