"""Where training text comes from: synthetic tokens (tests, smoke runs), a pack file, or SemanticSeg itself."""

from __future__ import annotations

import numpy as np

from blockattn.distill.config import DataSection
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.segmenters import split_long

FIRST_ORDINARY_ID = 3  # ids below are special (pad, bos, eos) in the tiny models


def synthetic_corpus(n_texts: int, tokens_per_text: int, vocab_size: int, block_tokens: int,
                     seed: int) -> BlockCorpus:
    """Random-token texts cut into fixed-size blocks: enough to exercise every code path and to give a
    random-weight teacher something to be matched on."""
    rng = np.random.default_rng([seed, 0x5EED])
    texts = [split_long(rng.integers(FIRST_ORDINARY_ID, vocab_size, tokens_per_text).tolist(), block_tokens)
             for _ in range(n_texts)]
    return BlockCorpus.from_texts(texts)


def load_corpus(cfg: DataSection, split: str, vocab_size: int, seed: int, tokenizer=None) -> BlockCorpus:
    """The corpus of `split` ("train" or "heldout") for data config `cfg`."""
    if cfg.source == "synthetic":
        return synthetic_corpus(cfg.synthetic_texts, cfg.synthetic_tokens, vocab_size, cfg.block_tokens,
                                seed + (0 if split == "train" else 1))
    from blockattn.distill import pack

    if cfg.source == "pack":
        return pack.load_pack(cfg.path).corpus(split)
    if tokenizer is None:
        raise ValueError("reading SemanticSeg needs the model's tokenizer")
    dataset_split = "train" if split == "train" else "validation"
    return pack.semanticseg_corpus(cfg.path, dataset_split, tokenizer, cfg.segmenter, cfg.block_tokens,
                                   cfg.min_block_tokens, max_tokens=None, seed=seed)
