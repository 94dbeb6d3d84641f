"""Does segmentation matter? Each method judged by the block-attention loss it causes (issue 12, T3).

For each sampled SemanticSeg document (its first ~`max_tokens` tokens, cut at a line end) every method cuts
the same text into the same number of blocks K = the gold *medium* block count of that text, so the methods
differ only in *where* they cut. The text is then read in block mode (the last block as the query block) and
the score is the mean per-token KL(full ‖ block) over all its tokens (`eval.blockkl`): a cut that separates
text which needs each other costs KL, a cut between independent parts costs little. `gold` is the dataset's
own medium boundaries, the reference.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from blockattn.eval.blockkl import token_kl
from blockattn.eval.variants import Variant

METHODS = ("gold", "learned", "fixed", "paragraph", "sentence")


def sample_documents(root: str | Path, split: str, n: int, max_tokens: int, seed: int) -> list[dict]:
    """`n` documents of `split` in a seeded order, each truncated to about `max_tokens` tokens at a line end
    and kept only when at least three gold medium blocks remain (with two, the first block is exact and the
    second is the query block, so every method would score 0): {"id", "category", "text", "cuts", "max_tokens"}."""
    from blockattn.data.parquet import iter_split

    rows = list(iter_split(root, split, columns=["id", "category", "text", "n_tokens", "boundaries"]))
    random.Random(seed).shuffle(rows)
    docs = []
    for row in rows:
        text = row["text"]
        if row["n_tokens"] > max_tokens:
            # characters per token is close to constant within a text; snapping to a line end keeps lines whole
            end = int(len(text) * max_tokens / row["n_tokens"])
            end = text.rfind("\n", 0, end) + 1 or end
            text = text[:end]
        cuts = [c for c in row["boundaries"]["medium"] if 0 < c < len(text)]
        if len(cuts) >= 2 and text.strip():
            docs.append({"id": row["id"], "category": row["category"], "text": text, "cuts": cuts,
                         "max_tokens": max_tokens})
        if len(docs) == n:
            break
    return docs


def save_documents(docs: list[dict], path: Path) -> None:
    """The sample as gzipped JSON lines, so another machine (the GPU) scores exactly these texts."""
    import gzip
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)


def load_documents(path: Path, n: int) -> list[dict]:
    """The first `n` documents of a `save_documents` file."""
    import gzip
    import json

    from blockattn.errors import UserError

    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = [json.loads(line) for line, _ in zip(f, range(n))]
    except (OSError, ValueError) as exc:
        raise UserError(f"document sample {path}: unreadable ({type(exc).__name__})") from None
    if not docs or not all({"id", "text", "cuts"} <= set(d) for d in docs):
        raise UserError(f"document sample {path}: no documents with id, text and cuts")
    return docs


def cut_texts(doc: dict, method: str) -> list[str]:
    """The document's text cut into len(cuts) + 1 blocks by `method` ("gold": its own medium cuts)."""
    text = doc["text"]
    if method == "gold":
        edges = [0, *doc["cuts"], len(text)]
        return [text[a:b] for a, b in zip(edges, edges[1:])]
    from blockattn.segment import segment_text

    return [b.text for b in segment_text(text, method, num_blocks=len(doc["cuts"]) + 1)]


def _sig(x: float) -> float:
    return float(f"{x:.4g}")  # 4 significant digits: small JSON, and a tiny KL stays visible


def segmentation_kl(variants: list[Variant], tokenizer, docs: list[dict], methods=METHODS,
                    backend: str = "auto") -> dict:
    """{"methods": {method: {variant: {"kl", "kl_doc_mean", "tokens", "blocks_mean"}}}, "documents": n,
    "seconds": s}. "kl" is token-weighted over all documents, "kl_doc_mean" the mean of per-document means."""
    start = time.perf_counter()
    sums = {m: {v.name: [0.0, 0, 0.0] for v in variants} for m in methods}  # kl sum, tokens, sum of doc means
    blocks_total = {m: 0 for m in methods}
    for doc in docs:
        for method in methods:
            blocks = [tokenizer.encode(t, add_special_tokens=False) for t in cut_texts(doc, method)]
            blocks = [b for b in blocks if b]
            blocks_total[method] += len(blocks)
            for v in variants:
                result = token_kl(v, blocks, backend=backend)
                acc = sums[method][v.name]
                acc[0] += sum(result.kl)
                acc[1] += len(result.kl)
                acc[2] += result.mean()
    n = max(1, len(docs))
    table = {m: {name: {"kl": _sig(s / max(1, t)), "kl_doc_mean": _sig(dm / n), "tokens": t,
                        "blocks_mean": round(blocks_total[m] / n, 2)}
                 for name, (s, t, dm) in per.items()} for m, per in sums.items()}
    return {"methods": table, "documents": len(docs), "seconds": round(time.perf_counter() - start, 1)}
