"""Fixtures for the data tests: tiny package trees built from tests/data/fixtures (no network)."""

from __future__ import annotations

import pytest


@pytest.fixture
def package_tree(tmp_path):
    """Lay out files like an extracted package: {relative path: bytes or str} → root folder."""
    counter = iter(range(1000))

    def make(files: dict[str, bytes | str]) -> Path:
        root = tmp_path / f"pkg{next(counter)}"
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        return root

    return make
