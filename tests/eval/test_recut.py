"""T3's HotpotQA re-cut: paragraphs joined and cut again into as many blocks, scored in block mode."""

from blockattn.data.hotpotqa import HotpotItem
from blockattn.eval.recut import RECUT_METHODS, evaluate_recut, recut
from blockattn.eval.variants import zero_shot_block
from blockattn.models.tiny import tiny_model

PARAGRAPHS = tuple(f"Title {i}\nParagraph {i} says that item {i} weighs {i * 3} kilograms."
                   + " It was found in another place, and nobody else had seen it before." * (1 + 3 * (i % 2))
                   for i in range(5))  # of unequal lengths: equal windows cannot fall on the paragraph ends
ITEM = HotpotItem("q1", "What does item 3 weigh?", ("9 kilograms",), PARAGRAPHS, (False,) * 5)


def test_paragraph_recut_recovers_the_given_paragraphs():
    assert recut(ITEM, "paragraph").paragraphs == PARAGRAPHS


def test_every_method_keeps_the_text_and_the_block_count():
    joined = "".join(PARAGRAPHS).replace("\n", "").replace(" ", "")
    for method in RECUT_METHODS:
        cut = recut(ITEM, method)
        assert len(cut.paragraphs) == len(PARAGRAPHS), method
        assert "".join(cut.paragraphs).replace("\n", "").replace(" ", "") == joined, method
        assert cut.question == ITEM.question and cut.answers == ITEM.answers
    assert recut(ITEM, "fixed").paragraphs != PARAGRAPHS  # fixed windows ignore the paragraph ends


def test_scores_per_method(smollm2_tokenizer):
    variant = zero_shot_block(tiny_model(vocab_size=49152))
    result = evaluate_recut(variant, smollm2_tokenizer, [ITEM, ITEM], methods=("paragraph", "fixed"), batch_size=2)
    assert set(result) == {"paragraph", "fixed"}
    for row in result.values():
        assert row["n"] == 2 and 0.0 <= row["contains"] <= 1.0 and row["blocks_mean"] == 5.0
    assert result["paragraph"]["same_as_given"] == 1.0 and result["fixed"]["same_as_given"] == 0.0
