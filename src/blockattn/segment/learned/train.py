"""`blockattn segment train`: the learned segmenter's recipe (setup → train → select → tune → export).

    setup     token counts on train → static embeddings distilled from MiniLM (cached in WORK)
              unit features + labels of every train/validation document (cached in WORK, fp16)
    train     crops of `window` units, categories sampled evenly, masked BCE per level, AdamW + cosine
    select    every `eval_every` steps: mean WindowDiff at the gold block count on validation; best kept
    tune      decoding settings on validation: length priors per level, prior weights, level biases;
              each level's mean block length (what --level asks for) from train + validation gold
    export    one safetensors file (int8 embeddings, fp16 tagger, configs as metadata)

Every stage resumes from WORK: a killed run restarts from its last checkpoint.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.evaluate import distinct_levels, gold_levels, score_cuts
from blockattn.segment.labels import snap
from blockattn.segment.learned.augment import cross_category_concat, heading_variants
from blockattn.segment.learned import config as cfg
from blockattn.segment.learned.calibrate import calibration_rows, level_mean_tokens
from blockattn.segment.learned.embeddings import StaticEmbeddings, distill
from blockattn.segment.learned.features import feature_count, unit_features
from blockattn.segment.learned.segmenter import LearnedSegmenter, save_weights
from blockattn.segment.learned.tagger import Tagger
from blockattn.segment.request import LEVELS, Request
from blockattn.segment.tokens import load_tokenizer, tokenize

EMBED_DIM = 128
_IGNORE = -1  # label of a level the document has no gold for


def _rows(data: Path, split: str, per_category: int | None = None) -> list[dict]:
    """A split's rows; with `per_category`, the first that many of each category (files keep build order,
    which is already shuffled), so a subset stays balanced."""
    from blockattn.data import iter_split

    rows, taken = [], defaultdict(int)
    for row in iter_split(data, split, columns=["id", "category", "text", "boundaries", "markup"]):
        if per_category is None or taken[row["category"]] < per_category:
            taken[row["category"]] += 1
            rows.append(row)
    return rows


def labels_for(doc: Document, boundaries: dict) -> np.ndarray:
    """(units, levels) int8: 1 where a gold block of that level starts at the unit, 0 elsewhere,
    _IGNORE for levels without gold."""
    labels = np.full((len(doc.candidates) + 1, len(LEVELS)), _IGNORE, dtype=np.int8)
    for j, level in enumerate(LEVELS):
        if level in gold_levels(boundaries):
            labels[:, j] = 0
            index, _ = snap(doc, boundaries[level])
            labels[index + 1, j] = 1
    labels[0] = _IGNORE  # nothing can start at the first unit
    return labels


def embeddings(work: Path, train_rows: list[dict], log, reuse: Path | None = None) -> StaticEmbeddings:
    """The static token table: cached in WORK, else taken from the weights file `reuse`, else distilled
    from MiniLM with rarity weights counted on `train_rows`."""
    path = work / "embeddings.npz"
    if path.is_file():
        with np.load(path) as f:
            return StaticEmbeddings(f["codes"], f["scales"])
    if reuse is not None:
        from blockattn.segment.learned.segmenter import load_weights

        emb = load_weights(reuse)[0]
        log(f"static embeddings taken from {reuse}")
        np.savez(path, codes=emb.codes, scales=emb.scales)
        return emb
    tokenizer = load_tokenizer()
    counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for row in train_rows:
        counts += np.bincount(tokenize(row["text"]).ids, minlength=len(counts))
    log(f"distilling MiniLM into {len(counts)} static token embeddings (dim {EMBED_DIM}) ...")
    emb = distill(tokenizer, counts, EMBED_DIM)
    np.savez(path, codes=emb.codes, scales=emb.scales)
    return emb


def featurize(work: Path, split: str, rows: list[dict], emb: StaticEmbeddings, log,
              lexical_windows: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Concatenated unit features (fp16), labels and per-document offsets of a split, cached (one cache per
    feature set)."""
    path = work / (f"features-{split}.npz" if not lexical_windows
                   else f"features-{split}-lexical{'_'.join(map(str, lexical_windows))}.npz")
    if path.is_file():
        with np.load(path) as f:
            return dict(f)
    from rich.progress import track

    feats, labels, offsets = [], [], [0]
    for row in track(rows, description=f"featurising {split}"):
        doc = Document(row["text"])
        feats.append(unit_features(doc, emb, lexical_windows=lexical_windows).astype(np.float16))
        labels.append(labels_for(doc, row["boundaries"]))
        offsets.append(offsets[-1] + len(feats[-1]))
    cats = sorted({r["category"] for r in rows})
    out = {"features": np.concatenate(feats), "labels": np.concatenate(labels),
           "offsets": np.asarray(offsets, dtype=np.int64),
           "category": np.asarray([cats.index(r["category"]) for r in rows], dtype=np.int64)}
    np.savez(path, **out)
    log(f"{split}: {len(rows)} documents, {len(out['features'])} units")
    return out


