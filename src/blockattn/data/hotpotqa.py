"""The HotpotQA file in `../shared/data` (distractor setting, dev500.jsonl.gz): questions, gold answers and
~10 Wikipedia paragraphs each, read into `HotpotItem`s. Evaluation and benchmark data only: never train or tune on
these questions or paragraphs (`eval.hotpotqa` scores them; `bench serve` uses the paragraphs as a corpus).
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from blockattn.errors import UserError

ENV = "BLOCKATTN_HOTPOTQA"
RELATIVE = Path("data") / "hotpotqa" / "dev500.jsonl.gz"


@dataclass(frozen=True)
class HotpotItem:
    qid: str
    question: str
    answers: tuple[str, ...]
    paragraphs: tuple[str, ...]  # "title\ntext", in the given order
    supporting: tuple[bool, ...] = ()  # per paragraph: one of the gold supporting paragraphs


def default_path() -> Path:
    """$BLOCKATTN_HOTPOTQA, else ../shared/data/... beside the repository (or shared/ inside it)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    repo = Path(__file__).resolve().parents[3]
    for root in (repo.parent / "shared", repo / "shared", Path("/work/shared")):
        if (root / RELATIVE).is_file():
            return root / RELATIVE
    return repo.parent / "shared" / RELATIVE


def load_items(path: str | Path | None = None, limit: int | None = None) -> list[HotpotItem]:
    p = Path(path) if path else default_path()
    if not p.is_file():
        raise UserError(f"HotpotQA file {p}: not found (pass --hotpotqa PATH or set ${ENV})")
    items = []
    try:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                if limit is not None and len(items) >= limit:
                    break
                d = json.loads(line)
                answers = tuple(s for a in d["answers_objects"] for s in a.get("spans", []) if s)
                paragraphs = tuple(f"{c['title']}\n{c['paragraph_text']}" for c in d["contexts"])
                supporting = tuple(bool(c.get("is_supporting")) for c in d["contexts"])
                items.append(HotpotItem(d["question_id"], d["question_text"], answers, paragraphs, supporting))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"HotpotQA file {p}: unreadable ({type(exc).__name__}: {exc})") from None
    return items
