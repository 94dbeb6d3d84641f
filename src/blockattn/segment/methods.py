"""The one interface every segmenter implements, and the registry the CLI and the evaluation use."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from blockattn.errors import UserError
from blockattn.segment.document import Document
from blockattn.segment.fit import fit_cuts
from blockattn.segment.request import LEVEL_TOKENS, Request


class Segmenter(ABC):
    """Cuts a document into blocks as a request asks."""

    name: str

    @abstractmethod
    def cut(self, doc: Document, request: Request) -> np.ndarray:
        """Sorted char offsets where blocks start, strictly inside (0, len(doc.text)). Guarantees: the
        request's hard limits hold (when any segmentation meets them), and `num_blocks` is met exactly
        whenever the text has enough cut points."""


class Baseline(Segmenter):
    """A segmenter with a natural size knob (`cuts_for_size`) and a way to aim at a block count
    (`cuts_for_count`); `fit_cuts` then enforces the request exactly. Baselines have no notion of level:
    a level means that level's typical block size."""

    @abstractmethod
    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        """Cuts aiming at blocks of about `size` tokens, by the method's own rule."""

    @abstractmethod
    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        """Cuts aiming at `num_blocks` blocks (fit_cuts repairs a near miss)."""

    def cut(self, doc: Document, request: Request) -> np.ndarray:
        if request.mode == "num_blocks":
            k = min(request.num_blocks, self.max_blocks(doc))
            return fit_cuts(doc, self.cuts_for_count(doc, k), request, num_blocks=k)
        size = request.target_tokens or LEVEL_TOKENS[request.level]
        return fit_cuts(doc, self.cuts_for_size(doc, size), request)

    def max_blocks(self, doc: Document) -> int:
        """The most blocks a request for an exact count can get: one per candidate span."""
        return len(doc.candidates) + 1


# name → "module:Class"; modules load on first use so that asking for one method imports only it.
METHODS = {
    "learned": "blockattn.segment.learned.segmenter:LearnedSegmenter",
    "fixed": "blockattn.segment.baselines.fixed:FixedWindows",
    "sentence": "blockattn.segment.baselines.sentence:SentencePacking",
    "paragraph": "blockattn.segment.baselines.paragraph:Paragraphs",
    "recursive": "blockattn.segment.baselines.recursive:RecursiveSplitter",
    "texttiling": "blockattn.segment.baselines.texttiling:TextTiling",
    "semantic": "blockattn.segment.baselines.semantic:SemanticChunker",
}


def get_segmenter(name: str) -> Segmenter:
    """A segmenter by method name (constructed once per process; heavy models load on first use)."""
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    if name not in _INSTANCES:
        module, cls = METHODS[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


_INSTANCES: dict[str, Segmenter] = {}
