"""The direction of imports between the package's stages (issue 12): training and measuring are two stages,
the CLI is the only door into the benchmarks. Every import counts, also those inside functions, since a lazy
import is still a dependency."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "blockattn"
LOWER = ("adapter", "attention", "data", "engine", "errors", "models", "reportio", "segment", "textio")
UPPER = ("distill", "eval", "experiments", "bench", "cli")

# importer stage -> stages it must not import
FORBIDDEN = {
    **{low: set(UPPER) for low in LOWER},
    "distill": {"eval", "experiments", "bench", "cli"},  # measuring sits above training
    "eval": {"experiments", "bench", "cli"},
    "experiments": {"bench", "cli"},
    "bench": {"distill", "eval", "experiments", "cli"},  # the CLI imports bench, never the other way
    "reports": {"cli"},
    "paper_tables": {"cli"},
    "paper_claims": {"cli"},
    "cli": set(),  # the thin shell over everything
}
# stage -> the only stages (besides itself) that may import it
ONLY_IMPORTED_BY = {"bench": {"cli"}, "cli": {"__main__"}}


def stage_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_stages(path: Path):
    """(line, stage) for every `blockattn.<stage>` this file imports, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from blockattn import eval` names the stage in the alias, not the module
            names = ([f"blockattn.{a.name}" for a in node.names] if node.module == "blockattn" else [node.module])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the graph check reads absolute ones")
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "blockattn" and len(parts) > 1:
                yield node.lineno, parts[1]


def edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        src = stage_of(path)
        for line, dst in imported_stages(path):
            if dst != src:
                yield path, line, src, dst


def violations(rule) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {src} imports {dst}"
            for path, line, src, dst in edges() if rule(src, dst)]


class TestImportDirections:
    def test_every_stage_is_covered_by_a_rule(self):
        stages = {stage_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
        assert stages <= set(FORBIDDEN), f"add a rule for {sorted(stages - set(FORBIDDEN))}"

    def test_no_forbidden_edges(self):
        assert violations(lambda src, dst: dst in FORBIDDEN.get(src, ())) == []

    @pytest.mark.parametrize("stage", sorted(ONLY_IMPORTED_BY))
    def test_only_its_callers_import(self, stage):
        assert violations(lambda src, dst: dst == stage and src not in ONLY_IMPORTED_BY[stage]) == []


class TestTheCheckItself:
    def test_a_lazy_import_inside_a_function_is_seen(self, tmp_path):
        f = tmp_path / "m.py"
        f.write_text("def f():\n    from blockattn.eval.retrieval import needle_accuracy\n")
        assert list(imported_stages(f)) == [(2, "eval")]

    def test_from_package_import_stage_is_seen(self, tmp_path):
        f = tmp_path / "m.py"
        f.write_text("from blockattn import bench, models\nimport os\n")
        assert list(imported_stages(f)) == [(1, "bench"), (1, "models")]
