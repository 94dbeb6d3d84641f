"""Legal: licence texts from ScanCode's licence database (PyPI `licensedcode-data`), one document per
licence. Versions and variants of one licence family (gpl-2.0, gpl-2.0-plus, gpl-3.0, ...) share a split
group, since they share most of their text. Licences have no inner structure here: they appear only in
concatenations. Very short notices (under 600 characters) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_MIN_CHARS = 600


def licence_family(key: str) -> str:
    """"gpl-2.0-plus" → "gpl", "apache-1.1" → "apache", "bsd-new" → "bsd-new"."""
    return re.split(r"[-_.]v?\d", key, maxsplit=1)[0]


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    base = next(roots[0].glob("licensedcode/data/licenses"))
    for path in sorted(base.glob("*.LICENSE")):
        text = path.read_text(encoding="utf-8", errors="replace")
        front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        meta = front.group(1) if front else ""
        body = text[front.end():] if front else text
        if len(body.strip()) < _MIN_CHARS or re.search(r"^is_(deprecated|unknown|generic): yes", meta, re.M):
            continue
        name = re.search(r"^name: (.*)$", meta, re.M)
        pieces = section(body, COARSE)
        if pieces:
            yield Document(f"licenses/{path.stem}", "licenses", "legal", name.group(1) if name else path.stem,
                           group=f"license:{licence_family(path.stem)}", pieces=tuple(pieces))


LICENSES = Source(
    name="licenses", category="legal", packages=(Package("pypi", "licensedcode-data", "32.1.0"),),
    license="licence texts: their own terms (reproduction permitted); database CC-BY-4.0",
    description="ScanCode licence database texts", parse=parse)
