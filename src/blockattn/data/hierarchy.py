"""Three boundary levels from the structure sources really have (issue 14).

Parsers give most documents one level only (a chapter, an entry, a top-level definition), so coarse,
medium and fine coincided in 11 of 17 categories. Two honest additions, applied to parsed documents before
planning (they change levels only, never text, so cached documents and token counts stay valid):

    deepen      inside a document:
                  Go       a type and the methods on it form one coarse group, its declarations medium
                           (file -> type -> function)
                  prose    a document whose boundaries all have one level gets its paragraph starts as fine
                           boundaries (chapter -> paragraph, question -> paragraph, section -> field);
                           only real paragraph breaks (a blank line before), never the cut inside an
                           over-long paragraph
    section_of  across documents, for concatenations: the super-topic a unit belongs to, from the source's
                own arrangement: the book or file it comes from, a fortune file, a chatterbot topic, the
                prompt a chit-chat conversation was started from, a dictionary's letter, a mail folder, a
                president, a licence family. A concatenation then
                runs several units of one section before moving to the next: coarse = section, medium =
                unit, fine = the unit's own inner boundaries.

Sources left out on purpose: lee-news (single-paragraph articles, no author/section in the corpus; bbc-news
gives the category its levels),
chit-chat conversations without a prompt (239 of 7168: no topic to group them by, so they are left out of
concatenations), the turns inside one conversation (no topic or session marks, so no level below the
conversation), sotu paragraphs (the texts are single lines, so pieces are sentence packs, not
paragraphs), C (no grouping of functions a parser can see; and a level inside a function would need new
pieces: a long definition's pieces are packed line runs, not its blank-line regions), and the unseen sets (never changed: they are judged against their own headings).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from blockattn.data.documents import COARSE, FINE, MEDIUM, NONE, Document

_CODE_CATEGORIES = ("python-code", "go-code", "c-code")
# Paragraphs are not a level here: a dictionary's first paragraph is its headword line; a chat's
# "paragraphs" are turns already grouped by the parser.
_NO_PARAGRAPH_LEVEL = ("dictionary", "conversations")


def _doc(doc: Document) -> str:
    return doc.id


def _letter(doc: Document) -> str:
    # groups are "<dictionary>:<two-letter prefix>" (e.g. "gcide:is"): the letter is the printed section
    return doc.group.split(":", 1)[-1][:1]


def _mail_folder(doc: Document) -> str:
    # "easy-ham-2/00661" -> "easy-ham": the corpus's own folders (easy ham, hard ham, spam)
    return re.sub(r"-\d+$", "", doc.title.split("/", 1)[0])


def _president(doc: Document) -> str:
    # "sotu/2005_george_w_bush_r" -> "george_w_bush"
    words = doc.id.split("/", 1)[-1].split("_")
    return "_".join(words[1:-1]) if len(words) >= 3 else doc.id


def _licence_family(doc: Document) -> str:
    # ScanCode keys start with the family: "gpl-2.0-plus", "bsd-new", "cc-by-4.0", "sun-bcl-j2re"
    key = doc.id.split("/", 1)[-1]
    match = re.match(r"[a-z]+", key)
    return match.group(0) if match else key


def _bbc_topic(doc: Document) -> str:
    # "bbc-news/tech/001" -> "tech": the corpus's own topic folders
    return doc.id.split("/")[1]


def _group(doc: Document) -> str:
    return doc.group


def _chat_prompt(doc: Document) -> str | None:
    # "chat 1a2b3c4d: Who is your modern-day hero?" -> the prompt (conversations.parse_chitchat); None: none
    return doc.title.partition(": ")[2] or None


SECTIONS: dict[str, Callable[[Document], str | None]] = {
    # a book, file or manual: its coarse parts (chapters, definitions, sections) are the units
    "janeaustenr": _doc, "bible-web": _doc, "bible-kjv": _doc,
    "cpython-stdlib": _doc, "go-stdlib": _doc, "linux": _doc,
    "python-docs": _doc, "linux-docs": _doc, "git-docs": _doc, "perl-docs": _doc, "postgres-docs": _doc,
    "manpages": _doc, "factbook": _doc, "wikipedia": _doc,
    "python-faq": _doc, "perlfaq": _doc, "debian-faq": _doc, "vim-faq": _doc, "lsof-faq": _doc,
    # one unit per document: the source's own grouping of them
    "fortunes": _group, "chatterbot": _group, "chitchat": _chat_prompt, "gcide": _letter, "wn": _letter, "foldoc": _letter,
    "bbc-news": _bbc_topic, "spamassassin": _mail_folder, "sotu": _president, "licenses": _licence_family,
}


# Categories whose levels may still coincide, and why: the dataset card says so (issue 14: only honest levels).
NO_HIERARCHY = {
    "news": "lee-news articles are single paragraphs, and the corpus gives no author or section to group them "
            "by, so its instances have one level; bbc-news concatenations have three (topic, article, paragraph).",
    "c-code": "a window of one C file has one level (its top-level definitions): no grouping of functions a "
              "parser can see, and no level inside a definition; concatenations group definitions by file.",
    "conversations": "the turns of one conversation carry no topic or session marks, so a conversation is the "
                     "finest level; concatenations group chit-chat conversations by the prompt they were started "
                     "from (ChatterBot's by topic file) as coarse blocks, one conversation per medium/fine block.",
}


def section_of(doc: Document) -> str | None:
    """The super-topic of a document's units in concatenations, or None where its source has none."""
    key = SECTIONS.get(doc.source)
    return key(doc) if key else None


