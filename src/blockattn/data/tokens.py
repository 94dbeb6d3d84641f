"""Token counting with the default model's tokenizer (SmolLM2-135M-Instruct), fast enough for bulk use.

transformers' AutoTokenizer costs seconds to import; the `tokenizers` library reads the same
tokenizer.json directly and encodes batches in Rust, which is what counting 300M tokens needs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from blockattn.models import DEFAULT_MODEL, resolve


@lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(resolve(DEFAULT_MODEL)) / "tokenizer.json"))


def count_tokens(texts: list[str]) -> list[int]:
    """Exact token counts (no special tokens added), as the default model would see the texts."""
    if not texts:
        return []
    return [len(e.ids) for e in _tokenizer().encode_batch(texts, add_special_tokens=False)]


def tokenizer_name() -> str:
    return DEFAULT_MODEL
