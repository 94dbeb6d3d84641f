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
    max_new_tokens: int = typer.Option(32, help="Most tokens per answer."),
) -> None:
    """Answer a few questions over three short documents in block and in full mode."""
    from importlib import resources

    from rich.console import Console
    from rich.table import Table

    from blockattn.engine.generate import answer
    from blockattn.models import load

    console = Console()
    folder = resources.files("blockattn") / "assets" / "demo"
    docs = sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.iterdir() if p.name.endswith(".txt"))
    with console.status(f"loading {model} ..."):
        loaded = load(model)
    console.print(f"[bold]{len(docs)} documents[/] ({', '.join(n for n, _ in docs)}), one block each; "
                  f"model {loaded.name}")
    table = Table(title="block attention vs full attention (greedy)", show_lines=True)
    table.add_column("question", max_width=28)
    table.add_column("block-mode answer", max_width=34)
    table.add_column("TTFT ms", justify="right")
    table.add_column("full-mode answer", max_width=34)
    table.add_column("TTFT ms", justify="right")
    texts = [text for _, text in docs]
    for question in QUESTIONS:
        with console.status(question):
            block = answer(loaded, texts, question, mode="block", max_new_tokens=max_new_tokens)
            full = answer(loaded, texts, question, mode="full", max_new_tokens=max_new_tokens)
        table.add_row(question, block.answer, f"{block.ttft_ms:.0f}", full.answer, f"{full.ttft_ms:.0f}")
    console.print(table)
    console.print("Block mode here prefills every block without reuse; `blockattn serve` / the engine cache "
                  "block KV across requests.")
