"""Manual pages (roff with the `man` macros) → pieces: `.SH` sections coarse, `.SS` subsections medium,
paragraph macros (.PP, .TP, .IP, ...) paragraph breaks. Font and character escapes become plain text;
layout requests are dropped. `.so` redirect pages yield nothing.
"""

from __future__ import annotations

import re
import shlex

from blockattn.data.documents import COARSE, MEDIUM, Piece
from blockattn.data.formats.text import section

_CHARS = {"em": "—", "en": "–", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘", "cq": "’", "bu": "•",
          "co": "©", "rg": "®", "mu": "×", "de": "°", "ti": "~", "ha": "^", "at": "@", "rs": "\\", "pl": "+",
          "mi": "-", "eq": "=", "->": "→", "<-": "←", "ga": "`", "sq": "□", "hy": "-", "Fo": "«", "Fc": "»"}
_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\[[^\]]*\]|\(..|.)|s[+-]?\d+|"
                     r"[-e&|^~0 c%:]|.)")
_PARAGRAPH = {"PP", "LP", "P", "sp", "TP", "IP", "HP", "TQ"}
_FONT_ALTERNATING = {"BR", "BI", "IB", "IR", "RB", "RI"}
_FONT = {"B", "I", "SM", "SB"}


def _escape(m: re.Match) -> str:
    token = m.group(0)
    if m.group(1) or m.group(2):
        return _CHARS.get(m.group(1) or m.group(2), "")
    return {"\\-": "-", "\\e": "\\", "\\~": " ", "\\0": " ", "\\ ": " "}.get(token, "")


def unescape(line: str) -> str:
    return _ESCAPE.sub(_escape, line)


def _args(rest: str) -> list[str]:
    try:
        return shlex.split(rest, posix=True)
    except ValueError:
        return rest.split()


def _add(paragraph: list[str], text: str, fill: bool) -> None:
    """Append to the open paragraph (a one-item list): filled text joins with spaces, as roff would set it;
    no-fill text (.nf, .EX: synopses, code) keeps its lines."""
    current = paragraph[0]
    if fill:
        paragraph[0] = (current + " " if current and not current.endswith("\n") else current) + text.strip()
    else:
        paragraph[0] = (current + "\n" if current and not current.endswith("\n") else current) + text + "\n"


def man_pieces(source: str) -> list[Piece]:
    """Pieces of a man page ([] for a `.so` redirect)."""
    text = re.sub(r"\\\n", "", source.replace("\r\n", "\n"))  # continuation lines
    sections: list[tuple[str, int, list[str]]] = [("", COARSE, [""])]
    fill = True
    for line in text.split("\n"):
        if line.startswith((".\\\"", "'\\\"", '.\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"^[.'\s]*(\S+)\s*(.*)$", line)
            if not m:
                continue
            name, rest = m.group(1), m.group(2)
            if name == "so":
                return []
            if name in ("nf", "EX"):
                fill = False
            elif name in ("fi", "EE"):
                fill = True
            if name in ("SH", "SS"):
                heading = unescape(" ".join(_args(rest))).strip()
                sections.append((heading + "\n", COARSE if name == "SH" else MEDIUM, [""]))
            elif name in _PARAGRAPH:
                sections[-1][2].append("")
                if name in ("IP", "HP") and rest.strip():
                    sections[-1][2][-1] = unescape(_args(rest)[0]) + "\n"
            elif name in _FONT or name in _FONT_ALTERNATING:
                joiner = " " if name in _FONT else ""
                paragraph = [sections[-1][2][-1]]
                _add(paragraph, unescape(joiner.join(_args(rest))), fill)
                sections[-1][2][-1] = paragraph[0]
            continue  # layout and everything else
        paragraph = [sections[-1][2][-1]]
        _add(paragraph, unescape(line), fill)
        sections[-1][2][-1] = paragraph[0]
    pieces: list[Piece] = []
    for heading, level, paras in sections:
        pieces += section("\n\n".join(p.strip("\n") for p in paras if p.strip()), level, heading=heading)
    return pieces
