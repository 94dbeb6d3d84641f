"""`blockattn demo`: questions over the shipped documents, block vs full mode, side by side."""

from __future__ import annotations

import typer

QUESTIONS = (
    "Who designed the Bell Rock Lighthouse?",
    "In which city was Marie Curie born?",
    "When was the Bell Rock light first lit?",
)


def demo(
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or local HF model directory."),
    adapter: str = typer.Option("default", help="Block adapter for block mode: default (the shipped one), "
                                                "none, or a directory."),
    max_new_tokens: int = typer.Option(32, help="Most tokens per answer."),
) -> None:
    """Answer a few questions over three short documents in block and in full mode, on the block engine.

    The documents are prefilled once, by the first block-mode question; the later ones reuse their KV from the
    cache, which the TTFT column shows."""
    from importlib import resources

    from rich.console import Console
    from rich.table import Table

    from blockattn.engine.service import Service

    console = Console()
    folder = resources.files("blockattn") / "assets" / "demo"
    docs = sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.iterdir() if p.name.endswith(".txt"))
    with console.status(f"loading {model} ..."):
        service = Service.load(model, adapter=adapter, device="cpu")
    console.print(f"[bold]{len(docs)} documents[/] ({', '.join(n for n, _ in docs)}), one block each; "
                  f"model {service.model_name}, block adapter {service.adapter_name or 'none'}")
    table = Table(title="block attention vs full attention (greedy)", show_lines=True)
    table.add_column("question", max_width=28)
    table.add_column("block-mode answer", max_width=34)
    table.add_column("TTFT ms (blocks)", justify="right")
    table.add_column("full-mode answer", max_width=34)
    table.add_column("TTFT ms", justify="right")
    texts = [text for _, text in docs]
    for question in QUESTIONS:
        with console.status(question):
            row = [question]
            for mode in ("block", "full"):
                generation = service.generate(service.rag_prompt(texts, question, mode=mode),
                                              max_tokens=max_new_tokens)
                answer = generation.text().strip()
                usage = generation.usage
                blocks = usage.cached_blocks + usage.computed_blocks
                note = f" ({usage.cached_blocks}/{blocks} cached)" if mode == "block" else ""
                row += [answer, f"{usage.ttft_ms:.0f}{note}"]
        table.add_row(*row)
    console.print(table)
    console.print("Block mode: each document is a block prefilled alone and cached by content; a later request "
                  "with the same documents reuses the cached KV. `blockattn serve` does the same across requests.")
