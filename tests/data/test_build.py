"""End-to-end builds on synthetic documents (cached under a temporary $BLOCKATTN_HOME, so nothing is
fetched): output layout, determinism, split disjointness, atomicity, and the CLI's handling of bad input."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blockattn.data import build as build_mod
from blockattn.data import iter_split, load_split
from blockattn.data.documents import COARSE, MEDIUM, NONE, Document, Piece
from blockattn.data.sources import SOURCES, save_documents
from blockattn.errors import UserError
from blockattn.models.home import blockattn_home

_WORDS = ("river stone lamp harbour keeper signal winter engine ledger orchard violin copper meadow "
          "lantern valley market thunder glacier compass archive").split()
CATEGORIES = ["quotes-poems", "speeches"]


def _text(seed: int, n: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + ".\n\n"


def _documents(source: str, category: str) -> list[Document]:
    docs = []
    for d in range(40):
        pieces = [Piece(_text(d * 100 + s * 10 + p, 60), (COARSE if s % 2 == 0 else MEDIUM) if p == 0 else NONE,
                        f"Part {s}\n\n" if p == 0 else "") for s in range(8) for p in range(4)]
        docs.append(Document(f"{source}/{d}", source, category, f"doc {d}", f"{source}:{d}", tuple(pieces)))
    return docs


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A $BLOCKATTN_HOME holding the real converted model and synthetic parsed sources."""
    real_models = blockattn_home() / "models"
    fake = tmp_path / "home"
    fake.mkdir()
    (fake / "models").symlink_to(real_models)
    monkeypatch.setenv("BLOCKATTN_HOME", str(fake))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    for source in ("fortunes", "sotu"):
        save_documents(SOURCES[source], _documents(source, SOURCES[source].category))
    return fake


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


class TestBuild:
    def test_layout_and_columns(self, home, tmp_path):
        result = build_mod.build(tmp_path / "ds", 12, CATEGORIES, seed=1)
        out = tmp_path / "ds"
        assert len(result.stats) == 12
        assert {p.parent.name for p in out.glob("data/*/*.parquet")} <= {"train", "validation", "test"}
        assert (out / "README.md").read_text().startswith("---\nconfigs:")
        assert (out / "lengths.png").stat().st_size > 0 and (out / build_mod.MARKER).is_file()
        rows = [r for split in ("train", "validation", "test") for r in _rows(out, split)]
        for row in rows:
            assert build_mod.MIN_TOKENS <= row["n_tokens"] <= build_mod.MAX_TOKENS
            assert row["category"] in CATEGORIES and row["kind"] in ("natural", "concat")
            assert set(row["boundaries"]) == {"coarse", "medium", "fine"}
        dataset = load_split(out, "train")
        assert dataset.num_rows == len(_rows(out, "train"))
        assert set(dataset.column_names) >= {"id", "category", "source", "text", "n_tokens", "boundaries", "markup"}

    def test_card_says_why_a_category_has_no_hierarchy(self, home, tmp_path, monkeypatch):
        from blockattn.data import hierarchy

        monkeypatch.setitem(hierarchy.NO_HIERARCHY, "speeches", "no level below a speech.")
        build_mod.build(tmp_path / "ds", 12, CATEGORIES, seed=1)
        card = (tmp_path / "ds" / "README.md").read_text()
        assert "- speeches levels: no level below a speech." in card and "quotes-poems levels" not in card

    def test_same_seed_same_bytes_any_worker_count(self, home, tmp_path):
        build_mod.build(tmp_path / "a", 12, CATEGORIES, seed=3)
        build_mod.build(tmp_path / "b", 12, CATEGORIES, seed=3, workers=2)
        build_mod.build(tmp_path / "c", 12, CATEGORIES, seed=4)
        assert _files(tmp_path / "a") == _files(tmp_path / "b")
        assert _files(tmp_path / "a") != _files(tmp_path / "c")

    def test_no_document_in_two_splits(self, home, tmp_path):
        build_mod.build(tmp_path / "ds", 20, CATEGORIES, seed=0)
        seen = {}
        for split in ("train", "validation", "test"):
            for row in _rows(tmp_path / "ds", split):
                for doc in row["documents"]:
                    assert seen.setdefault(doc, split) == split

    def test_rebuild_replaces_an_earlier_build(self, home, tmp_path):
        build_mod.build(tmp_path / "ds", 6, CATEGORIES, seed=0)
        build_mod.build(tmp_path / "ds", 8, CATEGORIES, seed=0)
        assert sum(1 for _ in iter_split(tmp_path / "ds", "train", ["id"])) + sum(
            1 for s in ("validation", "test") if (tmp_path / "ds/data" / s).exists()
            for _ in iter_split(tmp_path / "ds", s, ["id"])) == 8
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]

    def test_failed_build_leaves_nothing(self, home, tmp_path, monkeypatch):
        def boom(job, progress):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(build_mod, "build_category", boom)
        with pytest.raises(UserError, match="disk full"):
            build_mod.build(tmp_path / "ds", 6, CATEGORIES)
        assert not (tmp_path / "ds").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]

    def test_refuses_a_folder_that_is_not_a_dataset(self, home, tmp_path):
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("precious")
        with pytest.raises(UserError, match="not a dataset"):
            build_mod.build(tmp_path / "mine", 6, CATEGORIES)
        assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


