"""FAQ: the Vim FAQ (`FAQ.gz` in Debian's vim-doc), 375 questions in 37 sections, plain text.

After its index, the FAQ runs "SECTION N - TITLE" headings, each followed by numbered questions
("5.3. How do I ...?", a question may wrap onto indented lines) and their answers. One document per
section, each question a coarse unit with the question as its heading; hierarchy.SECTIONS groups a
concatenation's questions by section and hierarchy.deepen makes the answers' paragraphs fine: section ->
question -> paragraph. The "=====" rules between sections and the maintainer trailer are dropped.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_SECTION = re.compile(r"^SECTION (\d+) - (.+)$", re.M)
# a question: "N.M. text" at the start of a line, and its wrapped continuation lines (indented)
_QUESTION = re.compile(r"^(\d+)\.(\d+)\. .+(?:\n[ \t]+\S.*)*$", re.M)
_RULE = re.compile(r"^=+$", re.M)


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    path = next(roots[0].glob("usr/share/doc/vim/FAQ.gz"))
    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    heads = list(_SECTION.finditer(text))
    numbers = [h.group(1) for h in heads]
    start = numbers.index("1", 1) if numbers.count("1") > 1 else 0  # skip the index's copy of the headings
    heads = heads[start:]
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = _RULE.split(text[head.end():end])[0]  # up to the rule that closes the section
        questions = list(_QUESTION.finditer(body))
        pieces = []
        for j, question in enumerate(questions):
            answer = body[question.end():questions[j + 1].start() if j + 1 < len(questions) else len(body)]
            heading = " ".join(question.group(0).split()) + "\n\n"
            pieces += section(answer, COARSE, heading=heading)
        if pieces:
            number, title = head.group(1), head.group(2).strip().capitalize()
            yield Document(f"vim-faq/{int(number):02d}", "vim-faq", "faq", f"Vim FAQ {number}: {title}",
                           group=f"vim-faq:{number}", pieces=tuple(pieces))


VIM_FAQ = Source(
    name="vim-faq", category="faq", packages=(Package("debian", "vim-doc", "2:9.0.1378-2+deb12u2"),),
    license="Vim licence (the package's copyright file, Files: *)",
    description="the Vim FAQ, one question per unit, grouped by its sections", parse=parse)
