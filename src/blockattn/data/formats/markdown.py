"""Markdown (R Markdown vignettes) → pieces at ATX headings (`#`, `##`, ...).

The shallowest heading depth used in the document maps to coarse, the next to medium, deeper to fine.
Fenced code blocks are content: a `# comment` inside one is not a heading. Horizontal rules (`***`) are
separators, kept with the heading that follows them as markup. A YAML front matter block is dropped; its
`title` becomes the document title.
"""

from __future__ import annotations

import re

from blockattn.data.documents import COARSE, FINE, MEDIUM, Piece
from blockattn.data.formats.text import section

_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s{0,3}([*_-])(?:\s*\1){2,}\s*$")
_LEVELS = (COARSE, MEDIUM, FINE)


def markdown_pieces(text: str) -> tuple[str, list[Piece]]:
    """(front-matter title or "", pieces)."""
    lines = text.replace("\r\n", "\n").split("\n")
    title = ""
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
        for line in lines[1:end]:
            m = re.match(r"^title:\s*[\"']?(.*?)[\"']?\s*$", line)
            if m:
                title = m.group(1)
        lines = lines[end + 1:] if end else lines
    headings, rules, fenced = [], [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _ATX.match(line):
            headings.append((i, len(_ATX.match(line).group(1))))
        elif not fenced and _RULE.match(line):
            rules.append(i)
    # A horizontal rule is a separator: it goes with the heading after it (markup), or goes.
    heading_markup = {}
    for i in rules:
        following = next((h for h, _ in headings if h > i), None)
        if following is not None and not "".join(lines[i + 1:following]).strip():
            heading_markup[following] = lines[i] + "\n\n"
        lines[i] = ""
    depths = sorted({d for _, d in headings})
    level_of = {d: _LEVELS[min(k, len(_LEVELS) - 1)] for k, d in enumerate(depths)}
    pieces = section("\n".join(lines[: headings[0][0] if headings else len(lines)]), COARSE)
    for k, (start, depth) in enumerate(headings):
        end = headings[k + 1][0] if k + 1 < len(headings) else len(lines)
        heading = heading_markup.get(start, "") + lines[start].strip() + "\n\n"
        pieces += section("\n".join(lines[start + 1:end]), level_of[depth], heading=heading)
    return title, pieces
