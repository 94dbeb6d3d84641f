"""`blockattn segment bench`: segmentation speed of every method, and the learned CLI end to end.

Throughput: each method cuts the same documents (a seeded sample of the split, `--level medium`), each
time from a fresh Document, so tokenization and candidate finding are counted; tokens/s = their tokens /
wall time. End to end: `blockattn segment FILE --format json` on a 32k-token document in a new process,
process start included (median of several runs). The machine's load average is recorded beside the
numbers, because other jobs on a shared machine slow everything down.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blockattn.segment.document import Document
from blockattn.segment.evaluate import load_rows
from blockattn.segment.methods import get_segmenter
from blockattn.segment.request import Request
from blockattn.segment.tokens import tokenize

END_TO_END_TOKENS = 32_768


def throughput(texts: list[str], method: str) -> dict:
    """Tokens per second of `method` over `texts` (after one warm-up call that loads its models)."""
    segmenter = get_segmenter(method)
    segmenter.cut(Document(texts[0][:2000]), Request())  # load weights / models outside the timing
    tokens, started = 0, time.perf_counter()
    for text in texts:
        doc = Document(text)
        segmenter.cut(doc, Request(level="medium"))
        tokens += doc.total_tokens
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "documents": len(texts)}


def document_of(texts: list[str], n_tokens: int) -> str:
    """A document of exactly `n_tokens` tokens, made of the given texts one after another."""
    text = "\n\n".join(texts)
    while len(tokenize(text)) < n_tokens:
        text += "\n\n" + text
    starts = tokenize(text).starts
    return text[:int(starts[n_tokens])]


def end_to_end(text: str, runs: int = 5) -> dict:
    """Wall seconds of `blockattn segment FILE --format json` in a fresh process (median of `runs`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(text)
    command = [str(Path(sys.executable).with_name("blockattn")), "segment", f.name, "--format", "json"]
    times, reported = [], []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
            reported.append(json.loads(result.stdout)["ms"])
    finally:
        os.unlink(f.name)
    return {"command": " ".join(["blockattn", "segment", "DOC_32K.txt", "--format", "json"]),
            "tokens": len(tokenize(text)), "wall_s_median": statistics.median(times), "wall_s_all": times,
            "segment_ms_median": statistics.median(reported)}


def run_bench(data: Path, split: str, methods: list[str], out: Path, per_category: int, slow_per_category: int,
              seed: int, command: str) -> dict:
    from rich.console import Console
    from rich.table import Table

    rows = load_rows(data, split, per_category, seed)
    texts = [r["text"] for r in rows]
    slow_texts = [r["text"] for r in load_rows(data, split, slow_per_category, seed)]
    results = {}
    for method in methods:
        subset = slow_texts if method in ("texttiling", "semantic") else texts
        results[method] = throughput(subset, method)
    e2e = end_to_end(document_of(texts, END_TO_END_TOKENS)) if "learned" in methods else None
    report = {"command": command, "data": str(data), "split": split, "cpu_count": os.cpu_count(),
              "load_average_after": os.getloadavg(), "throughput": results, "end_to_end_32k": e2e,
              "goals": {"learned_tokens_per_s": 20_000, "end_to_end_32k_s": 2.0}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    table = Table(title="segmentation speed (level medium, fresh documents)")
    for col in ("method", "documents", "tokens", "tokens/s"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for method, r in results.items():
        table.add_row(method, str(r["documents"]), f"{r['tokens']:,}", f"{r['tokens_per_s']:,.0f}")
    console = Console()
    console.print(table)
    if e2e:
        console.print(f"32k-token document end to end (process start included): {e2e['wall_s_median']:.2f} s")
    return report
