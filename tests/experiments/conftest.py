"""A miniature SemanticSeg (train / validation / test texts of many lines) and a miniature HotpotQA file."""

import gzip
import json

import pytest

from ..distill.conftest import one_cpu_thread, semanticseg  # noqa: F401  (the GPU scripts' tiny fixtures)


@pytest.fixture
def mini_semanticseg(tmp_path):
    from blockattn.data.parquet import split_file, write_rows

    def rows(split, n):
        out = []
        for i in range(n):
            lines = [f"In {split} text {i}, paragraph {j} describes the item numbered {j * 7} in detail.\n"
                     for j in range(80)]
            text = "".join(lines)
            cuts = [sum(len(line) for line in lines[:j]) for j in range(10, 80, 10)]
            out.append({"id": f"{split}/{i}", "category": "news", "source": "t", "kind": "natural", "text": text,
                        "n_tokens": len(text) // 4, "boundaries": {"coarse": cuts[::2], "medium": cuts, "fine": cuts},
                        "markup": False, "documents": [f"d{i}"]})
        return out

    root = tmp_path / "semanticseg"
    for split, n in (("train", 8), ("validation", 4), ("test", 8)):
        write_rows(split_file(root, split, "news"), rows(split, n))
    return root


@pytest.fixture
def mini_hotpotqa(tmp_path):
    path = tmp_path / "hotpot.jsonl.gz"
    items = [{"question_id": f"q{i}", "question_text": f"Who built tower {i}?",
              "answers_objects": [{"spans": [f"Builder {i}"]}],
              "contexts": [{"id": str(j), "title": f"Tower {j}", "paragraph_text": f"Tower {j} was built by Builder {j}.",
                            "is_supporting": j == i} for j in range(4)]} for i in range(3)]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(it) + "\n" for it in items)
    return path
