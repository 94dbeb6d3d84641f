"""The shipped block adapter of SmolLM2: it is the default of block mode, and it brings block attention closer
to full attention on text it was not trained on (the demo documents), which a broken or mismatched adapter
would not."""

from importlib import resources

import pytest
import torch

pytestmark = pytest.mark.slow


def _demo_blocks(tokenizer) -> tuple[list[list[int]], list[int]]:
    folder = resources.files("blockattn") / "assets" / "demo"
    paragraphs = [p.strip() for f in sorted(folder.iterdir()) if f.name.endswith(".txt")
                  for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    encode = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    query = encode("Question: who designed the lighthouse, and where was Marie Curie born? Answer: the lighthouse "
                   "was designed by Robert Stevenson, and Marie Curie was born in Warsaw, the capital of Poland.")
    return [encode(p + "\n\n") for p in paragraphs], query


def _full_attention(model, blocks, query) -> torch.Tensor:
    """The teacher: the base model (no adapter) with full attention; log-probs on the query tokens."""
    from blockattn.attention import full_forward

    with torch.no_grad():
        return full_forward(model, torch.tensor([sum(blocks, []) + query])).logits[0, -len(query):].log_softmax(-1)


def _kl_from_block_mode(teacher, model, blocks, query, sinks=None, sinks_per_block=0) -> float:
    """Mean KL(teacher ‖ block mode) over the query block's tokens."""
    from blockattn.attention import block_forward, pack_sequence

    ids, layout = pack_sequence([*blocks, query], sinks_per_block=sinks_per_block)
    with torch.no_grad():
        student = block_forward(model, ids, layout, sinks=sinks, backend="dense").logits[0, -len(query):]
    return torch.sum(teacher.exp() * (teacher - student.log_softmax(-1)), -1).mean().item()


def test_the_shipped_adapter_brings_block_mode_closer_to_full_attention():
    from blockattn.adapter import load_block_adapter
    from blockattn.engine.service import resolve_adapter
    from blockattn.models import load

    path, name = resolve_adapter("default", "smollm2-135m-instruct")
    assert name == "smollm2-block-distill" and path is not None
    loaded = load("smollm2-135m-instruct")  # a fresh copy: PEFT modifies the model it attaches to
    blocks, query = _demo_blocks(loaded.tokenizer)
    assert len(blocks) >= 6
    teacher = _full_attention(loaded.model, blocks, query)
    zero_shot = _kl_from_block_mode(teacher, loaded.model, blocks, query)
    adapter = load_block_adapter(loaded.model, path)
    assert adapter.sinks_per_block > 0 and adapter.sinks is not None
    distilled = _kl_from_block_mode(teacher, adapter.model, blocks, query, adapter.sinks, adapter.sinks_per_block)
    assert distilled < 0.8 * zero_shot, (distilled, zero_shot)  # measured 0.151 vs 0.250


def test_generate_uses_and_reports_the_shipped_adapter_in_block_mode_only(monkeypatch, capsys):
    import json
    import sys

    from blockattn.cli import main

    doc = str(resources.files("blockattn") / "assets" / "demo" / "marie_curie.txt")
    reports = {}
    for mode in ("block", "full"):
        monkeypatch.setattr(sys, "argv", ["blockattn", "generate", "--doc", doc, "-q", "Where was she born?",
                                          "--mode", mode, "--max-new-tokens", "2", "--json", "--device", "cpu"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert (exit_info.value.code or 0) == 0
        reports[mode] = json.loads(capsys.readouterr().out)
    assert reports["block"]["adapter"] == "smollm2-block-distill"
    assert reports["full"]["adapter"] is None  # full attention runs the base model alone
