"""Source code in three languages: Python (the CPython standard library, Debian `libpython3.11-stdlib` and
`libpython3.11-minimal`),
Go (the Go 1.19 standard library, `golang-1.19-src`) and C (a deterministic sample of Linux 6.1,
`linux-source-6.1`).

One document per file (its split group). Coarse pieces: top-level definitions (and the file header);
medium: Python methods. Tests, test data, generated files and data tables are left out (`generated`).
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import Document
from blockattn.data.fetch import Package
from blockattn.data.formats.code import c_cuts, code_pieces, go_cuts, python_cuts
from blockattn.data.sources.base import Source

# Above this a source file is almost always generated (tables, test vectors) rather than written.
_MAX_FILE_BYTES = 200_000
# Linux is ~30k C files; one in _LINUX_SAMPLE (chosen by a hash of the path, so stable) is plenty.
_LINUX_SAMPLE = 12
_LINUX_DIRS = ("kernel/", "mm/", "fs/", "net/", "lib/", "block/", "ipc/", "security/", "crypto/", "drivers/",
               "sound/", "init/")


# Generated files (issue 14): Go's convention (https://go.dev/s/generatedcode) and the common C/Python
# headers, looked for near the top only; and data tables: files whose text is mostly numeric literals
# (the bidi trie tables of go-code-train-00004 ran at ~1.06 characters per token).
_GENERATED = re.compile(r"^\s*(?://|#|/?\*)\s*(?:Code generated .*DO NOT EDIT|This file (?:is|was) "
                        r"(?:automatically|auto-?) ?generated|Automatically generated|DO NOT EDIT)", re.I | re.M)
_NUMBER = re.compile(r"\b(?:0[xX][0-9a-fA-F]+|\d+)\b")
_MAX_NUMERIC_SHARE = 0.3


def generated(text: str) -> bool:
    """Whether a source file is generated code or a data table rather than code someone wrote."""
    if _GENERATED.search(text[:4000]):
        return True
    chars = len(re.sub(r"\s", "", text))
    numeric = sum(len(m) for m in _NUMBER.findall(text))
    return chars > 0 and numeric / chars > _MAX_NUMERIC_SHARE


def _document(source: str, category: str, rel: str, text: str, cuts) -> Document | None:
    if generated(text):
        return None
    try:
        pieces = code_pieces(text, cuts(text))
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not pieces:
        return None
    return Document(f"{source}/{rel}", source, category, rel, group=f"{source}:{rel}", pieces=tuple(pieces))


def parse_python(roots: Sequence[Path]) -> Iterator[Document]:
    # The standard library is split over two packages (-minimal holds os, re, collections, ...).
    files = sorted((p.relative_to(root / "usr/lib/python3.11").as_posix(), p)
                   for root in roots for p in (root / "usr/lib/python3.11").rglob("*.py"))
    for rel, path in files:
        if path.is_symlink() or "test" in rel.split("/")[0] or "/test" in rel \
                or path.stat().st_size > _MAX_FILE_BYTES:
            continue
        doc = _document("cpython-stdlib", "python-code", rel, path.read_text(encoding="utf-8", errors="replace"),
                        python_cuts)
        if doc:
            yield doc


def parse_go(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "usr/share/go-1.19/src"
    for path in sorted(base.rglob("*.go")):
        rel = path.relative_to(base).as_posix()
        if path.is_symlink() or rel.endswith("_test.go") or "testdata/" in rel \
                or path.stat().st_size > _MAX_FILE_BYTES:
            continue
        doc = _document("go-stdlib", "go-code", rel, path.read_text(encoding="utf-8", errors="replace"), go_cuts)
        if doc:
            yield doc


def linux_sampled(rel: str) -> bool:
    return rel.startswith(_LINUX_DIRS) and rel.endswith(".c") and zlib.crc32(rel.encode()) % _LINUX_SAMPLE == 0


def parse_linux(roots: Sequence[Path]) -> Iterator[Document]:
    archive = next((roots[0] / "usr/src").glob("linux-source-*.tar.*"))
    found = []
    with tarfile.open(archive) as tf:  # one streaming pass over the ~1 GB tree
        for member in tf:
            rel = member.name.split("/", 1)[-1]
            if member.isfile() and member.size <= _MAX_FILE_BYTES and linux_sampled(rel):
                data = tf.extractfile(member).read().decode("utf-8", errors="replace")
                found.append((rel, data))
    for rel, text in sorted(found):
        doc = _document("linux", "c-code", rel, text, c_cuts)
        if doc:
            yield doc


PYTHON = Source(
    name="cpython-stdlib", category="python-code",
    packages=(Package("debian", "libpython3.11-stdlib", "3.11.2-6+deb12u8"),
              Package("debian", "libpython3.11-minimal", "3.11.2-6+deb12u8")),
    license="PSF License 2.0", description="CPython 3.11 standard library modules (no tests)", parse=parse_python,
    version=3)
GO = Source(
    name="go-stdlib", category="go-code", packages=(Package("debian", "golang-1.19-src", "1.19.8-2"),),
    license="BSD-3-Clause", description="Go 1.19 standard library sources (no tests)", parse=parse_go, version=2)
LINUX = Source(
    name="linux", category="c-code", packages=(Package("debian", "linux-source-6.1", "6.1.176-1"),),
    license="GPL-2.0", description=f"Linux 6.1 C files, one in {_LINUX_SAMPLE} by path hash", parse=parse_linux,
    version=3)