_GO_DECL = re.compile(r"^(func|type|var|const)\b(?:\s*\(\s*\w*\s*\*?\s*(\w+))?(?:\s+(\w+))?", re.M)


def _go_levels(doc: Document) -> Document:
    """Group a Go file's top-level declarations: `type T` opens a coarse group that its methods join as
    medium boundaries; free functions, vars and consts form runs of their own (coarse where a run starts,
    medium inside it)."""
    current: str | None = None  # the type whose group we are in; "" = a run of free declarations
    pieces = list(doc.pieces)
    for i, piece in enumerate(pieces):
        if i == 0 or piece.level != COARSE:
            continue
        match = _GO_DECL.search(piece.text)
        if match is None:
            continue  # a comment-only piece: keep it coarse
        keyword, receiver, name = match.groups()
        if keyword == "type":
            group = name or "(types)"
            level, current = COARSE, group
        elif keyword == "func" and receiver:
            level = MEDIUM if receiver == current else COARSE
            current = receiver
        else:
            level = MEDIUM if current == "" else COARSE
            current = ""
        pieces[i] = replace(piece, level=level)
    return replace(doc, pieces=tuple(pieces))


def _paragraph_levels(doc: Document) -> Document:
    """Paragraph starts become fine boundaries, where the document has a single level of its own."""
    levels = {COARSE} | {p.level for p in doc.pieces[1:] if p.level <= FINE}  # the opening piece is coarse
    if len(levels) > 1:
        return doc
    pieces = list(doc.pieces)
    for i in range(1, len(pieces)):
        # a blank line before: a paragraph break (text.section cuts over-long paragraphs at single newlines)
        if pieces[i].level == NONE and doc.pieces[i - 1].text.endswith("\n\n"):
            pieces[i] = replace(pieces[i], level=FINE)
    return replace(doc, pieces=tuple(pieces))


def deepen(doc: Document) -> Document:
    """The document with the inner levels described in the module docstring (same pieces, same text)."""
    if doc.source not in SECTIONS:
        return doc  # unseen sets and sources without a hierarchy stay as parsed
    if doc.category == "go-code":
        return _go_levels(doc)
    if doc.category in _CODE_CATEGORIES or doc.category in _NO_PARAGRAPH_LEVEL:
        return doc
    return _paragraph_levels(doc)
