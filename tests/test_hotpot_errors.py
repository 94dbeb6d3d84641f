"""scripts/hotpot_errors.py: a lost answer is traced to the paragraph its words came from."""

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hotpot_errors.py"
spec = importlib.util.spec_from_file_location("hotpot_errors", SCRIPT)
hotpot_errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hotpot_errors)

PARAGRAPHS = ("Usher\nUsher released Confessions.", "Julie Andrews\nJulie Andrews sang in The Sound of Music.")
SUPPORTING = (True, False)


def test_answers_are_traced_to_supporting_distractor_question_or_nowhere():
    q = "Who released the album Confessions?"
    assert hotpot_errors.source_of("Julie Andrews", q, PARAGRAPHS, SUPPORTING) == "distractor"
    assert hotpot_errors.source_of("Usher", q, PARAGRAPHS, SUPPORTING) == "supporting"
    assert hotpot_errors.source_of("The album Confessions.", q, PARAGRAPHS, SUPPORTING) == "question"
    assert hotpot_errors.source_of("Marie Curie", q, PARAGRAPHS, SUPPORTING) == "nowhere"


def test_files_without_shared_questions_exit_2(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"per_item": {"x": [True, True]}, "outputs": {"x": "1"}}))
    b.write_text(json.dumps({"per_item": {"y": [True, True]}, "outputs": {"y": "1"}}))
    data = tmp_path / "dev.jsonl.gz"
    with gzip.open(data, "wt") as f:
        f.write(json.dumps({"question_id": "x", "question_text": "q?", "answers_objects": [{"spans": ["1"]}],
                            "contexts": [{"title": "t", "paragraph_text": "p", "is_supporting": True}]}) + "\n")
    run = lambda *extra: subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), *extra],  # noqa: E731
                                        capture_output=True, text=True)
    done = run("--hotpotqa", str(data))
    assert done.returncode == 2 and "share no questions" in done.stderr
    missing = run("--hotpotqa", str(tmp_path / "none.jsonl.gz"))
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_report_renders_the_counts_and_a_distractor_example():
    from blockattn.paper_tables import render_hotpot_errors

    data = {"reference": "full", "other": "distilled", "n": 3, "reference_right": 2, "other_right": 1, "lost": 1,
            "gained": 0, "lost_from": {"distractor": 1, "supporting": 0, "question": 0, "nowhere": 0},
            "misses": [{"question": "Who?", "gold": "Usher", "kind": "distractor", "reference": "Usher",
                        "other": "Julie Andrews"}], "command": "python scripts/hotpot_errors.py a b"}
    text = "\n".join(render_hotpot_errors("hotpot_errors_x.json", data))
    assert "| distractor | 1 |" in text and "'Julie Andrews'" in text and "1 lost, 0 gained" in text
