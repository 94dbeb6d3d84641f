"""Perl's POD → pieces: `=head1` coarse, `=head2` medium, `=head3`/`=head4` fine (or a given mapping).

Formatting codes (B<...>, C<< ... >>, L<text|target>, E<gt>, ...) become their visible text; list and
block commands (=over, =item, =back, =begin/=end, =for, =pod, =cut, =encoding) become plain text or go.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from blockattn.data.documents import COARSE, FINE, MEDIUM, Piece
from blockattn.data.formats.text import section

DEFAULT_LEVELS = {1: COARSE, 2: MEDIUM, 3: FINE, 4: FINE}
_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
# Innermost first: a code whose content holds no further code; C<< x >> forms take any content.
_CODE_MULTI = re.compile(r"([A-Z])(<{2,})\s+(.*?)\s+(>{2,})", re.S)
_CODE = re.compile(r"([A-Z])<([^<>]*)>")


def _code(letter: str, content: str) -> str:
    if letter == "E":
        return _ESCAPES.get(content, html.unescape(f"&{content};") if not content.isdigit() else chr(int(content)))
    if letter == "L":
        content = content.split("|", 1)[0] if "|" in content else content
        return content.replace('"', "")
    if letter in ("X", "Z"):
        return ""
    return content


def plain(text: str) -> str:
    """POD formatting codes → visible text."""
    text = _CODE_MULTI.sub(lambda m: _code(m.group(1), m.group(3)) if len(m.group(2)) == len(m.group(4))
                           else m.group(0), text)
    for _ in range(5):
        new = _CODE.sub(lambda m: _code(m.group(1), m.group(2)), text)
        if new == text:
            break
        text = new
    return text


def pod_pieces(text: str, levels: dict[int, int] | None = None) -> tuple[str, list[Piece]]:
    """(NAME line or "", pieces) of a POD document."""
    levels = levels or DEFAULT_LEVELS
    sections: list[tuple[str, int, list[str]]] = [("", COARSE, [])]  # (heading, level, paragraphs)
    in_block = False
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        if not para.strip():
            continue
        command = re.match(r"^=(\w+)\s*(.*)", para, re.S)
        if command:
            name, rest = command.group(1), command.group(2).strip()
            if name in ("begin", "for"):
                in_block = name == "begin"
            elif name == "end":
                in_block = False
            elif name.startswith("head") and name[4:].isdigit():
                sections.append((plain(rest) + "\n\n", levels.get(int(name[4:]), FINE), []))
            elif name == "item" and rest:
                sections[-1][2].append(plain(rest))
            continue
        if not in_block:
            sections[-1][2].append(plain(para) if not para.startswith((" ", "\t")) else para)
    title = ""
    pieces: list[Piece] = []
    for heading, level, paras in sections:
        body = "\n\n".join(paras)
        if heading.strip() == "NAME" and not title:
            title = body.strip().split("\n")[0]
        pieces += section(body, level, heading=heading)
    return title, pieces
