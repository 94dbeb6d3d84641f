"""Files the segmenter ships under `blockattn/assets/segmenter/` (tokenizer, stopwords, learned weights)."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def asset(name: str) -> Traversable:
    """The shipped file `name` (it may be missing, e.g. weights before the first `segment train`)."""
    return resources.files("blockattn") / "assets" / "segmenter" / name