class CropSampler:
    """Training crops of `window` units: a category uniformly, a document of it, a random start."""

    def __init__(self, data: dict[str, np.ndarray], window: int, seed: int):
        self.data, self.window = data, window
        self.rng = np.random.default_rng(seed)
        self.docs_by_cat = defaultdict(list)
        for i, c in enumerate(data["category"].tolist()):
            self.docs_by_cat[c].append(i)
        self.cats = sorted(self.docs_by_cat)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        offsets, window = self.data["offsets"], self.window
        xs = np.zeros((size, window, self.data["features"].shape[1]), dtype=np.float32)
        ys = np.full((size, window, len(LEVELS)), _IGNORE, dtype=np.int8)
        for b in range(size):
            cat = self.cats[self.rng.integers(len(self.cats))]
            d = self.docs_by_cat[cat][self.rng.integers(len(self.docs_by_cat[cat]))]
            lo, hi = offsets[d], offsets[d + 1]
            start = lo + self.rng.integers(max(1, hi - lo - window + 1))
            end = min(hi, start + window)
            xs[b, :end - start] = self.data["features"][start:end]
            ys[b, :end - start] = self.data["labels"][start:end]
        return xs, ys


def level_stats(rows: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """Median gold block length (tokens) per level, and the spread of its log, from training rows.

    Every document weighs the same (each of its blocks 1 / its block count): pooled over blocks, the
    few texts cut into hundreds of tiny units (dictionary entries, chat turns) set the median of every
    level alone (measured: ~64 tokens for coarse, medium and fine alike)."""
    logs, weights = defaultdict(list), defaultdict(list)
    for row in rows:
        doc_tokens = tokenize(row["text"])
        for level, gold in gold_levels(row["boundaries"]).items():
            bounds = np.concatenate([[0], doc_tokens.before(np.asarray(gold)), [len(doc_tokens)]])
            lengths = np.log(np.maximum(np.diff(bounds), 1))
            logs[level].append(lengths)
            weights[level].append(np.full(len(lengths), 1.0 / len(lengths)))
    medians, spreads = {}, {}
    for level in logs:
        x, w = np.concatenate(logs[level]), np.concatenate(weights[level])
        order = np.argsort(x)
        cum = np.cumsum(w[order])
        medians[level] = float(np.exp(x[order][np.searchsorted(cum, cum[-1] / 2)]))
        mean = np.average(x, weights=w)
        spreads[level] = float(np.sqrt(np.average((x - mean) ** 2, weights=w)))
    return medians, spreads


def validate(segmenter: LearnedSegmenter, docs: list[tuple[Document, dict]]) -> float:
    """Mean WindowDiff at the gold number of blocks over documents and their levels (logits memoised on
    the documents: call `forget_logits` after the weights change)."""
    scores = []
    for doc, boundaries in docs:
        for gold in distinct_levels(boundaries).values():
            cuts = segmenter.cut(doc, Request(num_blocks=len(gold) + 1))
            scores.append(score_cuts(doc, gold, cuts)["windowdiff"])
    return float(np.mean(scores))


def forget_logits(docs: list[tuple[Document, dict]]) -> None:
    for doc, _ in docs:
        doc.memo.pop("learned", None)


def tune_decoding(segmenter: LearnedSegmenter, docs: list[tuple[Document, dict]], log) -> None:
    """Choose `segmenter.decoding` settings on validation documents, in place."""
    d = segmenter.decoding
    # Exact counts: the weight and spread of a length prior around N / K (weight 0: log-odds alone).
    best = (validate(segmenter, docs), 0.0, d.count_prior_sigma)
    for weight in (0.1, 0.3, 1.0):
        for sigma in (0.5, 1.0):
            d.count_prior_weight, d.count_prior_sigma = weight, sigma
            wd = validate(segmenter, docs)
            if wd < best[0]:
                best = (wd, weight, sigma)
    _, d.count_prior_weight, d.count_prior_sigma = best
    log(f"count prior: weight {d.count_prior_weight}, sigma {d.count_prior_sigma} (WindowDiff {best[0]:.4f})")
    # Levels: per level, the prior weight and logit bias whose decoding best matches that level's gold.
    for level in LEVELS:
        totals = {}
        for weight in (0.0, 0.3, 1.0, 3.0):
            for bias in (-2.0, -1.0, 0.0, 1.0, 2.0):
                d.level_prior_weight[level], d.level_bias[level] = weight, bias
                scores = [score_cuts(doc, boundaries[level], _single_level_cut(segmenter, doc, level))["windowdiff"]
                          for doc, boundaries in docs if level in gold_levels(boundaries)]
                if scores:
                    totals[(weight, bias)] = float(np.mean(scores))
        d.level_prior_weight[level], d.level_bias[level] = min(totals, key=totals.get) if totals else (1.0, 0.0)
        log(f"level {level}: prior weight {d.level_prior_weight[level]}, bias {d.level_bias[level]}"
            + (f" (WindowDiff {min(totals.values()):.4f})" if totals else " (no gold: defaults)"))


def _single_level_cut(segmenter: LearnedSegmenter, doc: Document, level: str) -> np.ndarray:
    """Free decoding of one level on its own (no coarser level forced), for tuning that level."""
    offsets, positions, scores = segmenter.gains(doc, Request(level=level))
    return offsets[segmenter.decode_one_level(scores, positions, doc.total_tokens, level, Request(level=level))]


def train(data: Path, out: Path | None = None, steps: int = 3000, seed: int = 0, work: Path = Path("runs/segmenter"),
          device: str = "cpu", batch_size: int = 32, lr: float = 1e-3, eval_every: int = 500,
          val_per_category: int = 8, train_per_category: int | None = None, command: str = "",
          heading_share: float = 0.0, cross_category: int = 0, embeddings_from: Path | None = None,
          dim: int = 128, layers: int = 4, ffn: int = 512, lexical_windows: tuple[int, ...] = ()) -> Path:
    """Train, select on validation, tune decoding, export; returns the weights path. WORK/train_report.json
    records `command` and this call's wall seconds (a resumed run counts only its own).

    heading_share, cross_category: the augmentations of augment.py (that share of the headingless prose
    rows again with synthetic headings; that many cross-category concatenations), added to the train
    rows; validation stays plain SemanticSeg. dim, layers, ffn: the tagger's size (`config.TaggerConfig`; it
    travels in the weights file, so inference needs nothing else). lexical_windows: the lexical cohesion
    features' windows (features.py; () = none)."""
    import torch
    from rich.console import Console

    from blockattn.segment.assets import asset
    from blockattn.segment.learned.segmenter import WEIGHTS_ASSET
    from blockattn.segment.learned.torch_tagger import BoundaryTagger

    called = time.time()
    console = Console()
    log = console.log
    torch.manual_seed(seed)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out else Path(str(asset(WEIGHTS_ASSET)))

    train_rows = _rows(data, "train", train_per_category)
    rng = np.random.default_rng(seed)
    augmented = heading_variants(train_rows, heading_share, rng) + cross_category_concat(train_rows, cross_category, rng)
    log(f"train: {len(train_rows)} rows + {len(augmented)} augmented")
    train_rows += augmented
    val_rows = _rows(data, "validation")
    emb = embeddings(work, train_rows, log, embeddings_from)
    train_data = featurize(work, "train", train_rows, emb, log, lexical_windows)
    level_tokens, level_sigma = level_stats(train_rows)
    del train_rows
    val_docs = _validation_sample(val_rows, val_per_category, seed)

    tagger_config = cfg.TaggerConfig(in_dim=feature_count(EMBED_DIM, lexical_windows), dim=dim, layers=layers,
                                     ffn=ffn, lexical_windows=lexical_windows)
    decoding = cfg.DecodeConfig(level_tokens={**cfg.DecodeConfig().level_tokens, **level_tokens},
                                level_sigma={**cfg.DecodeConfig().level_sigma, **level_sigma},
                                level_mean_tokens={**cfg.DecodeConfig().level_mean_tokens,
                                                   **level_mean_tokens(calibration_rows(data))})
    model = BoundaryTagger(tagger_config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    state_path = work / "checkpoint.pt"
    step, best, history = 0, (np.inf, None, -1), []
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        step, best, history = state["step"], state["best"], state["history"]
        log(f"resumed at step {step}")
    sampler = CropSampler(train_data, tagger_config.window, seed + step)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tagger: {n_params:,} parameters; embeddings: {emb.codes.size:,} (int8)")

    def current_segmenter() -> LearnedSegmenter:
        weights = {k: v.astype(np.float32) for k, v in model.export_weights().items()}
        return LearnedSegmenter(emb, Tagger(tagger_config, weights), decoding)

    started, losses = time.time(), []
    while step < steps:
        model.train()
        xs, ys = sampler.batch(batch_size)
        x, y = torch.from_numpy(xs).to(device), torch.from_numpy(ys.astype(np.float32)).to(device)
        logits = model(x)
        mask = (y >= 0).float()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y.clamp(min=0), reduction="none")
                * mask).sum() / mask.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            log(f"step {step}/{steps}  loss {np.mean(losses[-50:]):.4f}  {time.time() - started:.0f}s")
        if step % eval_every == 0 or step == steps:
            model.eval()
            forget_logits(val_docs)
            wd = validate(current_segmenter(), val_docs)
            history.append({"step": step, "loss": float(np.mean(losses[-eval_every:])), "val_windowdiff": wd})
            if wd < best[0]:
                best = (wd, model.export_weights(), step)
            log(f"validation WindowDiff {wd:.4f} (best {best[0]:.4f} at step {best[2]})")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "best": best, "history": history}, state_path)

    weights = {k: v.astype(np.float32) for k, v in best[1].items()}
    segmenter = LearnedSegmenter(emb, Tagger(tagger_config, weights), decoding)
    forget_logits(val_docs)
    tune_decoding(segmenter, val_docs, log)
    save_weights(out, emb, best[1], tagger_config, decoding)
    (work / "train_report.json").write_text(json.dumps({
        "command": command, "wall_s": time.time() - called, "data": str(data),
        "train_documents": len(train_data["offsets"]) - 1, "augmented_documents": len(augmented),
        "augmentations": {"heading_share": heading_share, "cross_category": cross_category},
        "embeddings_from": str(embeddings_from) if embeddings_from else None, "steps": steps, "seed": seed,
        "best_step": best[2], "best_val_windowdiff": best[0],
        "tagger_parameters": n_params, "embedding_parameters": int(emb.codes.size), "history": history,
        "decoding": asdict(decoding), "weights": str(out), "weights_bytes": out.stat().st_size}, indent=1))
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def _validation_sample(rows: list[dict], per_category: int, seed: int) -> list[tuple[Document, dict]]:
    rng = np.random.default_rng(seed)
    by_cat = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    picked = []
    for cat in sorted(by_cat):
        idx = rng.permutation(len(by_cat[cat]))[:per_category]
        picked.extend((Document(by_cat[cat][i]["text"]), by_cat[cat][i]["boundaries"]) for i in sorted(idx))
    return picked
