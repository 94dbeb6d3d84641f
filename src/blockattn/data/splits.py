"""Assigning source groups (a novel, a Bible book, a file, an email) to train / validation / test.

Guarantees: every group lands in exactly one split, so no document, chapter or file contributes to two
splits (issue 3); the assignment depends only on the group names and sizes, not on the build seed or the
number of instances, so every build of the dataset shares one split; each split receives close to its
share of the category's text (by size, not by group count).
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "test")
SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _order_key(group: str) -> str:
    return hashlib.sha256(group.encode()).hexdigest()


def assign_splits(group_sizes: dict[str, int]) -> dict[str, str]:
    """group → split. Groups are visited in a fixed pseudo-random order and each goes to the split that is
    furthest below its share of the total size."""
    total = sum(group_sizes.values()) or 1
    filled = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for group in sorted(group_sizes, key=_order_key):
        split = max(SPLITS, key=lambda s: (SHARES[s] * total - filled[s]) / SHARES[s])
        assignment[group] = split
        filled[split] += group_sizes[group]
    return assignment
