"""Documents with underlined (or over- and underlined) section titles: reStructuredText and AsciiDoc.

    Title           ← a line of text
    =====           ← a line of one punctuation character, at least as long as the title

Heading depth follows the order in which title styles first appear (the reST rule). A style used once,
for the very first title, is the document title: it opens the document and sets no boundary. The depths
below it map to `levels` (default: coarse, medium, fine, fine, ...). Explicit targets directly above a
title (`.. _label:`, AsciiDoc `[[anchor]]`) belong to the heading markup, since they give it away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from blockattn.data.documents import COARSE, FINE, MEDIUM, Piece
from blockattn.data.formats.text import normalize, section

_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}$")
_TARGET = re.compile(r"^(?:\.\. _[^:]+:|\[\[[^\]]+\]\]|\[\[\[[^\]]+\]\]\])\s*$")
DEFAULT_LEVELS = (COARSE, MEDIUM, FINE)


def _find_titles(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, line after the adornment, style) for every section title."""
    found, i = [], 0
    while i < len(lines) - 1:
        line, below = lines[i], lines[i + 1]
        over = _ADORNMENT.match(line)
        if over and i + 2 < len(lines) and lines[i + 1].strip() and lines[i + 2] == line:
            found.append((i, i + 3, "over" + line[0]))
            i += 3
            continue
        if line.strip() and not line.startswith((" ", "\t")) and _ADORNMENT.match(below) \
                and len(below) >= len(line.rstrip()) and (i == 0 or not lines[i - 1].strip()) and not over:
            found.append((i, i + 2, below[0]))
            i += 2
            continue
        i += 1
    return found


# Sphinx directives that only steer the build (no text a reader sees).
_META_DIRECTIVE = re.compile(r"^\.\. (?:only|contents|index|highlight|toctree|sectionauthor|moduleauthor|"
                             r"currentmodule|module|testsetup|testcleanup|include|raw|ifconfig|kernel-doc|"
                             r"tabularcolumns|SPDX-License-Identifier)\b")


def drop_meta_directives(lines: list[str]) -> list[str]:
    """Remove build-only directives with their indented bodies (blank lines inside a body included)."""
    out, skipping = [], False
    for line in lines:
        if _META_DIRECTIVE.match(line):
            skipping = True
            continue
        if skipping and (not line.strip() or line[:1] in (" ", "\t")):
            continue
        skipping = False
        out.append(line)
    return out


def underlined_pieces(text: str, levels: Sequence[int] = DEFAULT_LEVELS) -> tuple[str, list[Piece]]:
    """(document title or "", pieces) of an underlined-heading document."""
    lines = drop_meta_directives(normalize(text).split("\n"))
    titles = _find_titles(lines)
    styles: list[str] = []
    for _, _, style in titles:
        if style not in styles:
            styles.append(style)
    doc_title = ""
    preamble = [ln for ln in lines[: titles[0][0]] if ln.strip() and not _TARGET.match(ln)] if titles else []
    if titles and sum(t[2] == styles[0] for t in titles) == 1 and not preamble:
        doc_title = lines[titles[0][0] + (1 if styles[0].startswith("over") else 0)].strip()
        styles.pop(0)
    depth = {s: levels[min(k, len(levels) - 1)] for k, s in enumerate(styles)}
    pieces: list[Piece] = []
    cuts = []  # (heading start line, body start line, level)
    for start, after, style in titles:
        if style in depth:
            while start > 0 and (_TARGET.match(lines[start - 1]) or (not lines[start - 1].strip() and start > 1
                                                                    and _TARGET.match(lines[start - 2]))):
                start -= 1
            cuts.append((start, after, depth[style]))
    # Text before the first section (the document title and its introduction) opens the document.
    first = cuts[0][0] if cuts else len(lines)
    intro_heading = "\n".join(lines[: titles[0][1]]).strip("\n") + "\n\n" if doc_title else ""
    intro = section("\n".join(lines[titles[0][1] if doc_title else 0:first]), COARSE, heading=intro_heading)
    pieces += intro
    carried_heading, carried_level = ("", FINE) if intro else (intro_heading, COARSE)
    for k, (start, after, level) in enumerate(cuts):
        end = cuts[k + 1][0] if k + 1 < len(cuts) else len(lines)
        heading = carried_heading + "\n".join(lines[start:after]).strip("\n") + "\n\n"
        level = min(level, carried_level)
        body = section("\n".join(lines[after:end]), level, heading=heading)
        if body:
            pieces += body
            carried_heading, carried_level = "", FINE
        else:  # a title straight followed by its first subsection: one boundary, as strong as the outer one
            carried_heading, carried_level = heading, level
    return doc_title, pieces
