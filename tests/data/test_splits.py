"""Split assignment: disjoint by group, independent of the seed, close to the target shares."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.data.splits import SHARES, SPLITS, assign_splits


class TestAssignSplits:
    @given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(1, 10_000), min_size=1, max_size=200))
    @settings(max_examples=100, deadline=None)
    def test_every_group_in_exactly_one_split(self, sizes):
        assignment = assign_splits(sizes)
        assert set(assignment) == set(sizes) and set(assignment.values()) <= set(SPLITS)

    def test_shares_follow_text_size(self):
        sizes = {f"g{i}": 100 + (i * 37) % 400 for i in range(1000)}
        assignment = assign_splits(sizes)
        total = sum(sizes.values())
        for split in SPLITS:
            share = sum(n for g, n in sizes.items() if assignment[g] == split) / total
            assert abs(share - SHARES[split]) < 0.01

    def test_order_of_input_does_not_matter(self):
        sizes = {f"g{i}": i + 1 for i in range(50)}
        assert assign_splits(sizes) == assign_splits(dict(reversed(list(sizes.items()))))
