"""Training-time variants of SemanticSeg rows (issue 14): synthetic headings, cross-category concatenations."""

import numpy as np
import pytest

from blockattn.segment.learned.augment import (HEADING_STYLES, NO_HEADING_CATEGORIES, cross_category_concat,
                                               heading_variants, with_headings)
from blockattn.segment.request import LEVELS

from .conftest import make_text


def _row(category, seed, markup=False):
    text, bounds = make_text(np.random.default_rng(seed), n_sections=4)
    return {"id": f"{category}-{seed}", "category": category, "text": text, "boundaries": bounds, "markup": markup}


def _nested(bounds):
    return set(bounds["coarse"]) <= set(bounds["medium"]) <= set(bounds["fine"])


class TestWithHeadings:
    @pytest.mark.parametrize("style", HEADING_STYLES)
    def test_boundaries_mark_the_headings_and_the_original_text_remains(self, style):
        row = _row("prose", 0)
        out = with_headings(row, np.random.default_rng(1), style)
        assert _nested(out["boundaries"])
        assert [len(out["boundaries"][lv]) for lv in LEVELS] == [len(row["boundaries"][lv]) for lv in LEVELS]
        for o in out["boundaries"]["coarse"]:  # every coarse block now opens with a heading line
            line = out["text"][o:].split("\n", 1)[0]
            assert line and not line[0].isspace() and len(line) < 80
        # removing what was inserted gives the original text back (each block's own text is untouched)
        for o_new, o_old in zip(out["boundaries"]["fine"], row["boundaries"]["fine"]):
            tail = row["text"][o_old:o_old + 40]
            assert tail in out["text"][o_new:o_new + 200]

    def test_atx_depth_follows_the_level(self):
        row = _row("prose", 2)
        out = with_headings(row, np.random.default_rng(0), "atx")
        for o in out["boundaries"]["coarse"]:
            assert out["text"][o:o + 2] == "# "

    def test_code_and_marked_up_rows_are_left_alone(self):
        rows = [_row(NO_HEADING_CATEGORIES[0], 0), _row("prose", 1, markup=True), _row("prose", 2)]
        out = heading_variants(rows, 1.0, np.random.default_rng(0))
        assert [r["id"].split("+")[0] for r in out] == ["prose-2"]


class TestCrossCategoryConcat:
    def test_seams_are_boundaries_at_every_level_and_runs_keep_theirs(self):
        rows = [_row(cat, s) for cat in ("a", "b", "c") for s in range(3)]
        out = cross_category_concat(rows, 20, np.random.default_rng(0), max_chars=3000)
        assert len(out) == 20
        by_id = {r["id"]: r for r in rows}
        for new in out:
            b = new["boundaries"]
            assert _nested(b)
            assert all(0 < o < len(new["text"]) for o in b["fine"]) and b["fine"] == sorted(b["fine"])
            cats = [by_id[d]["category"] for d in new["documents"]]
            assert len(set(cats)) == len(cats) >= 2
            assert len(b["coarse"]) >= len(cats) - 1
            for o in b["fine"]:  # every block starts with text, after a line break
                assert not new["text"][o].isspace() and new["text"][o - 1] == "\n"

    def test_needs_two_categories(self):
        assert cross_category_concat([_row("a", 0), _row("a", 1)], 5, np.random.default_rng(0)) == []