class TestUnitsApi:
    def test_units_are_coarse_spans_with_titles(self, home):
        from blockattn.data.sources import load_units

        units = load_units("sotu")
        assert len(units) == 40 * 4  # 8 sections per document, coarse every second one
        assert units[0].id == "sotu/0#0" and units[0].category == "speeches" and units[0].source == "sotu"
        assert units[1].title == "doc 0 — Part 2" and units[1].text.startswith("Part 2\n\n")
        assert not load_units("sotu", markup=False)[1].text.startswith("Part 2")

    def test_units_of_a_split_match_the_built_split(self, home, tmp_path):
        from blockattn.data.sources import load_units

        build_mod.build(tmp_path / "ds", 20, CATEGORIES, seed=0)
        test_docs = {d for r in _rows(tmp_path / "ds", "test") if r["source"] == "sotu" for d in r["documents"]}
        unit_docs = {u.id.split("#")[0] for u in load_units("sotu", split="test")}
        train_docs = {u.id.split("#")[0] for u in load_units("sotu", split="train")}
        assert test_docs and test_docs <= unit_docs and not unit_docs & train_docs


def _rows(root: Path, split: str) -> list[dict]:
    files = sorted((root / "data" / split).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


class TestCli:
    def _run(self, monkeypatch, capsys, *args) -> tuple[int, str]:
        from blockattn.cli import main

        monkeypatch.setattr(sys, "argv", ["blockattn", "data", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return exit_info.value.code, capsys.readouterr().err

    @pytest.mark.parametrize("args, message", [
        (["build", "--out", "X", "--categories", "novels,poetry"], "unknown category poetry"),
        (["build", "--out", "X", "--instances", "0"], "--instances must be at least 1"),
        (["build", "--out", "X", "--workers", "0"], "--workers must be at least 1"),
        (["stats", "/nonexistent/semanticseg"], "no such folder"),
    ])
    def test_bad_input_is_one_line_and_exit_2(self, monkeypatch, capsys, tmp_path, args, message):
        args = [str(tmp_path / a) if a == "X" else a for a in args]
        code, err = self._run(monkeypatch, capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err and not (tmp_path / "X").exists()

    def test_stats_prints_the_table(self, home, tmp_path, monkeypatch, capsys):
        build_mod.build(tmp_path / "ds", 6, CATEGORIES, seed=0)
        from blockattn.data.stats import print_stats

        print_stats(tmp_path / "ds")
        out = capsys.readouterr().out
        assert "quotes-poems" in out and "length histogram" in out


@pytest.mark.network
class TestRealFetch:
    def test_fetch_and_parse_two_small_sources(self, tmp_path, monkeypatch):
        monkeypatch.setenv("BLOCKATTN_HOME", str(tmp_path))
        from blockattn.data.sources import load_documents, load_units

        assert len(load_documents("chatterbot")) > 100
        assert any("Sir Walter Elliot" in u.text for u in load_units("janeaustenr"))
        assert (tmp_path / "sources" / "chatterbot").is_dir()
        assert (tmp_path / "cache" / "documents" / "janeaustenr.key").is_file()

    def test_unreachable_package_names_the_source(self, tmp_path, monkeypatch):
        monkeypatch.setenv("BLOCKATTN_HOME", str(tmp_path))
        from blockattn.data.fetch import Package, fetch

        with pytest.raises(UserError, match=r"source 'novels-x' \(debian:r-cran-janeaustenr=0.0-none\)"):
            fetch(Package("debian", "r-cran-janeaustenr", "0.0-none"), "novels-x")
        assert not list((tmp_path / "sources" / "novels-x").iterdir())


class TestJunkFilter:
    def test_a_hex_table_is_too_dense_and_prose_is_not(self):
        from blockattn.data.tokens import count_tokens

        table = "\t\t{0x003A, 0x003A, 1},\n\t\t{0x0041, 0x005A, 1},\n" * 40
        prose = _text(0, 200)
        table_tokens, prose_tokens = count_tokens([table, prose])
        assert build_mod.too_dense(table, table_tokens)
        assert not build_mod.too_dense(prose, prose_tokens)

    def test_build_drops_every_window_under_the_threshold(self, home, tmp_path, monkeypatch):
        # Prose runs ~5 characters per token: a threshold of 100 leaves no window to keep.
        monkeypatch.setattr(build_mod, "MIN_CHARS_PER_TOKEN", 100.0)
        with pytest.raises(UserError, match="no instance"):
            build_mod.build(tmp_path / "ds", 12, CATEGORIES, seed=1)

    def test_kept_instances_are_not_too_dense(self, home, tmp_path):
        build_mod.build(tmp_path / "ds", 12, CATEGORIES, seed=1)
        rows = [r for split in ("train", "test") for r in iter_split(tmp_path / "ds", split)]
        assert rows and all(len(r["text"]) >= 1.5 * r["n_tokens"] for r in rows)
