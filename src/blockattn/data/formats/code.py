"""Source code → pieces at definition boundaries (Python via `ast`, Go and C by their layout conventions).

Each function here returns `(line_index, level)` cut points for a file's lines; `code_pieces` turns them
into pieces. Comments and decorators directly above a definition belong to it (they describe it).
"""

from __future__ import annotations

import ast
import re

from blockattn.data.documents import COARSE, MEDIUM, NONE, Piece
from blockattn.data.formats.text import code_section


def _with_leading_comments(lines: list[str], start: int, comment: str) -> int:
    """Move a definition's first line up over the comment lines directly above it."""
    while start > 0 and lines[start - 1].lstrip().startswith(comment) and lines[start - 1].strip():
        start -= 1
    return start


def python_cuts(source: str) -> list[tuple[int, int]]:
    """Top-level functions and classes start coarse pieces, methods medium ones. Raises SyntaxError."""
    tree = ast.parse(source)
    lines = source.split("\n")
    cuts = []

    def first_line(node: ast.AST) -> int:
        decorators = [d.lineno for d in getattr(node, "decorator_list", [])]
        return _with_leading_comments(lines, min([node.lineno, *decorators]) - 1, "#")

    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if isinstance(node, defs):
            cuts.append((first_line(node), COARSE))
        if isinstance(node, ast.ClassDef):
            methods = [m for m in node.body if isinstance(m, defs)]
            cuts += [(first_line(m), MEDIUM) for m in methods[1:] if first_line(m) > first_line(node)]
    return cuts


_GO_DECL = re.compile(r"^(?:func|type|var|const)\b")


def go_cuts(source: str) -> list[tuple[int, int]]:
    """gofmt'ed Go: every top-level declaration starts at column 0 with its keyword."""
    lines = source.split("\n")
    return [(_with_leading_comments(lines, i, "//"), COARSE) for i, line in enumerate(lines) if _GO_DECL.match(line)]


# Comments, strings and character literals, blanked before counting braces.
_C_NOISE = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)


def c_cuts(source: str) -> list[tuple[int, int]]:
    """Kernel-style C: a top-level item starts at column 0 after a blank line at brace depth 0; items with a
    function body (a '{' line at column 0) or a struct/union/enum body open coarse pieces, the rest are
    continuation pieces (includes, macros, prototypes) of the piece before."""
    blanked = _C_NOISE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    lines, plain = source.split("\n"), blanked.split("\n")
    starts, depth = [], 0
    for i, line in enumerate(lines):  # comments count as text here (they open items), not for braces
        if depth == 0 and line[:1] not in ("", " ", "\t", "{", "}", "#") and (i == 0 or not lines[i - 1].strip()):
            starts.append(i)
        depth = max(0, depth + plain[i].count("{") - plain[i].count("}"))
    cuts = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body = lines[start:end]
        is_definition = "{" in body or bool(re.match(r"^(?:static\s+|const\s+)*(?:struct|union|enum)\b.*\{",
                                                     lines[start]))
        cuts.append((start, COARSE if is_definition else NONE))
    return cuts


def code_pieces(source: str, cuts: list[tuple[int, int]]) -> list[Piece]:
    """Cut a file's lines at `cuts`; the text before the first cut (header, imports) is a coarse piece too."""
    lines = source.split("\n")
    marks = [(line, level) for line, level in sorted(dict(cuts).items()) if line > 0]
    marks.insert(0, (0, COARSE))
    pieces: list[Piece] = []
    for k, (start, level) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else len(lines)
        pieces += code_section("\n".join(lines[start:end]), level)
    return pieces
