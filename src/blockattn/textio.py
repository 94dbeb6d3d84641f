"""Reading user-supplied text: one place that decides what counts as usable text."""

from __future__ import annotations

import sys
from pathlib import Path

from blockattn.errors import UserError

# A NUL byte never occurs in text a person would hand us; it is the cheapest reliable binary marker.
_BINARY_MARKER = b"\x00"


def decode_text(data: bytes, origin: str, allow_empty: bool = False) -> str:
    """Decode bytes as UTF-8 text, or raise UserError naming `origin` (a path, or "stdin")."""
    if _BINARY_MARKER in data[:1 << 20]:
        raise UserError(f"{origin}: looks like a binary file (contains NUL bytes), expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin}: not valid UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark is encoding noise, not content
        text = text[1:]
    if not allow_empty and not text.strip():
        raise UserError(f"{origin}: is empty (or only whitespace)")
    return text


def read_text_file(path: str | Path, allow_empty: bool = False) -> str:
    """Read a UTF-8 text file; '-' reads stdin. Raises UserError for anything unusable."""
    if str(path) == "-":
        return decode_text(sys.stdin.buffer.read(), "stdin", allow_empty)
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a text file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    return decode_text(data, str(p), allow_empty)
