"""FAQs of Debian packages in plain text (category `faq`), each with its own numbering:

    vim-faq   the Vim FAQ (`FAQ.gz` in vim-doc), 375 questions in 37 sections
    lsof-faq  the lsof FAQ (`00FAQ.gz` in lsof), 307 numbered questions, up to four deep ("3.43.1.2"), in 18 sections

Vim: after its index, the FAQ runs "SECTION N - TITLE" headings, each followed by numbered questions
("5.3. How do I ...?", a question may wrap onto indented lines) and their answers. One document per
section, each question a coarse unit with the question as its heading; hierarchy.SECTIONS groups a
concatenation's questions by section and hierarchy.deepen makes the answers' paragraphs fine: section ->
question -> paragraph. The "=====" rules between sections and the maintainer trailer are dropped.

lsof: after its table of contents, headings "N.M<TAB>text" start a line (a long one wraps onto the lines up
to the next blank line) and answers are tab-indented. One document per top-level section ("3.0 Lsof
Problems"); the numbering's depth is the level: N.M coarse, N.M.K medium, deeper fine.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import replace
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, FINE, MEDIUM, Document
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


# "3.43.1.2<TAB>Why do ..." at the start of a line: the number, then the heading's first line
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)+)[ \t]+(\S.*)$", re.M)
_NUMBER_LEVELS = {2: COARSE, 3: MEDIUM}  # depth of the number -> level; deeper: FINE


def parse_lsof(roots: Sequence[Path]) -> Iterator[Document]:
    path = next(roots[0].glob("usr/share/doc/lsof/00FAQ.gz"))
    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    heads = list(_NUMBERED.finditer(text))
    firsts = [i for i, h in enumerate(heads) if h.group(1) == "1.0"]
    heads = heads[firsts[-1]:] if firsts else []  # the body: from the last "1.0" (the first is the contents)
    sections: list[list[re.Match]] = []
    for head in heads:
        if head.group(1).endswith(".0") and head.group(1).count(".") == 1:
            sections.append([head])
        elif sections:
            sections[-1].append(head)
    for i, (top, *questions) in enumerate(sections):
        pieces, pending, pending_level = [], "", FINE
        for j, question in enumerate(questions):
            following = questions[j + 1] if j + 1 < len(questions) else (
                sections[i + 1][0] if i + 1 < len(sections) else None)
            chunk = text[question.start():following.start() if following else len(text)]
            heading, _, answer = chunk.partition("\n\n")  # a wrapped heading runs to the first blank line
            level = min(pending_level, _NUMBER_LEVELS.get(question.group(1).count(".") + 1, FINE))
            heading = pending + " ".join(heading.split()) + "\n\n"
            body = section(answer, level, heading=heading)
            # a heading without text of its own ("3.43.6 LTdnlc test issues") opens the next question's piece,
            # which takes the stronger of the two levels
            pending, pending_level = ("", FINE) if body else (heading, level)
            pieces += body
        if pieces:
            pieces[0] = replace(pieces[0], level=COARSE)  # a document opens at its strongest level
            number = top.group(1).split(".")[0]
            yield Document(f"lsof-faq/{int(number):02d}", "lsof-faq", "faq", f"lsof FAQ {number}: "
                           f"{top.group(2).strip()}", group=f"lsof-faq:{number}", pieces=tuple(pieces))


LSOF_FAQ = Source(
    name="lsof-faq", category="faq", packages=(Package("debian", "lsof", "4.95.0-1"),),
    license="Purdue licence (the package's copyright file, Files: *)",
    description="the lsof FAQ, questions numbered up to four deep, grouped by its sections", parse=parse_lsof,
    version=2)
