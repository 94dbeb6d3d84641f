"""Conversations: the Chit-Chat dataset (PyPI `chitchat-dataset`, ~7k two-person chats) and the English
ChatterBot corpus (PyPI `chatterbot-corpus`). One document per conversation, its turns as lines
"A: ..." / "B: ..." (speakers are content, not markup). Chit-chat conversations are their own split
groups, titled with the prompt they were started from (36 prompts; `hierarchy.section_of` groups chats by
it); ChatterBot's are grouped by topic file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, NONE, Document, Piece
from blockattn.data.fetch import Package
from blockattn.data.sources.base import Source

_TURNS_PER_PIECE = 6  # a place to cut long chats, never a gold boundary


def conversation_pieces(turns: list[str]) -> list[Piece]:
    """Turns (alternating speakers) → pieces of a few turns each; the first opens the conversation."""
    lines = [f"{'AB'[i % 2]}: {' '.join(t.split())}\n" for i, t in enumerate(turns) if t.strip()]
    chunks = ["".join(lines[i:i + _TURNS_PER_PIECE]) for i in range(0, len(lines), _TURNS_PER_PIECE)]
    chunks[-1:] = [chunks[-1] + "\n"] if chunks else []
    return [Piece(c, COARSE if k == 0 else NONE) for k, c in enumerate(chunks)]


def parse_chitchat(roots: Sequence[Path]) -> Iterator[Document]:
    data = json.loads(next(roots[0].glob("chitchat_dataset/dataset.json")).read_text(encoding="utf-8"))
    for key in sorted(data):
        turns = [" ".join(m["text"] for m in turn) for turn in data[key]["messages"]]
        pieces = conversation_pieces(turns)
        if len(pieces) and sum(len(p.text) for p in pieces) > 200:
            prompt = " ".join((data[key].get("prompt") or "").split())
            title = f"chat {key[:8]}: {prompt}" if prompt else f"chat {key[:8]}"
            yield Document(f"chitchat/{key}", "chitchat", "conversations", title,
                           group=f"chitchat:{key}", pieces=tuple(pieces))


def parse_chatterbot(roots: Sequence[Path]) -> Iterator[Document]:
    import yaml

    base = next(roots[0].glob("chatterbot_corpus/data/english"))
    for path in sorted(base.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for k, conversation in enumerate(data.get("conversations") or []):
            pieces = conversation_pieces([str(t) for t in conversation])
            if pieces:
                yield Document(f"chatterbot/{path.stem}/{k}", "chatterbot", "conversations", f"{path.stem} #{k}",
                               group=f"chatterbot:{path.stem}", pieces=tuple(pieces))


CHITCHAT = Source(
    name="chitchat", category="conversations", packages=(Package("pypi", "chitchat-dataset", "0.9.0"),),
    license="MIT (package); conversations collected by the Chit-Chat Challenge",
    description="two-person chit-chat conversations", parse=parse_chitchat, version=2)
CHATTERBOT = Source(
    name="chatterbot", category="conversations", packages=(Package("pypi", "chatterbot-corpus", "1.3.3"),),
    license="BSD-3-Clause", description="ChatterBot English dialogue corpus", parse=parse_chatterbot)
