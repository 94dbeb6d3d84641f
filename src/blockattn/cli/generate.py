"""`blockattn generate`: answer a question over documents, in block or full mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from blockattn.errors import UserError


def generate(
    doc: List[Path] = typer.Option(..., "--doc", help="A document (UTF-8 text file); repeat for several."),
    question: str = typer.Option(..., "--question", "-q", help="The question to answer."),
    mode: str = typer.Option("block", help="block: documents cannot see each other; full: plain causal attention."),
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or local HF model directory."),
    max_new_tokens: int = typer.Option(64, help="Most tokens to generate."),
    segment: str = typer.Option("none", help="none: each --doc is one block; auto: cut documents with the segmenter."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the answer."),
) -> None:
    """Answer QUESTION from the given documents (greedy, deterministic)."""
    from blockattn.textio import read_text_file

    if mode not in ("block", "full"):
        raise UserError(f"unknown mode {mode!r}; choose block or full")
    if segment not in ("none",):
        raise UserError(f"--segment {segment!r} is not available yet; use none")
    if not question.strip():
        raise UserError("the question is empty")
    documents = [read_text_file(p) for p in doc]

    from blockattn.engine.generate import answer
    from blockattn.models import load

    loaded = load(model)
    result = answer(loaded, documents, question, mode=mode, max_new_tokens=max_new_tokens)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "model": loaded.name}))
    else:
        typer.echo(result.answer)
