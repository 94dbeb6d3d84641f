"""RAG-shaped rows: requests from training passages, the answer-only loss, and the mix with continuation rows."""

import numpy as np
import torch

from blockattn.data.facts import distractor_items
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.loader import BatchLoader
from blockattn.distill.ragset import RagSet, load_ragset, rag_choice
from blockattn.experiments.ragdata import SCHEDULE, rag_requests

POOL = [f"Passage {i} opens here.\nIts second line talks about topic {i}.\nA third line ends it.\n" for i in range(30)]


def test_distractor_items_plant_one_distinct_fact_per_document():
    items = distractor_items(POOL, [4, 8], 3, seed=0)
    assert [it.n_docs for it in items] == [4] * 3 + [8] * 3
    for it in items:
        facts = [line for doc in it.documents for line in doc.splitlines() if "access code" in line]
        assert len(facts) == it.n_docs and len(set(facts)) == it.n_docs
        assert it.answer in it.documents[it.needle_doc] and it.question.startswith("What is the access code")


def test_train_template_shares_no_wording_with_eval():
    train = distractor_items(POOL, [4], 2, seed=0, template="train")
    assert all("access code" not in doc for it in train for doc in it.documents)
    assert all("tracking number" in it.question for it in train)


def test_requests_follow_the_schedule():
    reqs = rag_requests(POOL, 3 * len(SCHEDULE), seed=1)
    assert [r["kind"] for r in reqs] == list(SCHEDULE) * 3
    assert all(2 <= len(r["documents"]) <= 12 and r["question"] for r in reqs)


def test_loss_is_taken_on_the_answer_only(tmp_path):
    """Request: context blocks [5 tokens], [4 tokens]; question 3 tokens; answer 2 tokens."""
    ragset = RagSet.from_requests([([[10, 11, 12, 13, 14], [20, 21, 22, 23], [30, 31, 32]], [40, 41])])
    ragset = load_ragset(ragset.save(tmp_path / "rag.npz"))
    text = BlockCorpus.from_texts([[list(range(50, 90))]])
    loader = BatchLoader(text, seq_len=64, batch_size=1, block_dropout=0.0, sinks_per_block=2, shared_sink=0,
                         pad_id=0, seed=0, rag=ragset, rag_fraction=1.0)
    batch = loader.batch(0)
    # loss at the question's last token (predicts 40) and at 40 (predicts 41); 41 ends the row (IGNORE)
    assert batch.teacher_ids.flatten()[batch.teacher_index].tolist() == [32, 40, 41]
    assert batch.labels.tolist() == [40, 41, -100]
    assert batch.student_ids.flatten()[batch.student_index].tolist() == [32, 40, 41]


def test_mix_follows_the_fraction_and_is_a_function_of_the_row():
    picks = [rag_choice(0.3, 10, 0, i) for i in range(2000)]
    assert abs(np.mean([p is not None for p in picks]) - 0.3) < 0.04
    assert picks == [rag_choice(0.3, 10, 0, i) for i in range(2000)]
    assert all(rag_choice(0.0, 10, 0, i) is None for i in range(50))


def test_without_rag_rows_batches_are_unchanged():
    text = BlockCorpus.from_texts([[list(range(3, 40)), list(range(40, 80))]] * 4)
    plain = BatchLoader(text, 64, 2, 0.3, 2, 0, 0, seed=0).batch(0)
    ragset = RagSet.from_requests([([[5, 6], [7]], [8])])
    mixed = BatchLoader(text, 64, 2, 0.3, 2, 0, 0, seed=0, rag=ragset, rag_fraction=0.0).batch(0)
    assert torch.equal(plain.student_ids, mixed.student_ids) and torch.equal(plain.labels, mixed.labels)


class TestMultiHopKinds:
    """The bridge / compare kinds: HotpotQA-shaped, from train passages, train templates only."""

    HOTPOT = [f"Title words {j} here\n" + " ".join(f"w{j}x{k}" for k in range(30)) + f"\nMore on {j}.\n"
              for j in range(60)]

    def test_hotpot_kinds_have_titled_short_documents_within_the_budget(self):
        from blockattn.experiments.ragdata import HOTPOT_DOCS, HOTPOT_KINDS, title_of

        reqs = rag_requests(POOL, 2 * len(SCHEDULE), seed=3, hotpot_pool=self.HOTPOT, max_context_tokens=400)
        shaped = [r for r in reqs if r["kind"] in HOTPOT_KINDS]
        assert {r["kind"] for r in shaped} == set(HOTPOT_KINDS)
        for r in shaped:
            assert 2 <= len(r["documents"]) <= HOTPOT_DOCS[1]
            assert sum(len(d.split()) for d in r["documents"]) <= 400
            for doc in r["documents"]:
                title, _, body = doc.partition("\n")
                assert title == title_of(body.replace(next(
                    (line + "\n" for line in body.splitlines() if " was " in line or " has " in line), ""), "", 1))
            assert r["question"].endswith("Answer with a short phrase only, no explanation.")

    def test_no_eval_template_or_name_reaches_a_training_request(self):
        from blockattn.data.facts import CHAINS, TEMPLATES

        held = CHAINS["eval"]
        fixed = ["was established by", "grew up in", "the person who established", "access code",
                 *TEMPLATES["eval"].first]
        names = [*held.entities, *held.persons, *held.cities]
        for r in rag_requests(POOL, 5 * len(SCHEDULE), seed=4, hotpot_pool=self.HOTPOT):
            text = "\n".join([*r["documents"], r["question"]])
            assert not [f for f in fixed if f in text] and not [n for n in names if n in text]

    def test_short_passages_are_whole_lines_in_the_word_range(self):
        from blockattn.experiments.ragdata import short_passages

        texts = ["".join(f"line {i} of text {t} " + "word " * (i % 9) + "\n" for i in range(300)) for t in range(3)]
        parts = short_passages(texts, seed=0, min_words=40, max_words=200)
        assert len(parts) > 10
        assert all(40 <= len(p.split()) <= 200 and p.endswith("\n") for p in parts)
        assert all(p in texts[0] or p in texts[1] or p in texts[2] for p in parts)
        assert len({len(p.split()) // 20 for p in parts}) > 2  # lengths vary
